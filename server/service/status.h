#ifndef CONTACTS_GATEWAY_SERVER_SERVICE_STATUS_H_
#define CONTACTS_GATEWAY_SERVER_SERVICE_STATUS_H_

#include <grpcpp/support/status.h>

#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/time/time.h"

namespace contacts::gateway {

// What the stream knows besides the status itself, for the caller's next move.
struct FailureContext {
  std::string resume_token{};                   // where to continue; "" when no contact went out
  std::optional<absl::Duration> retry_after{};  // when a new call may succeed, if known
};

// The one conversion from the gateway's absl::Status to what a gRPC caller sees: the code, the
// message, and (AIP-193) a google.rpc.Status in grpc-status-details-bin whose details hold
//  - ErrorInfo: domain "contacts-gateway", the reason set on the status (core/error_reason.h; one
//    derived from the code when none was), metadata `resume_token` when contacts went out;
//  - RetryInfo on RESOURCE_EXHAUSTED and UNAVAILABLE (the known delay, else a second), and on
//    DEADLINE_EXCEEDED when a delay is known (a rate budget that could not fit the deadline);
//  - BadRequest on INVALID_ARGUMENT when the status names the field.
grpc::Status ToGrpcStatus(const absl::Status& status, const FailureContext& context = {});

}  // namespace contacts::gateway

#endif  // CONTACTS_GATEWAY_SERVER_SERVICE_STATUS_H_
