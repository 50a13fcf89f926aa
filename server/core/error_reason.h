#ifndef CONTACTS_GATEWAY_SERVER_CORE_ERROR_REASON_H_
#define CONTACTS_GATEWAY_SERVER_CORE_ERROR_REASON_H_

// Why a call failed, in a word a program can act on: the `reason` of the google.rpc.ErrorInfo that
// every non-OK status carries to the caller (service/status.h builds it; domain kErrorDomain).
// The code that decides a failure sets its reason on the absl::Status (a payload), so that the
// reason travels with the status through retries, coalescing and the reactor unchanged.

#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/strings/cord.h"

namespace contacts::gateway {

inline constexpr char kErrorDomain[] = "contacts-gateway";

// The reasons (UPPER_SNAKE_CASE, AIP-193), by where the failure comes from.
namespace reason {
// The request itself.
inline constexpr char kInvalidRequest[] = "INVALID_REQUEST";
inline constexpr char kInvalidResumeToken[] = "INVALID_RESUME_TOKEN";
// The caller, as the gateway sees it.
inline constexpr char kCallerUnauthenticated[] = "CALLER_UNAUTHENTICATED";
inline constexpr char kCallerNotAllowed[] = "CALLER_NOT_ALLOWED";
inline constexpr char kCallerStreamLimit[] = "CALLER_STREAM_LIMIT";
inline constexpr char kNoCredentials[] = "NO_UPSTREAM_CREDENTIALS";
// The upstream's answers.
inline constexpr char kUpstreamUnauthenticated[] = "UPSTREAM_UNAUTHENTICATED";
inline constexpr char kUpstreamPermissionDenied[] = "UPSTREAM_PERMISSION_DENIED";
inline constexpr char kListNotFound[] = "LIST_NOT_FOUND";
inline constexpr char kUpstreamRateLimited[] = "UPSTREAM_RATE_LIMITED";
inline constexpr char kUpstreamUnavailable[] = "UPSTREAM_UNAVAILABLE";
inline constexpr char kUpstreamRejectedRequest[] = "UPSTREAM_REJECTED_REQUEST";
inline constexpr char kUpstreamUnreadable[] = "UPSTREAM_UNREADABLE";
inline constexpr char kUpstreamPaging[] = "UPSTREAM_PAGING_BROKEN";
inline constexpr char kUpstreamCertificate[] = "UPSTREAM_CERTIFICATE_REJECTED";
// The gateway's own limits and state.
inline constexpr char kRateBudgetExhausted[] = "RATE_BUDGET_EXHAUSTED";
inline constexpr char kDeadlineExceeded[] = "DEADLINE_EXCEEDED";
inline constexpr char kGatewayDraining[] = "GATEWAY_DRAINING";
inline constexpr char kGatewayOverloaded[] = "GATEWAY_OVERLOADED";
inline constexpr char kCancelled[] = "CANCELLED";
inline constexpr char kInternal[] = "INTERNAL";
}  // namespace reason

inline constexpr char kReasonPayload[] = "contacts-gateway/reason";
inline constexpr char kFieldPayload[] = "contacts-gateway/field";

// `status` with its reason set (replacing any earlier one); OK stays OK.
inline absl::Status WithReason(absl::Status status, std::string_view why) {
  if (!status.ok()) {
    status.SetPayload(kReasonPayload, absl::Cord(absl::string_view(why.data(), why.size())));
  }
  return status;
}

// The reason set on `status`, or "" when none was.
inline std::string ReasonOf(const absl::Status& status) {
  auto why = status.GetPayload(kReasonPayload);
  return why ? std::string(*why) : std::string();
}

// `status` naming the request field that is wrong (for google.rpc.BadRequest); OK stays OK.
inline absl::Status WithField(absl::Status status, std::string_view field) {
  if (!status.ok()) {
    status.SetPayload(kFieldPayload, absl::Cord(absl::string_view(field.data(), field.size())));
  }
  return status;
}

inline std::string FieldOf(const absl::Status& status) {
  auto field = status.GetPayload(kFieldPayload);
  return field ? std::string(*field) : std::string();
}

// A status of `code` with `message` that keeps `from`'s payloads (its reason, its field): for code
// that rewords or recodes a failure on its way up.
inline absl::Status Rewritten(const absl::Status& from, absl::StatusCode code,
                              std::string_view message) {
  absl::Status to(code, absl::string_view(message.data(), message.size()));
  from.ForEachPayload(
      [&to](absl::string_view url, const absl::Cord& payload) { to.SetPayload(url, payload); });
  return to;
}

}  // namespace contacts::gateway

#endif  // CONTACTS_GATEWAY_SERVER_CORE_ERROR_REASON_H_
