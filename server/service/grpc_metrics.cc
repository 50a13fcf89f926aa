#include "server/service/grpc_metrics.h"

#include <algorithm>
#include <atomic>
#include <string>
#include <vector>

#include "google/protobuf/descriptor.h"
#include "server/core/sync.h"

namespace contacts::gateway {
namespace {

using grpc::experimental::InterceptionHookPoints;
using grpc::experimental::ServerRpcInfo;

std::string_view TypeName(ServerRpcInfo::Type type) {
  switch (type) {
    case ServerRpcInfo::Type::UNARY:
      return "unary";
    case ServerRpcInfo::Type::CLIENT_STREAMING:
      return "client_stream";
    case ServerRpcInfo::Type::SERVER_STREAMING:
      return "server_stream";
    case ServerRpcInfo::Type::BIDI_STREAMING:
      return "bidi_stream";
  }
  return "unknown";
}

// One RPC's metrics, fed from the hooks of gRPC's interceptor API.
class GrpcMetricsInterceptor final : public grpc::experimental::Interceptor {
 public:
  GrpcMetricsInterceptor(GatewayMetrics& metrics, ServerRpcInfo* info)
      : rpc_(metrics, Labels(*info)) {
    // gRPC makes the interceptor on the thread that starts the call and runs each hook on the
    // thread its batch completes on, in order, through its completion queue, which TSan does not
    // see: each hook takes over from the one before (server/core/sync.h).
    HappensBefore(this);
  }

  ~GrpcMetricsInterceptor() override { HappensAfter(this); }

  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    HappensAfter(this);
    if (methods->QueryInterceptionHookPoint(InterceptionHookPoints::POST_RECV_MESSAGE) &&
        methods->GetRecvMessage() != nullptr) {
      rpc_.Received();
    }
    if (methods->QueryInterceptionHookPoint(InterceptionHookPoints::PRE_SEND_MESSAGE)) {
      rpc_.Sent();
    }
    if (methods->QueryInterceptionHookPoint(InterceptionHookPoints::PRE_SEND_STATUS)) {
      rpc_.Handled(methods->GetSendStatus().error_code());
    }
    HappensBefore(this);  // the next hook may run on another thread as soon as this proceeds
    methods->Proceed();
  }

 private:
  static std::vector<std::string> Labels(const ServerRpcInfo& info) {
    return RpcLabels(info.method() ? info.method() : "", TypeName(info.type()));
  }

  RpcMetrics rpc_;
};

}  // namespace

std::vector<std::string> RpcLabels(std::string_view full_method,
                                   std::string_view type_if_not_in_proto) {
  std::string_view method = full_method;
  if (!method.empty() && method.front() == '/') method.remove_prefix(1);
  const size_t slash = method.rfind('/');
  // The method's kind as its proto declares it, when the binary holds the descriptor: a method the
  // gateway registers as bidirectional to read its request itself is still a server stream.
  std::string type(type_if_not_in_proto);
  std::string name(method);
  std::replace(name.begin(), name.end(), '/', '.');
  if (const google::protobuf::MethodDescriptor* descriptor =
          google::protobuf::DescriptorPool::generated_pool()->FindMethodByName(name)) {
    type = descriptor->client_streaming()
               ? (descriptor->server_streaming() ? "bidi_stream" : "client_stream")
               : (descriptor->server_streaming() ? "server_stream" : "unary");
  }
  return {type, std::string(method.substr(0, slash)),
          slash == std::string_view::npos ? "" : std::string(method.substr(slash + 1))};
}

RpcMetrics::RpcMetrics(GatewayMetrics& metrics, std::vector<std::string> labels)
    : metrics_(metrics),
      labels_(std::move(labels)),
      received_(&metrics.grpc_msg_received.With(labels_)),
      sent_(&metrics.grpc_msg_sent.With(labels_)) {
  metrics_.grpc_started.With(labels_).Increment();
}

RpcMetrics::~RpcMetrics() { Handled(grpc::StatusCode::CANCELLED); }

void RpcMetrics::Handled(grpc::StatusCode code) {
  if (handled_.exchange(true)) return;
  std::vector<std::string> with_code = labels_;
  with_code.emplace_back(GoCodeName(code));
  metrics_.grpc_handled.With(with_code).Increment();
  metrics_.grpc_handling_seconds.With(labels_).Observe(
      absl::ToDoubleSeconds(absl::Now() - started_));
}

grpc::experimental::Interceptor* GrpcMetricsInterceptorFactory::CreateServerInterceptor(
    ServerRpcInfo* info) {
  if (info->method() != nullptr && std::find(counted_by_handler_.begin(), counted_by_handler_.end(),
                                             info->method()) != counted_by_handler_.end()) {
    return nullptr;
  }
  return new GrpcMetricsInterceptor(metrics_, info);
}

std::string_view GoCodeName(grpc::StatusCode code) {
  static constexpr std::string_view kNames[] = {
      "OK",       "Canceled",       "Unknown",          "InvalidArgument",   "DeadlineExceeded",
      "NotFound", "AlreadyExists",  "PermissionDenied", "ResourceExhausted", "FailedPrecondition",
      "Aborted",  "OutOfRange",     "Unimplemented",    "Internal",          "Unavailable",
      "DataLoss", "Unauthenticated"};
  size_t index = static_cast<size_t>(code);
  return index < std::size(kNames) ? kNames[index] : "Unknown";
}

}  // namespace contacts::gateway
