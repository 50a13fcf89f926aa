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
#include "server/core/page_source.h"
#include "server/service/credentials.h"

namespace contacts::gateway {

// The value of the call's metadata entry `key`, or "".
std::string_view MetadataValue(const grpc::ServerContextBase& context, std::string_view key);

// Who is calling, as far as the call says: the bearer token of metadata
// `authorization: Bearer <token>` and the subjects of a verified mTLS client certificate.
struct CallerIdentity {
  bool has_bearer = false;
  std::string bearer_token{};
  std::vector<std::string> mtls_subjects{};
};
CallerIdentity IdentifyCaller(const grpc::ServerContextBase& context);

// Whether callers that bring their own JWT (pass-through) must authenticate to the gateway too.
enum class PassThroughAuth {
  kAuto,      // required whenever the credentials file lists callers (checked at every call)
  kRequired,  // always
  kOptional,  // never: such a caller is told apart by its verified identity, else by its JWT
};

struct AuthzOptions {
  // Callers that identify themselves not at all may use the gateway's credentials for any
  // account. For local development and the demo only.
  bool allow_unauthenticated = false;
  int max_streams_per_caller = 64;  // concurrent streams of one caller, pass-through ones too
  PassThroughAuth pass_through_auth = PassThroughAuth::kAuto;
  // All request metadata of a call, as HPACK counts it; 0 = unchecked. gRPC 1.51 applies its own
  // limit (GRPC_ARG_MAX_METADATA_SIZE) only once a client has acknowledged the server's SETTINGS.
  size_t max_metadata_bytes = 0;
};

// What an authorized call may use: the minter of its account's upstream credentials (none for a
// pass-through caller), and a slot among its caller's concurrent streams, given back when the last
// copy of the grant goes.
struct Grant {
  // Who calls: the rule's name; for a pass-through caller without a known identity
  // "jwt:<first 16 hex digits of its JWT's SHA-256>"; "" for an unauthenticated caller of the
  // gateway's credentials.
  std::string caller;
  std::shared_ptr<JwtMinter> minter;
  std::shared_ptr<void> slot;
};

// Decides whether a caller may have the gateway mint upstream credentials for an account, or use
// its own (pass-through), and counts each caller's streams. Tokens are compared by their SHA-256
// in constant time. Thread-safe; `store` must outlive it.
//
// Errors (the upstream is never asked):
//   kUnauthenticated    no identity (unless allow_unauthenticated, or for pass-through callers
//                       unless authentication is optional), or one no rule knows
//   kPermissionDenied   a known caller asks for an account its rule does not list, or (minting)
//                       the gateway holds no credentials for that account
//   kResourceExhausted  the caller already has max_streams_per_caller streams
class Authorizer {
 public:
  Authorizer(const CredentialStore& store, AuthzOptions options)
      : store_(store), options_(options) {}

  // For the gateway's own credentials.
  absl::StatusOr<Grant> Authorize(const CallerIdentity& who, std::string_view account_id);
  // For a caller that sends its own `jwt`: authentication as options.pass_through_auth says (when
  // required, its rule must list the account too), and the stream limit.
  absl::StatusOr<Grant> AuthorizePassThrough(const CallerIdentity& who, std::string_view account_id,
                                             std::string_view jwt);

  bool mints() const { return store_.mints(); }
  const AuthzOptions& options() const { return options_; }

 private:
  // A slot among `grant`'s caller's streams; kResourceExhausted when there is none.
  absl::Status TakeSlot(Grant& grant);
  void Release(const std::string& caller);

  const CredentialStore& store_;
  const AuthzOptions options_;
  absl::Mutex mu_;
  absl::flat_hash_map<std::string, int> streams_ ABSL_GUARDED_BY(mu_);
};

// The upstream credentials of one stream: the caller's own (pass-through, metadata `auth` + `iid`,
// forwarded unchanged) or the gateway's, minted for the account under a Grant.
class StreamCredentials {
 public:
  // The credentials for the next request (a minted JWT is re-minted as it nears expiry, or per
  // request for apps that enforce JTI).
  UpstreamCredentials Next() const;
  bool pass_through() const { return !grant_.minter; }
  const std::string& caller() const { return grant_.caller; }  // Grant::caller

 private:
  friend absl::StatusOr<StreamCredentials> ChooseCredentials(const grpc::ServerContextBase&,
                                                             std::string_view, Authorizer*);
  UpstreamCredentials caller_;
  Grant grant_;
};

// The credentials a call uses for `account_id`: the caller's own when it sends metadata `auth`
// (which then needs `iid`), else the gateway's; `authorizer` (null in tests: pass-through only,
// unchecked) decides who may use either. Errors: kResourceExhausted (metadata above
// max_metadata_bytes), kInvalidArgument (`auth` without `iid`), kUnauthenticated (no credentials
// at all), and those of the Authorizer.
absl::StatusOr<StreamCredentials> ChooseCredentials(const grpc::ServerContextBase& context,
                                                    std::string_view account_id,
                                                    Authorizer* authorizer);

}  // namespace contacts::gateway

#endif  // CONTACTS_GATEWAY_SERVER_SERVICE_AUTHZ_H_
