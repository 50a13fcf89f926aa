#include "server/upstream/http_status.h"

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "server/core/encoding.h"
#include "server/core/error_reason.h"

namespace contacts::gateway {

absl::StatusCode StatusCodeFromHttp(int http_status, std::string_view upstream_message) {
  if (upstream_message.find("exceeded the per-minute rate limit") != std::string_view::npos) {
    return absl::StatusCode::kResourceExhausted;
  }
  switch (http_status) {
    case 400:
    case 412:
    case 422:
      return absl::StatusCode::kInvalidArgument;
    case 401:
      return absl::StatusCode::kUnauthenticated;
    case 403:
      return absl::StatusCode::kPermissionDenied;
    case 404:
      return absl::StatusCode::kNotFound;
    case 408:
      return absl::StatusCode::kUnavailable;
    case 429:
      return absl::StatusCode::kResourceExhausted;
  }
  if (http_status >= 500 && http_status <= 599) return absl::StatusCode::kUnavailable;
  if (http_status >= 300 && http_status <= 399) return absl::StatusCode::kInternal;
  if (http_status >= 400 && http_status <= 499) return absl::StatusCode::kFailedPrecondition;
  return absl::StatusCode::kUnknown;
}

absl::Status StatusFromHttp(int http_status, std::string_view upstream_message,
                            std::string_view what) {
  std::string message = absl::StrCat("upstream answered HTTP ", http_status, " for ", AsAbsl(what));
  if (!upstream_message.empty()) absl::StrAppend(&message, ": ", AsAbsl(upstream_message));
  const absl::StatusCode code = StatusCodeFromHttp(http_status, upstream_message);
  const char* why = reason::kUpstreamRejectedRequest;
  switch (code) {
    case absl::StatusCode::kUnauthenticated:
      why = reason::kUpstreamUnauthenticated;
      break;
    case absl::StatusCode::kPermissionDenied:
      why = reason::kUpstreamPermissionDenied;
      break;
    case absl::StatusCode::kNotFound:
      why = reason::kListNotFound;
      break;
    case absl::StatusCode::kResourceExhausted:
      why = reason::kUpstreamRateLimited;
      break;
    case absl::StatusCode::kUnavailable:
      why = reason::kUpstreamUnavailable;
      break;
    case absl::StatusCode::kInternal:
    case absl::StatusCode::kUnknown:
      why = reason::kUpstreamUnreadable;
      break;
    default:
      break;
  }
  return WithReason(absl::Status(code, message), why);
}

std::optional<absl::Duration> ParseRetryAfter(std::string_view value, absl::Time now) {
  absl::string_view text = absl::StripAsciiWhitespace(AsAbsl(value));
  int64_t seconds = 0;
  if (absl::SimpleAtoi(text, &seconds)) {
    if (seconds < 0) return std::nullopt;
    return absl::Seconds(seconds);
  }
  // IMF-fixdate ("Sun, 06 Nov 1994 08:49:37 GMT"), then the obsolete RFC 850 and asctime forms.
  for (const char* format :
       {"%a, %d %b %Y %H:%M:%S GMT", "%A, %d-%b-%y %H:%M:%S GMT", "%a %b %e %H:%M:%S %Y"}) {
    absl::Time when;
    std::string error;
    if (absl::ParseTime(format, text, absl::UTCTimeZone(), &when, &error)) {
      return std::max(absl::ZeroDuration(), when - now);
    }
  }
  return std::nullopt;
}

}  // namespace contacts::gateway
