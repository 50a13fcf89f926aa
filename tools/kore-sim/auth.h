#ifndef CONTACTS_GATEWAY_TOOLS_KORE_SIM_AUTH_H_
#define CONTACTS_GATEWAY_TOOLS_KORE_SIM_AUTH_H_

#include <functional>
#include <map>
#include <string>
#include <string_view>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace contacts::kore_sim {

// Checks the `auth` (HS256 JWT) and `iid` headers the way UPSTREAM.md "Authentication" describes:
// the token's `appId` claim names a configured app, the signature verifies with that app's secret,
// `iid` equals `appId`, an `exp` claim is not in the past and, with `require_jti`, the token has a
// `jti` claim not seen before. Owns the app secrets and the seen-jti set. Thread-safe.
class Authenticator {
 public:
  // `apps`: client id → secret.
  Authenticator(std::map<std::string, std::string, std::less<>> apps, bool require_jti);

  // OK, or kUnauthenticated whose message is what the client is told ("Invalid JWT token",
  // "JWT expired", ...). Messages never contain the token or a secret.
  absl::Status Check(std::string_view auth_header, std::string_view iid_header, absl::Time now);

 private:
  // Drops jtis whose token has expired anyway (they would be rejected as expired).
  void PruneJtis(absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const std::map<std::string, std::string, std::less<>> apps_;
  const bool require_jti_;
  absl::Mutex mu_;
  // jti → the token's expiry (InfiniteFuture when it has no `exp`).
  absl::flat_hash_map<std::string, absl::Time> seen_jtis_ ABSL_GUARDED_BY(mu_);
  size_t prune_at_size_ ABSL_GUARDED_BY(mu_) = 1024;
};

}  // namespace contacts::kore_sim

#endif  // CONTACTS_GATEWAY_TOOLS_KORE_SIM_AUTH_H_
