#include "server/service/credentials.h"

#include <openssl/sha.h>

#include <fstream>
#include <sstream>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "server/core/encoding.h"
#include "server/core/log.h"
#include "simdjson.h"

namespace contacts::gateway {
namespace {

namespace dom = simdjson::dom;

absl::Status Bad(std::string_view where, std::string_view problem) {
  return absl::InvalidArgumentError(
      absl::StrCat("credentials file: ", AsAbsl(where), ": ", AsAbsl(problem)));
}

absl::Status NonEmptyString(dom::element value, const std::string& where, std::string* out) {
  std::string_view text;
  if (value.get_string().get(text) != simdjson::SUCCESS || text.empty()) {
    return Bad(where, "expected a non-empty string");
  }
  *out = std::string(text);
  return absl::OkStatus();
}

absl::Status ParseAccount(dom::object object, const std::string& where, AccountCredentials* out) {
  for (dom::key_value_pair field : object) {
    std::string at = absl::StrCat(where, ".", AsAbsl(field.key));
    absl::Status status;
    if (field.key == "client_id") {
      status = NonEmptyString(field.value, at, &out->client_id);
    } else if (field.key == "client_secret") {
      status = NonEmptyString(field.value, at, &out->client_secret);
    } else if (field.key == "jti") {
      if (field.value.get_bool().get(out->jti) != simdjson::SUCCESS)
        status = Bad(at, "expected true or false");
    } else {
      status = Bad(where, "unknown key (expected client_id, client_secret, jti)");
    }
    if (!status.ok()) return status;
  }
  if (out->client_id.empty() || out->client_secret.empty()) {
    return Bad(where, "needs client_id and client_secret");
  }
  return absl::OkStatus();
}

absl::Status ParseCaller(dom::object object, const std::string& where, CallerRule* out) {
  for (dom::key_value_pair field : object) {
    std::string at = absl::StrCat(where, ".", AsAbsl(field.key));
    absl::Status status;
    if (field.key == "name") {
      status = NonEmptyString(field.value, at, &out->name);
    } else if (field.key == "token_sha256") {
      std::string hex;
      status = NonEmptyString(field.value, at, &hex);
      if (status.ok()) {
        if (hex.size() != 64 ||
            hex.find_first_not_of("0123456789abcdefABCDEF") != std::string::npos) {
          status = Bad(at, "expected 64 hex digits (sha256sum of the token)");
        } else {
          out->token_sha256 = absl::HexStringToBytes(hex);
        }
      }
    } else if (field.key == "mtls_subject") {
      status = NonEmptyString(field.value, at, &out->mtls_subject);
    } else if (field.key == "accounts") {
      dom::array accounts;
      if (field.value.get_array().get(accounts) != simdjson::SUCCESS) {
        status = Bad(at, "expected an array of account ids");
      } else {
        for (dom::element account : accounts) {
          std::string id;
          if (status = NonEmptyString(account, at + "[]", &id); !status.ok()) break;
          out->accounts.push_back(std::move(id));
        }
      }
    } else {
      status = Bad(where, "unknown key (expected name, token_sha256, mtls_subject, accounts)");
    }
    if (!status.ok()) return status;
  }
  if (out->name.empty()) return Bad(where, "needs a name");
  if (out->token_sha256.empty() && out->mtls_subject.empty()) {
    return Bad(where, "needs token_sha256 or mtls_subject");
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path);
  if (!in)
    return absl::InvalidArgumentError(absl::StrCat("cannot read the credentials file ", path));
  std::stringstream content;
  content << in.rdbuf();
  return content.str();
}

}  // namespace

bool CallerRule::Allows(std::string_view account_id) const {
  for (const std::string& account : accounts) {
    if (account == "*" || account == account_id) return true;
  }
  return false;
}

std::string Sha256(std::string_view data) {
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(data.data()), data.size(), digest);
  return std::string(reinterpret_cast<const char*>(digest), sizeof digest);
}

absl::StatusOr<CredentialsFile> ParseCredentialsFile(std::string_view json) {
  dom::parser parser;
  dom::object root;
  if (parser.parse(json.data(), json.size()).get(root) != simdjson::SUCCESS) {
    return Bad("top level", "expected a JSON object");
  }
  CredentialsFile file;
  for (dom::key_value_pair field : root) {
    if (field.key == "accounts") {
      dom::object accounts;
      if (field.value.get_object().get(accounts) != simdjson::SUCCESS) {
        return Bad("accounts", "expected an object of account id to credentials");
      }
      for (dom::key_value_pair account : accounts) {
        std::string where = absl::StrCat("accounts.", AsAbsl(account.key));
        dom::object object;
        if (account.value.get_object().get(object) != simdjson::SUCCESS)
          return Bad(where, "expected an object");
        AccountCredentials credentials;
        if (absl::Status s = ParseAccount(object, where, &credentials); !s.ok()) return s;
        file.accounts[std::string(account.key)] = std::move(credentials);
      }
    } else if (field.key == "callers") {
      dom::array callers;
      if (field.value.get_array().get(callers) != simdjson::SUCCESS)
        return Bad("callers", "expected an array");
      for (dom::element caller : callers) {
        std::string where = absl::StrCat("callers[", file.callers.size(), "]");
        dom::object object;
        if (caller.get_object().get(object) != simdjson::SUCCESS)
          return Bad(where, "expected an object");
        CallerRule rule;
        if (absl::Status s = ParseCaller(object, where, &rule); !s.ok()) return s;
        file.callers.push_back(std::move(rule));
      }
    } else {
      return Bad("top level", "unknown key (expected accounts, callers)");
    }
  }
  return file;
}

std::shared_ptr<JwtMinter> CredentialStore::Snapshot::MinterFor(std::string_view account_id) const {
  if (auto it = accounts.find(AsAbsl(account_id)); it != accounts.end()) {
    return it->second;
  }
  return default_app;
}

absl::StatusOr<std::unique_ptr<CredentialStore>> CredentialStore::Create(
    CredentialStoreOptions options) {
  std::unique_ptr<CredentialStore> store(new CredentialStore(std::move(options)));
  bool changed = false;
  if (absl::Status s = store->Load(&changed); !s.ok()) return s;
  if (!store->options_.file.empty()) {
    store->reloader_ = std::thread([s = store.get()] {
      while (!s->stop_.WaitForNotificationWithTimeout(s->options_.reload_interval)) s->Reload();
    });
  }
  return store;
}

CredentialStore::~CredentialStore() {
  stop_.Notify();
  if (reloader_.joinable()) reloader_.join();
}

std::shared_ptr<const CredentialStore::Snapshot> CredentialStore::Current() const {
  absl::MutexLock lock(&mu_);
  return current_;
}

bool CredentialStore::mints() const {
  std::shared_ptr<const Snapshot> now = Current();
  return now->default_app != nullptr || !now->accounts.empty();
}

bool CredentialStore::Reload() {
  bool changed = false;
  if (absl::Status s = Load(&changed); !s.ok()) {
    Log(Severity::kError, absl::StrCat(s.message(), "; keeping the credentials loaded before"));
  } else if (changed) {
    Log(Severity::kInfo,
        absl::StrCat("credentials file ", options_.file, " reloaded: ", Current()->accounts.size(),
                     " account(s), ", Current()->callers.size(), " caller(s)"));
  }
  return changed;
}

absl::Status CredentialStore::Load(bool* changed) {
  *changed = false;
  auto snapshot = std::make_shared<Snapshot>();
  const AccountCredentials& app = options_.default_app;
  if (!app.client_id.empty()) {
    snapshot->default_app =
        std::make_shared<JwtMinter>(app.client_id, app.client_secret, options_.jwt);
  }
  std::string hash;
  if (!options_.file.empty()) {
    absl::StatusOr<std::string> content = ReadFile(options_.file);
    if (!content.ok()) return content.status();
    hash = Sha256(*content);
    {
      absl::MutexLock lock(&mu_);
      if (current_ != nullptr && hash == file_hash_) return absl::OkStatus();
    }
    absl::StatusOr<CredentialsFile> file = ParseCredentialsFile(*content);
    if (!file.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(options_.file, ": ", file.status().message()));
    }
    for (auto& [account, credentials] : file->accounts) {
      JwtOptions jwt = options_.jwt;
      jwt.with_jti = credentials.jti;
      snapshot->accounts[account] =
          std::make_shared<JwtMinter>(credentials.client_id, credentials.client_secret, jwt);
    }
    snapshot->callers = std::move(file->callers);
  }
  absl::MutexLock lock(&mu_);
  current_ = std::move(snapshot);
  file_hash_ = std::move(hash);
  *changed = true;
  return absl::OkStatus();
}

}  // namespace contacts::gateway
