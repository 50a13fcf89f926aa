#ifndef CONTACTS_GATEWAY_SERVER_SERVICE_CREDENTIALS_H_
#define CONTACTS_GATEWAY_SERVER_SERVICE_CREDENTIALS_H_

// The upstream credentials the gateway holds, per account, and who may use them: the
// --credentials-file (e.g. a mounted Kubernetes Secret), reloaded when it changes, plus the single
// app of --client-id, which serves every account the file does not name.
//
// File format (JSON; unknown keys are errors, so that a typo does not silently drop a rule):
//   {"accounts": {"acct-1": {"client_id": "cs-…", "client_secret": "…", "jti": false}},
//    "callers":  [{"name": "svc-a", "token_sha256": "<64 hex>", "accounts": ["acct-1"]},
//                 {"name": "svc-b", "mtls_subject": "CN=svc-b,O=Example", "accounts": ["*"]}]}
// A caller has a bearer-token hash, an mTLS subject, or both; "*" allows every account.

#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "server/upstream/jwt.h"

namespace contacts::gateway {

struct AccountCredentials {
  std::string client_id;
  std::string client_secret;
  bool jti = false;  // the app enforces JTI: a fresh token per request
};

struct CallerRule {
  std::string name;          // for logs; not a secret
  std::string token_sha256;  // 32 raw bytes of SHA-256(bearer token), or empty
  std::string mtls_subject;  // the client certificate's subject as gRPC reports it, or empty
  std::vector<std::string> accounts;  // "*" = any

  bool Allows(std::string_view account_id) const;
};

struct CredentialsFile {
  absl::flat_hash_map<std::string, AccountCredentials> accounts;
  std::vector<CallerRule> callers;
};

// Errors: kInvalidArgument naming the place ("accounts.acct-1.client_secret: expected a non-empty
// string"); never quotes a value from the file.
absl::StatusOr<CredentialsFile> ParseCredentialsFile(std::string_view json);

// SHA-256 of `data`, raw bytes.
std::string Sha256(std::string_view data);

struct CredentialStoreOptions {
  std::string file{};  // --credentials-file; "" = none
  absl::Duration reload_interval = absl::Seconds(10);
  AccountCredentials default_app{};  // --client-id / --client-secret; empty client_id = none
  JwtOptions jwt{};                  // subject and ttl for every account; jti per account
};

// Holds one snapshot of the credentials and swaps it when the file changes (a background thread
// reads it every reload_interval; a file that no longer parses keeps the old snapshot and logs
// the problem, never a value). Thread-safe; snapshots stay valid while someone holds them.
class CredentialStore {
 public:
  struct Snapshot {
    absl::flat_hash_map<std::string, std::shared_ptr<JwtMinter>> accounts;
    std::shared_ptr<JwtMinter> default_app;  // may be null
    std::vector<CallerRule> callers;

    // The minter for `account_id`, or null when the gateway holds no credentials for it.
    std::shared_ptr<JwtMinter> MinterFor(std::string_view account_id) const;
  };

  // Errors: kInvalidArgument when the file cannot be read or parsed.
  static absl::StatusOr<std::unique_ptr<CredentialStore>> Create(CredentialStoreOptions options);
  ~CredentialStore();

  std::shared_ptr<const Snapshot> Current() const;
  // Reads the file now; true when a new snapshot was taken. For the reload thread and tests.
  bool Reload();
  // True when the gateway holds credentials for some account (it mints).
  bool mints() const;

 private:
  explicit CredentialStore(CredentialStoreOptions options) : options_(std::move(options)) {}
  absl::Status Load(bool* changed);

  const CredentialStoreOptions options_;
  mutable absl::Mutex mu_;
  std::shared_ptr<const Snapshot> current_ ABSL_GUARDED_BY(mu_);
  std::string file_hash_ ABSL_GUARDED_BY(mu_);
  absl::Notification stop_;
  std::thread reloader_;
};

}  // namespace contacts::gateway

#endif  // CONTACTS_GATEWAY_SERVER_SERVICE_CREDENTIALS_H_
