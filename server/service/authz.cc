#include "server/service/authz.h"

#include <grpc/grpc_security_constants.h>
#include <openssl/crypto.h>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "server/core/encoding.h"
#include "server/core/error_reason.h"

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

constexpr char kSendYourOwnJwt[] =
    ", or send the app's own JWT in metadata 'auth' and its client id in 'iid'";

// No identity, or one no rule knows. `more` ends the message for callers without any identity.
absl::Status Unknown(const CallerIdentity& who, std::string_view more) {
  return WithReason(
      absl::UnauthenticatedError(
          who.has_bearer
              ? std::string("the bearer token in metadata 'authorization' is not one the gateway "
                            "knows")
              : absl::StrCat("authenticate with metadata 'authorization: Bearer <token>' or an "
                             "mTLS client certificate the gateway knows",
                             AsAbsl(more))),
      reason::kCallerUnauthenticated);
}

absl::Status NotAllowed(const CallerRule& rule, const std::string& account) {
  return WithReason(absl::PermissionDeniedError(
                        absl::StrCat("caller ", rule.name, " may not read account ", account)),
                    reason::kCallerNotAllowed);
}

absl::Status NoCredentials(const std::string& account) {
  return WithReason(absl::PermissionDeniedError(absl::StrCat(
                        "the gateway holds no upstream credentials for account ", account)),
                    reason::kNoCredentials);
}

// What gRPC counts against GRPC_ARG_MAX_METADATA_SIZE: name, value and 32 bytes per entry.
size_t MetadataBytes(const grpc::ServerContextBase& context) {
  size_t bytes = 0;
  for (const auto& [key, value] : context.client_metadata())
    bytes += key.size() + value.size() + 32;
  return bytes;
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
    if (grant.minter == nullptr) return NoCredentials(account);
    return grant;
  }
  const CallerRule* rule = FindCaller(snapshot->callers, who);
  if (rule == nullptr) return Unknown(who, kSendYourOwnJwt);
  if (!rule->Allows(account_id)) return NotAllowed(*rule, account);
  if (grant.minter == nullptr) return NoCredentials(account);
  grant.caller = rule->name;
  if (absl::Status slot = TakeSlot(grant); !slot.ok()) return slot;
  return grant;
}

absl::StatusOr<Grant> Authorizer::AuthorizePassThrough(const CallerIdentity& who,
                                                       std::string_view account_id,
                                                       std::string_view jwt) {
  std::shared_ptr<const CredentialStore::Snapshot> snapshot = store_.Current();
  const bool required =
      options_.pass_through_auth == PassThroughAuth::kRequired ||
      (options_.pass_through_auth == PassThroughAuth::kAuto && !snapshot->callers.empty());
  Grant grant;
  if (const CallerRule* rule = FindCaller(snapshot->callers, who); rule != nullptr) {
    if (required && !rule->Allows(account_id)) return NotAllowed(*rule, std::string(account_id));
    grant.caller = rule->name;
  } else if (required) {
    return Unknown(who, "; this gateway requires it of callers that send their own JWT too");
  } else {
    grant.caller = absl::StrCat("jwt:", absl::BytesToHexString(Sha256(jwt).substr(0, 8)));
  }
  if (absl::Status slot = TakeSlot(grant); !slot.ok()) return slot;
  return grant;
}

absl::Status Authorizer::TakeSlot(Grant& grant) {
  {
    absl::MutexLock lock(&mu_);
    int& streams = streams_[grant.caller];
    if (streams >= options_.max_streams_per_caller) {
      return WithReason(absl::ResourceExhaustedError(absl::StrCat(
                            "caller ", grant.caller, " already has ", streams,
                            " streams open (--max-streams-per-caller); wait for one to end")),
                        reason::kCallerStreamLimit);
    }
    ++streams;
  }
  grant.slot =
      std::shared_ptr<void>(nullptr, [this, caller = grant.caller](void*) { Release(caller); });
  return absl::OkStatus();
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
  if (authorizer != nullptr && authorizer->options().max_metadata_bytes > 0) {
    if (size_t bytes = MetadataBytes(context); bytes > authorizer->options().max_metadata_bytes) {
      return WithReason(absl::ResourceExhaustedError(absl::StrCat(
                            "the call's metadata takes ", bytes, " bytes, more than the ",
                            authorizer->options().max_metadata_bytes, " allowed")),
                        reason::kInvalidRequest);
    }
  }
  std::string_view jwt = MetadataValue(context, "auth");
  std::string_view app_id = MetadataValue(context, "iid");
  if (!jwt.empty()) {
    if (app_id.empty()) {
      return WithReason(
          absl::InvalidArgumentError(
              "metadata 'iid' (the app's client id) must accompany the JWT in metadata 'auth'"),
          reason::kInvalidRequest);
    }
    credentials.caller_ = {std::string(jwt), std::string(app_id)};
    if (authorizer != nullptr) {
      absl::StatusOr<Grant> grant =
          authorizer->AuthorizePassThrough(IdentifyCaller(context), account_id, jwt);
      if (!grant.ok()) return grant.status();
      credentials.grant_ = *std::move(grant);
    }
    return credentials;
  }
  if (authorizer == nullptr || !authorizer->mints()) {
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
