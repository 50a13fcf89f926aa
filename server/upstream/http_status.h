#ifndef CONTACTS_GATEWAY_SERVER_UPSTREAM_HTTP_STATUS_H_
#define CONTACTS_GATEWAY_SERVER_UPSTREAM_HTTP_STATUS_H_

#include <optional>
#include <string_view>

#include "absl/status/status.h"
#include "absl/time/time.h"

namespace contacts::gateway {

// The one table from an upstream HTTP status to the status code a caller can act on:
//   401 → kUnauthenticated, 403 → kPermissionDenied, 404 → kNotFound, 429 → kResourceExhausted,
//   400/412/422 → kInvalidArgument, 408 and 5xx → kUnavailable, 3xx → kInternal (redirects are
//   never followed), other 4xx → kFailedPrecondition, anything else → kUnknown.
// A body that says the per-minute rate limit was exceeded is kResourceExhausted whatever the
// status.
absl::StatusCode StatusCodeFromHttp(int http_status, std::string_view upstream_message);

// The status for a non-200 upstream answer: the code above, its reason (core/error_reason.h:
// LIST_NOT_FOUND, UPSTREAM_RATE_LIMITED, ...) and a message naming the HTTP status, what was being
// fetched (`what`) and the upstream's own message, if it gave one.
absl::Status StatusFromHttp(int http_status, std::string_view upstream_message,
                            std::string_view what);

// `Retry-After` as delay-seconds or an HTTP-date (RFC 9110 §10.2.3); nullopt when unreadable.
// A date in the past is a zero delay.
std::optional<absl::Duration> ParseRetryAfter(std::string_view value, absl::Time now);

}  // namespace contacts::gateway

#endif  // CONTACTS_GATEWAY_SERVER_UPSTREAM_HTTP_STATUS_H_
