#include "server/service/status.h"

#include <string>

#include "google/rpc/error_details.pb.h"
#include "google/rpc/status.pb.h"
#include "server/core/error_reason.h"

namespace contacts::gateway {
namespace {

// The reason of a status that came without one: what its code alone says.
const char* ReasonFromCode(absl::StatusCode code) {
  switch (code) {
    case absl::StatusCode::kInvalidArgument:
      return reason::kInvalidRequest;
    case absl::StatusCode::kUnauthenticated:
      return reason::kCallerUnauthenticated;
    case absl::StatusCode::kPermissionDenied:
      return reason::kCallerNotAllowed;
    case absl::StatusCode::kNotFound:
      return reason::kListNotFound;
    case absl::StatusCode::kResourceExhausted:
      return reason::kUpstreamRateLimited;
    case absl::StatusCode::kUnavailable:
      return reason::kUpstreamUnavailable;
    case absl::StatusCode::kDeadlineExceeded:
      return reason::kDeadlineExceeded;
    case absl::StatusCode::kCancelled:
      return reason::kCancelled;
    case absl::StatusCode::kFailedPrecondition:
      return reason::kUpstreamCertificate;
    case absl::StatusCode::kDataLoss:
      return reason::kUpstreamUnreadable;
    default:
      return reason::kInternal;
  }
}

void SetDuration(absl::Duration d, google::protobuf::Duration* out) {
  const int64_t seconds = absl::ToInt64Seconds(d);
  out->set_seconds(seconds);
  out->set_nanos(static_cast<int32_t>(absl::ToInt64Nanoseconds(d - absl::Seconds(seconds))));
}

}  // namespace

grpc::Status ToGrpcStatus(const absl::Status& status, const FailureContext& context) {
  if (status.ok()) return grpc::Status::OK;
  google::rpc::Status rich;
  rich.set_code(static_cast<int32_t>(status.code()));
  rich.set_message(std::string(status.message()));

  google::rpc::ErrorInfo info;
  std::string why = ReasonOf(status);
  info.set_reason(why.empty() ? ReasonFromCode(status.code()) : why);
  info.set_domain(kErrorDomain);
  if (!context.resume_token.empty())
    (*info.mutable_metadata())["resume_token"] = context.resume_token;
  rich.add_details()->PackFrom(info);

  const bool retryable = status.code() == absl::StatusCode::kResourceExhausted ||
                         status.code() == absl::StatusCode::kUnavailable;
  if (retryable || (status.code() == absl::StatusCode::kDeadlineExceeded && context.retry_after)) {
    google::rpc::RetryInfo retry;
    SetDuration(std::max(absl::ZeroDuration(), context.retry_after.value_or(absl::Seconds(1))),
                retry.mutable_retry_delay());
    rich.add_details()->PackFrom(retry);
  }

  if (std::string field = FieldOf(status);
      status.code() == absl::StatusCode::kInvalidArgument && !field.empty()) {
    google::rpc::BadRequest bad_request;
    google::rpc::BadRequest::FieldViolation* violation = bad_request.add_field_violations();
    violation->set_field(field);
    violation->set_description(std::string(status.message()));
    rich.add_details()->PackFrom(bad_request);
  }
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()), std::string(status.message()),
                      rich.SerializeAsString());
}

}  // namespace contacts::gateway
