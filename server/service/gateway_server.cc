#include "server/service/gateway_server.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/health_check_service_interface.h>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "grpc/health/v1/health.pb.h"
#include "server/log.h"
#include "server/service/contact_service.h"

namespace contacts::gateway {

absl::StatusOr<std::unique_ptr<GatewayServer>> GatewayServer::Start(const Config& config) {
  std::unique_ptr<GatewayServer> gateway(new GatewayServer());
  absl::StatusOr<std::unique_ptr<KoreClient>> client = KoreClient::Create(gateway->io_, config.upstream);
  if (!client.ok()) return client.status();
  gateway->upstream_ = *std::move(client);
  gateway->budget_ = std::make_unique<RateLimitedPageSource>(gateway->io_, *gateway->upstream_, config.rate);
  gateway->retry_ = std::make_unique<RetryingPageSource>(gateway->io_, *gateway->budget_, config.retry);
  gateway->cache_ = std::make_unique<CachingPageSource>(gateway->io_, *gateway->retry_, config.cache);
  if (!config.client_id.empty()) {
    gateway->minter_ = std::make_unique<JwtMinter>(config.client_id, config.client_secret, config.jwt);
  }
  gateway->service_ =
      std::make_unique<ContactService>(*gateway->cache_, gateway->minter_.get(), config.stream);
  for (int i = 0; i < config.io_threads; ++i) {
    gateway->io_threads_.emplace_back([io = &gateway->io_] { io->run(); });
  }

  // Reflection serves the descriptors linked into this binary; referencing the health proto keeps
  // its descriptor linked, so `describe grpc.health.v1.Health` works.
  (void)grpc::health::v1::HealthCheckRequest::descriptor();
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  builder.AddListeningPort(config.listen, grpc::InsecureServerCredentials(), &gateway->port_);
  builder.RegisterService(gateway->service_.get());
  gateway->server_ = builder.BuildAndStart();
  if (!gateway->server_ || gateway->port_ == 0) {
    gateway->Shutdown(absl::ZeroDuration());
    return absl::UnavailableError(absl::StrCat("cannot listen on ", config.listen));
  }
  grpc::HealthCheckServiceInterface* health = gateway->server_->GetHealthCheckService();
  health->SetServingStatus(true);
  health->SetServingStatus(contacts::v1::ContactService::service_full_name(), true);
  return gateway;
}

GatewayServer::~GatewayServer() { Shutdown(absl::ZeroDuration()); }

void GatewayServer::Shutdown(absl::Duration drain) {
  if (stopped_) return;
  stopped_ = true;
  if (server_) {
    server_->GetHealthCheckService()->Shutdown();  // NOT_SERVING for every service, at once
    // When the drain time is up, end what still runs with UNAVAILABLE, which callers resume,
    // before gRPC's own deadline would cancel it (CANCELLED is not retried by clients).
    absl::Notification stopped;
    std::thread drainer([this, drain, &stopped] {
      if (stopped.WaitForNotificationWithTimeout(drain)) return;
      Log(Severity::kInfo, absl::StrCat("drain time over: ending ", service_->active_streams(),
                                        " stream(s) with UNAVAILABLE"));
      service_->AbortAll(absl::UnavailableError(
          "the gateway is shutting down; resume with the last resume_token"));
    });
    server_->Shutdown(absl::ToChronoTime(absl::Now() + drain + absl::Seconds(2)));
    server_->Wait();
    stopped.Notify();
    drainer.join();
  }
  work_.reset();
  io_.stop();
  for (std::thread& thread : io_threads_) thread.join();
}

}  // namespace contacts::gateway
