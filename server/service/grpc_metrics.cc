#include "server/service/grpc_metrics.h"

#include <algorithm>
#include <atomic>
#include <string>
#include <vector>

#include "absl/time/clock.h"
#include "google/protobuf/descriptor.h"
#include "server/core/sync.h"

namespace contacts::gateway {
namespace {

using grpc::experimental::InterceptionHookPoints;
using grpc::experimental::ServerRpcInfo;

// The method's kind as its proto declares it, when the binary holds the descriptor: a method the
// gateway registers as bidirectional to read its request itself is still a server stream.
std::string TypeName(const ServerRpcInfo& info, std::string_view full_method) {
  std::string name(full_method);
  std::replace(name.begin(), name.end(), '/', '.');
  if (const google::protobuf::MethodDescriptor* method =
          google::protobuf::DescriptorPool::generated_pool()->FindMethodByName(name)) {
    if (method->client_streaming())
      return method->server_streaming() ? "bidi_stream" : "client_stream";
    return method->server_streaming() ? "server_stream" : "unary";
  }
  switch (info.type()) {
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

// One RPC: started on creation, handled when the status goes out (or, if none ever does, as
// Canceled when gRPC destroys the interceptor with the call).
class GrpcMetricsInterceptor final : public grpc::experimental::Interceptor {
 public:
  GrpcMetricsInterceptor(GatewayMetrics& metrics, ServerRpcInfo* info) : metrics_(metrics) {
    std::string_view method = info->method() ? info->method() : "";  // "/package.Service/Method"
    if (!method.empty() && method.front() == '/') method.remove_prefix(1);
    size_t slash = method.rfind('/');
    labels_ = {TypeName(*info, method), std::string(method.substr(0, slash)),
               slash == std::string_view::npos ? "" : std::string(method.substr(slash + 1))};
    metrics_.grpc_started.With(labels_).Increment();
    sent_ = &metrics_.grpc_msg_sent.With(labels_);
    // gRPC makes the interceptor on the thread that starts the call and runs each hook on the
    // thread its batch completes on, in order, through its completion queue, which TSan does not
    // see: each hook takes over from the one before (server/core/sync.h).
    HappensBefore(this);
  }

  ~GrpcMetricsInterceptor() override {
    HappensAfter(this);
    Handled(grpc::StatusCode::CANCELLED);
  }

  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    HappensAfter(this);
    if (methods->QueryInterceptionHookPoint(InterceptionHookPoints::POST_RECV_MESSAGE) &&
        methods->GetRecvMessage() != nullptr) {
      metrics_.grpc_msg_received.With(labels_).Increment();
    }
    // Counted when handed to gRPC (as grpc-go's SendMsg returns), so before the caller can see it.
    if (methods->QueryInterceptionHookPoint(InterceptionHookPoints::PRE_SEND_MESSAGE)) {
      sent_->Increment();
    }
    if (methods->QueryInterceptionHookPoint(InterceptionHookPoints::PRE_SEND_STATUS)) {
      Handled(methods->GetSendStatus().error_code());
    }
    HappensBefore(this);  // the next hook may run on another thread as soon as this proceeds
    methods->Proceed();
  }

 private:
  // Counts the call as handled with `code`, the first time only.
  void Handled(grpc::StatusCode code) {
    if (handled_.exchange(true)) return;
    std::vector<std::string> with_code = labels_;
    with_code.emplace_back(GoCodeName(code));
    metrics_.grpc_handled.With(with_code).Increment();
    metrics_.grpc_handling_seconds.With(labels_).Observe(
        absl::ToDoubleSeconds(absl::Now() - started_));
  }

  GatewayMetrics& metrics_;
  const absl::Time started_ = absl::Now();
  std::vector<std::string> labels_;  // grpc_type, grpc_service, grpc_method
  Counter* sent_;
  std::atomic<bool> handled_{false};
};

}  // namespace

grpc::experimental::Interceptor* GrpcMetricsInterceptorFactory::CreateServerInterceptor(
    ServerRpcInfo* info) {
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
