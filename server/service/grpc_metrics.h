#ifndef CONTACTS_GATEWAY_SERVER_SERVICE_GRPC_METRICS_H_
#define CONTACTS_GATEWAY_SERVER_SERVICE_GRPC_METRICS_H_

#include <grpcpp/support/server_interceptor.h>

#include <string_view>

#include "server/core/metrics.h"

namespace contacts::gateway {

// Counts every RPC of a grpc::Server (callback, raw and sync methods alike) into the grpc_server_*
// families of `metrics`, as go-grpc-prometheus names and labels them. Install with
// ServerBuilder::experimental().SetInterceptorCreators. `metrics` must outlive the server.
class GrpcMetricsInterceptorFactory final
    : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  explicit GrpcMetricsInterceptorFactory(GatewayMetrics& metrics) : metrics_(metrics) {}
  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo* info) override;

 private:
  GatewayMetrics& metrics_;
};

// The name grpc-go gives a status code ("OK", "InvalidArgument", ...): go-grpc-prometheus's
// grpc_code.
std::string_view GoCodeName(grpc::StatusCode code);

}  // namespace contacts::gateway

#endif  // CONTACTS_GATEWAY_SERVER_SERVICE_GRPC_METRICS_H_
