#include "tools/kore-sim/auth.h"

#include <algorithm>
#include <cmath>
#include <optional>
#include <utility>

#include "absl/status/statusor.h"
#include "server/core/encoding.h"
#include "server/upstream/jwt.h"
#include "simdjson.h"

namespace contacts::kore_sim {
namespace {

constexpr char kInvalidToken[] = "Invalid JWT token";

struct Claims {
  std::string app_id;
  std::optional<double> exp;
  std::optional<std::string> jti;
};

// The claims we look at, from the (not yet verified) payload; nullopt when the token's form is
// broken or `appId` is missing.
std::optional<Claims> ReadClaims(std::string_view token) {
  const size_t first_dot = token.find('.');
  if (first_dot == std::string_view::npos) return std::nullopt;
  const size_t second_dot = token.find('.', first_dot + 1);
  if (second_dot == std::string_view::npos) return std::nullopt;
  std::optional<std::string> payload =
      gateway::Base64UrlDecode(token.substr(first_dot + 1, second_dot - first_dot - 1));
  if (!payload) return std::nullopt;

  thread_local simdjson::dom::parser parser;
  simdjson::dom::object object;
  if (parser.parse(*payload).get(object) != simdjson::SUCCESS) return std::nullopt;
  Claims claims;
  std::string_view app_id;
  if (object["appId"].get(app_id) != simdjson::SUCCESS || app_id.empty()) return std::nullopt;
  claims.app_id = std::string(app_id);
  if (simdjson::dom::element exp; object["exp"].get(exp) == simdjson::SUCCESS) {
    double value = 0;
    if (exp.get(value) != simdjson::SUCCESS) return std::nullopt;
    claims.exp = value;
  }
  if (simdjson::dom::element jti; object["jti"].get(jti) == simdjson::SUCCESS) {
    std::string_view value;
    if (jti.get(value) != simdjson::SUCCESS) return std::nullopt;
    claims.jti = std::string(value);
  }
  return claims;
}

}  // namespace

Authenticator::Authenticator(std::map<std::string, std::string, std::less<>> apps, bool require_jti)
    : apps_(std::move(apps)), require_jti_(require_jti) {}

absl::Status Authenticator::Check(std::string_view auth_header, std::string_view iid_header,
                                  absl::Time now) {
  if (auth_header.empty()) return absl::UnauthenticatedError(kInvalidToken);
  std::optional<Claims> claims = ReadClaims(auth_header);
  if (!claims) return absl::UnauthenticatedError(kInvalidToken);
  auto app = apps_.find(claims->app_id);
  if (app == apps_.end()) return absl::UnauthenticatedError(kInvalidToken);
  if (!gateway::VerifyHs256(auth_header, app->second).ok()) {
    return absl::UnauthenticatedError(kInvalidToken);
  }
  if (iid_header != claims->app_id) {
    return absl::UnauthenticatedError("iid header does not match the token's appId");
  }
  absl::Time expiry = absl::InfiniteFuture();
  if (claims->exp) {
    // JSON numbers are finite; clamping (1e13 s is about 300,000 years) keeps the cast defined.
    const double exp = std::clamp(*claims->exp, -1e13, 1e13);
    expiry = absl::FromUnixSeconds(static_cast<int64_t>(std::floor(exp)));
    if (expiry <= now) return absl::UnauthenticatedError("JWT expired");
  }
  if (!require_jti_) return absl::OkStatus();
  if (!claims->jti || claims->jti->empty()) {
    return absl::UnauthenticatedError("JWT has no jti claim");
  }
  absl::MutexLock lock(&mu_);
  if (!seen_jtis_.emplace(*std::move(claims->jti), expiry).second) {
    return absl::UnauthenticatedError("JWT jti was already used");
  }
  if (seen_jtis_.size() >= prune_at_size_) PruneJtis(now);
  return absl::OkStatus();
}

void Authenticator::PruneJtis(absl::Time now) {
  absl::erase_if(seen_jtis_, [now](const auto& entry) { return entry.second <= now; });
  prune_at_size_ = std::max<size_t>(1024, 2 * seen_jtis_.size());
}

}  // namespace contacts::kore_sim
