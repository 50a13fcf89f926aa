#ifndef CONTACTS_GATEWAY_SERVER_UPSTREAM_JWT_H_
#define CONTACTS_GATEWAY_SERVER_UPSTREAM_JWT_H_

#include <optional>
#include <string>
#include <string_view>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace contacts::gateway {

// A compact HS256 JWS: base64url(header).base64url(payload).base64url(HMAC-SHA256).
std::string SignHs256(std::string_view header_json, std::string_view payload_json,
                      std::string_view secret);

// Checks an HS256 token's form, algorithm and signature (constant-time compare) and returns its
// payload JSON. Errors: kUnauthenticated with a message that never contains the token or secret.
absl::StatusOr<std::string> VerifyHs256(std::string_view token, std::string_view secret);

// What goes into the tokens the gateway mints for Kore.ai (see UPSTREAM.md "Authentication").
struct JwtOptions {
  std::string subject = "contacts-gateway";  // `sub`
  bool with_jti = false;                     // unique `jti` per token ("Enforce JTI" apps)
  absl::Duration ttl = absl::Minutes(5);     // `iat` + `exp`; zero: neither claim, no expiry
};

// Mints HS256 JWTs for one app (client id + secret) and caches the token until shortly before it
// expires. With `with_jti` every call mints a new token, since a JTI may be used only once.
// Thread-safe.
class JwtMinter {
 public:
  JwtMinter(std::string client_id, std::string client_secret, JwtOptions options);

  const std::string& client_id() const { return client_id_; }
  std::string Token(absl::Time now = absl::Now());

 private:
  std::string Mint(absl::Time now) const;

  const std::string client_id_;
  const std::string client_secret_;
  const JwtOptions options_;
  absl::Mutex mu_;
  std::string cached_ ABSL_GUARDED_BY(mu_);
  absl::Time refresh_at_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
};

}  // namespace contacts::gateway

#endif  // CONTACTS_GATEWAY_SERVER_UPSTREAM_JWT_H_
