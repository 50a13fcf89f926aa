#ifndef CONTACTS_GATEWAY_SERVER_SERVICE_GRPC_METRICS_H_
#define CONTACTS_GATEWAY_SERVER_SERVICE_GRPC_METRICS_H_

#include <grpcpp/support/server_interceptor.h>

#include <atomic>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/time/clock.h"
#include "absl/time/time.h"

#include "server/core/metrics.h"

namespace contacts::gateway {

// The labels grpc_type, grpc_service, grpc_method of "/package.Service/Method"; grpc_type as the
// proto declares the method when the binary holds its descriptor, else `type_if_not_in_proto`.
std::vector<std::string> RpcLabels(std::string_view full_method,
                                   std::string_view type_if_not_in_proto = "unknown");

// One RPC in the grpc_server_* families of `metrics`, as go-grpc-prometheus names and labels them
// (`labels`: grpc_type, grpc_service, grpc_method): started when made, each message received and
// sent, handled with its code the first time Handled is called, or as Canceled when destroyed
// without. Thread-safe.
class RpcMetrics {
 public:
  RpcMetrics(GatewayMetrics& metrics, std::vector<std::string> labels);
  ~RpcMetrics();
  RpcMetrics(const RpcMetrics&) = delete;
  RpcMetrics& operator=(const RpcMetrics&) = delete;

  void Received() { received_->Increment(); }
  // When a message is handed to gRPC (as grpc-go's SendMsg returns), so before the caller sees it.
  void Sent() { sent_->Increment(); }
  // When the status is handed to gRPC.
  void Handled(grpc::StatusCode code);

 private:
  GatewayMetrics& metrics_;
  const absl::Time started_ = absl::Now();
  const std::vector<std::string> labels_;
  Counter* const received_;
  Counter* const sent_;
  std::atomic<bool> handled_{false};
};

// Counts every RPC of a grpc::Server (callback, raw and sync methods alike) through RpcMetrics,
// except the methods in `counted_by_handler` ("/package.Service/Method"), whose handlers count
// themselves: with any interceptor on a call, gRPC completes each of the call's operations with a
// second, empty batch through its completion queue, which a stream pays on every message. Install
// with ServerBuilder::experimental().SetInterceptorCreators. `metrics` must outlive the server.
class GrpcMetricsInterceptorFactory final
    : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  GrpcMetricsInterceptorFactory(GatewayMetrics& metrics,
                                std::vector<std::string> counted_by_handler = {})
      : metrics_(metrics), counted_by_handler_(std::move(counted_by_handler)) {}
  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo* info) override;

 private:
  GatewayMetrics& metrics_;
  const std::vector<std::string> counted_by_handler_;
};

// The name grpc-go gives a status code ("OK", "InvalidArgument", ...): go-grpc-prometheus's
// grpc_code.
std::string_view GoCodeName(grpc::StatusCode code);

}  // namespace contacts::gateway

#endif  // CONTACTS_GATEWAY_SERVER_SERVICE_GRPC_METRICS_H_
