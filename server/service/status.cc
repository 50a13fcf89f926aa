#include "server/service/status.h"

#include <string>

namespace contacts::gateway {

grpc::Status ToGrpcStatus(const absl::Status& status) {
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()), std::string(status.message()));
}

}  // namespace contacts::gateway
