#ifndef CONTACTS_GATEWAY_SERVER_SERVICE_AUTHZ_H_
#define CONTACTS_GATEWAY_SERVER_SERVICE_AUTHZ_H_

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "server/service/credentials.h"

namespace contacts::gateway {

// Who is calling, as far as the call says: the bearer token of metadata
// `authorization: Bearer <token>` and the subjects of a verified mTLS client certificate.
struct CallerIdentity {
  bool has_bearer = false;
  std::string bearer_token{};
  std::vector<std::string> mtls_subjects{};
};
CallerIdentity IdentifyCaller(const grpc::ServerContextBase& context);

struct AuthzOptions {
  // Callers that identify themselves not at all may use the gateway's credentials for any
  // account. For local development and the demo only.
  bool allow_unauthenticated = false;
  int max_streams_per_caller = 64;  // concurrent streams of one authenticated caller
};

// What an authorized call may use: the minter of its account's upstream credentials, and a slot
// among its caller's concurrent streams, given back when the last copy of the grant goes.
struct Grant {
  std::string caller;  // the rule's name, "" for an unauthenticated caller
  std::shared_ptr<JwtMinter> minter;
  std::shared_ptr<void> slot;
};

// Decides whether a caller may have the gateway mint upstream credentials for an account.
// Tokens are compared by their SHA-256 in constant time. Thread-safe; `store` must outlive it.
//
// Errors (the upstream is never asked):
//   kUnauthenticated    no identity (unless allow_unauthenticated), or one no rule knows
//   kPermissionDenied   a known caller asks for an account its rule does not list, or the
//                       gateway holds no credentials for that account
//   kResourceExhausted  the caller already has max_streams_per_caller streams
class Authorizer {
 public:
  Authorizer(const CredentialStore& store, AuthzOptions options)
      : store_(store), options_(options) {}

  absl::StatusOr<Grant> Authorize(const CallerIdentity& who, std::string_view account_id);

 private:
  void Release(const std::string& caller);

  const CredentialStore& store_;
  const AuthzOptions options_;
  absl::Mutex mu_;
  absl::flat_hash_map<std::string, int> streams_ ABSL_GUARDED_BY(mu_);
};

}  // namespace contacts::gateway

#endif  // CONTACTS_GATEWAY_SERVER_SERVICE_AUTHZ_H_
