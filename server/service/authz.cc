#include "server/service/authz.h"

#include <grpc/grpc_security_constants.h>
#include <openssl/crypto.h>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace contacts::gateway {
namespace {

bool SameHash(const std::string& a, const std::string& b) {
  return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

// The rule `who` matches: a token hash first, else a certificate subject.
const CallerRule* FindCaller(const std::vector<CallerRule>& rules, const CallerIdentity& who) {
  if (who.has_bearer) {
    std::string hash = Sha256(who.bearer_token);
    for (const CallerRule& rule : rules) {
      if (!rule.token_sha256.empty() && SameHash(rule.token_sha256, hash)) return &rule;
    }
    return nullptr;  // a token nobody knows is not made good by a certificate
  }
  for (const CallerRule& rule : rules) {
    for (const std::string& subject : who.mtls_subjects) {
      if (!rule.mtls_subject.empty() && rule.mtls_subject == subject) return &rule;
    }
  }
  return nullptr;
}

}  // namespace

std::string_view MetadataValue(const grpc::ServerContextBase& context, std::string_view key) {
  const auto& metadata = context.client_metadata();
  auto it = metadata.find(grpc::string_ref(key.data(), key.size()));
  if (it == metadata.end()) return {};
  return std::string_view(it->second.data(), it->second.size());
}

CallerIdentity IdentifyCaller(const grpc::ServerContextBase& context) {
  CallerIdentity who;
  if (std::string_view value = MetadataValue(context, "authorization"); !value.empty()) {
    who.has_bearer = true;
    constexpr absl::string_view kBearer = "Bearer ";
    if (value.size() > kBearer.size() &&
        absl::EqualsIgnoreCase(absl::string_view(value.data(), kBearer.size()), kBearer)) {
      who.bearer_token = std::string(value.substr(kBearer.size()));
    }
  }
  std::shared_ptr<const grpc::AuthContext> auth = context.auth_context();
  if (auth != nullptr && auth->IsPeerAuthenticated()) {
    for (const grpc::string_ref& subject :
         auth->FindPropertyValues(GRPC_X509_SUBJECT_PROPERTY_NAME)) {
      who.mtls_subjects.emplace_back(subject.data(), subject.size());
    }
  }
  return who;
}

absl::StatusOr<Grant> Authorizer::Authorize(const CallerIdentity& who,
                                            std::string_view account_id) {
  std::shared_ptr<const CredentialStore::Snapshot> snapshot = store_.Current();
  Grant grant;
  grant.minter = snapshot->MinterFor(account_id);
  const std::string account(account_id);
  if (!who.has_bearer && who.mtls_subjects.empty() && options_.allow_unauthenticated) {
    if (grant.minter == nullptr) {
      return absl::PermissionDeniedError(
          absl::StrCat("the gateway holds no upstream credentials for account ", account));
    }
    return grant;
  }
  const CallerRule* rule = FindCaller(snapshot->callers, who);
  if (rule == nullptr) {
    return absl::UnauthenticatedError(
        who.has_bearer
            ? "the bearer token in metadata 'authorization' is not one the gateway knows"
            : "authenticate with metadata 'authorization: Bearer <token>' or an mTLS client "
              "certificate the gateway knows, or send the app's own JWT in metadata 'auth' "
              "and its client id in 'iid'");
  }
  if (!rule->Allows(account_id)) {
    return absl::PermissionDeniedError(
        absl::StrCat("caller ", rule->name, " may not read account ", account));
  }
  if (grant.minter == nullptr) {
    return absl::PermissionDeniedError(
        absl::StrCat("the gateway holds no upstream credentials for account ", account));
  }
  grant.caller = rule->name;
  {
    absl::MutexLock lock(&mu_);
    int& streams = streams_[grant.caller];
    if (streams >= options_.max_streams_per_caller) {
      return absl::ResourceExhaustedError(
          absl::StrCat("caller ", grant.caller, " already has ", streams,
                       " streams open (--max-streams-per-caller); wait for one to end"));
    }
    ++streams;
  }
  grant.slot =
      std::shared_ptr<void>(nullptr, [this, caller = grant.caller](void*) { Release(caller); });
  return grant;
}

void Authorizer::Release(const std::string& caller) {
  absl::MutexLock lock(&mu_);
  if (--streams_[caller] == 0) streams_.erase(caller);
}

UpstreamCredentials StreamCredentials::Next() const {
  if (grant_.minter) return {grant_.minter->Token(), grant_.minter->client_id()};
  return caller_;
}

absl::StatusOr<StreamCredentials> ChooseCredentials(const grpc::ServerContextBase& context,
                                                    std::string_view account_id,
                                                    Authorizer* authorizer) {
  StreamCredentials credentials;
  std::string_view jwt = MetadataValue(context, "auth");
  std::string_view app_id = MetadataValue(context, "iid");
  if (!jwt.empty()) {
    if (app_id.empty()) {
      return absl::InvalidArgumentError(
          "metadata 'iid' (the app's client id) must accompany the JWT in metadata 'auth'");
    }
    credentials.caller_ = {std::string(jwt), std::string(app_id)};
    return credentials;
  }
  if (authorizer == nullptr) {
    return absl::UnauthenticatedError(
        "no upstream credentials: send the app's JWT in metadata 'auth' and its client id in "
        "'iid', or configure the gateway with --credentials-file or --client-id");
  }
  absl::StatusOr<Grant> grant = authorizer->Authorize(IdentifyCaller(context), account_id);
  if (!grant.ok()) return grant.status();
  credentials.grant_ = *std::move(grant);
  return credentials;
}

}  // namespace contacts::gateway
