#include "server/upstream/http_status.h"

#include "absl/strings/str_cat.h"
#include "server/core/encoding.h"

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
  if (!upstream_message.empty()) {
    absl::StrAppend(&message, ": ", AsAbsl(upstream_message));
  }
  return absl::Status(StatusCodeFromHttp(http_status, upstream_message), message);
}

}  // namespace contacts::gateway
