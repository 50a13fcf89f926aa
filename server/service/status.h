#ifndef CONTACTS_GATEWAY_SERVER_SERVICE_STATUS_H_
#define CONTACTS_GATEWAY_SERVER_SERVICE_STATUS_H_

#include <grpcpp/support/status.h>

#include "absl/status/status.h"

namespace contacts::gateway {

// The one conversion from the gateway's absl::Status to what a gRPC caller sees.
grpc::Status ToGrpcStatus(const absl::Status& status);

}  // namespace contacts::gateway

#endif  // CONTACTS_GATEWAY_SERVER_SERVICE_STATUS_H_
