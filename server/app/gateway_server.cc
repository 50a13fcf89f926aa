#include "server/app/gateway_server.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/health_check_service_interface.h>
#include <grpcpp/resource_quota.h>
#include <grpcpp/security/tls_certificate_provider.h>
#include <grpcpp/security/tls_credentials_options.h>

#include <fstream>

#include <algorithm>
#include <limits>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "grpc/health/v1/health.pb.h"
#include "server/core/error_reason.h"
#include "server/core/log.h"
#include "server/core/metrics.h"
#include "server/core/sync.h"
#include "server/fleet/redis_page_size_memory.h"
#include "server/fleet/redis_page_store.h"
#include "server/fleet/redis_rate_budget.h"
#include "server/service/contact_service.h"
#include "server/service/grpc_metrics.h"
#include "server/stream/budgeted_page_source.h"
#include "server/stream/credential_memory.h"
#include "server/stream/local_page_size_memory.h"
#include "server/stream/local_rate_budget.h"
#include "server/stream/page_cache.h"
#include "server/stream/retry.h"
#include "server/upstream/kore_client.h"

namespace contacts::gateway {
namespace {

constexpr int kWriteBufferBytes = 16 << 10;
constexpr int kMaxPingStrikes = 2;
constexpr absl::Duration kHandshakeTimeout = absl::Seconds(10);

int Millis(absl::Duration d) {
  return static_cast<int>(
      std::min<int64_t>(absl::ToInt64Milliseconds(d), std::numeric_limits<int>::max()));
}

absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> ServerCredentials(
    const ServingTlsOptions& tls) {
  if (tls.cert_file.empty()) return grpc::InsecureServerCredentials();
  // The provider only logs unreadable files; refuse to start with them instead.
  for (const std::string& file : {tls.cert_file, tls.key_file, tls.client_ca_file}) {
    if (!file.empty() && !std::ifstream(file)) {
      return absl::InvalidArgumentError(absl::StrCat("cannot read ", file));
    }
  }
  auto interval = static_cast<unsigned int>(absl::ToInt64Seconds(tls.reload_interval));
  auto provider = tls.client_ca_file.empty()
                      ? std::make_shared<grpc::experimental::FileWatcherCertificateProvider>(
                            tls.key_file, tls.cert_file, interval)
                      : std::make_shared<grpc::experimental::FileWatcherCertificateProvider>(
                            tls.key_file, tls.cert_file, tls.client_ca_file, interval);
  grpc::experimental::TlsServerCredentialsOptions options(provider);
  options.watch_identity_key_cert_pairs();
  if (!tls.client_ca_file.empty()) {
    options.watch_root_certs();
    options.set_cert_request_type(tls.require_client_cert
                                      ? GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY
                                      : GRPC_SSL_REQUEST_CLIENT_CERTIFICATE_AND_VERIFY);
  }
  return grpc::experimental::TlsServerCredentials(options);
}

// Sets a ServerBuilder's plugins: reflection on the main server, none on the probe server (which
// serves health only). Replaces gRPC's process-wide plugin registration, which would put
// reflection on every server.
class Plugins final : public grpc::ServerBuilderOption {
 public:
  explicit Plugins(bool reflection) : reflection_(reflection) {}
  void UpdateArguments(grpc::ChannelArguments*) override {}
  void UpdatePlugins(std::vector<std::unique_ptr<grpc::ServerBuilderPlugin>>* plugins) override {
    plugins->clear();
    if (reflection_)
      plugins->push_back(std::make_unique<grpc::reflection::ProtoServerReflectionPlugin>());
  }

 private:
  const bool reflection_;
};

// The channel arguments of the gRPC port: connection aging, pings, streams, sizes and memory.
void SetConnectionLimits(const Config& config, grpc::ServerBuilder& builder) {
  const ConnectionOptions& connections = config.connections;
  if (connections.max_age > absl::ZeroDuration()) {
    builder.AddChannelArgument(GRPC_ARG_MAX_CONNECTION_AGE_MS, Millis(connections.max_age));
    builder.AddChannelArgument(GRPC_ARG_MAX_CONNECTION_AGE_GRACE_MS,
                               Millis(connections.max_age_grace));
  }
  // Pings more often than that are strikes; after kMaxPingStrikes the connection ends with GOAWAY
  // ENHANCE_YOUR_CALM "too_many_pings" (what gRPC does by default, here on purpose).
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS,
                             Millis(connections.min_ping_interval));
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MAX_PING_STRIKES, kMaxPingStrikes);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS,
                             connections.permit_pings_without_calls ? 1 : 0);
  builder.AddChannelArgument(GRPC_ARG_MAX_CONCURRENT_STREAMS, connections.max_concurrent_streams);
  builder.AddChannelArgument(GRPC_ARG_MAX_METADATA_SIZE, config.max_metadata_bytes);
  // What anyone who reaches the port can make the gateway hold (see ConnectionOptions). gRPC 1.51
  // reads a request whole before checking its size, so the quota is what cuts a large one short;
  // metadata is bounded by GRPC_ARG_MAX_METADATA_SIZE above (and by the Authorizer, for clients
  // that never acknowledge SETTINGS); a TLS handshake gets kHandshakeTimeout instead of 120 s.
  builder.SetMaxReceiveMessageSize(connections.max_request_bytes);
  grpc::ResourceQuota quota("contacts-gateway");
  quota.Resize(connections.memory_quota);
  builder.SetResourceQuota(quota);
  // BDP probing grows a connection's receive window to what the link carries, which only large
  // requests need: with it, 50 connections each sending a 10 MB request made the gateway hold up
  // to 240 MiB before the quota's reclamation reached them; without it, 40-51 MiB. Callers send
  // requests of a few hundred bytes, and the window of what the gateway sends is the caller's.
  builder.AddChannelArgument(GRPC_ARG_HTTP2_BDP_PROBE, 0);
  builder.AddChannelArgument(GRPC_ARG_SERVER_HANDSHAKE_TIMEOUT_MS, Millis(kHandshakeTimeout));
  if (connections.max_idle > absl::ZeroDuration()) {
    builder.AddChannelArgument(GRPC_ARG_MAX_CONNECTION_IDLE_MS, Millis(connections.max_idle));
  }
  // How much a stream's buffer-hinted messages may wait for one socket write (see the reactor):
  // enough for ~100 one-contact messages, small enough that a stream whose caller stopped reading
  // holds little beyond its flow-control window.
  builder.AddChannelArgument(GRPC_ARG_HTTP2_WRITE_BUFFER_SIZE, kWriteBufferBytes);
}

}  // namespace

absl::Status GatewayServer::BuildPageSources(const Config& config) {
  absl::StatusOr<std::unique_ptr<KoreClient>> client = KoreClient::Create(io_, config.upstream);
  if (!client.ok()) return client.status();
  upstream_ = *std::move(client);
  if (config.shared_state.url.empty()) {
    rate_budget_ = std::make_unique<LocalRateBudget>(io_, config.rate);
    store_ = std::make_unique<LocalPageStore>(config.cache);
  } else {
    absl::Status shared = ShareThroughRedis(config);
    if (!shared.ok()) return shared;
  }
  budgeted_ = std::make_unique<BudgetedPageSource>(*rate_budget_, *upstream_);
  // Before the budget: a JWT the upstream refused lately is refused without spending a request.
  credential_memory_ =
      std::make_unique<CredentialMemoryPageSource>(io_, *budgeted_, config.credential_memory);
  retry_ = std::make_unique<RetryingPageSource>(io_, *credential_memory_, config.retry);
  cache_ = std::make_unique<CachingPageSource>(io_, *store_, *retry_);
  return absl::OkStatus();
}

absl::Status GatewayServer::BuildService(const Config& config) {
  absl::StatusOr<std::unique_ptr<CredentialStore>> credentials =
      CredentialStore::Create({config.credentials_file,
                               config.credentials_reload_interval,
                               {config.client_id, config.client_secret, config.jwt.with_jti},
                               config.jwt});
  if (!credentials.ok()) return credentials.status();
  credentials_ = *std::move(credentials);
  if (credentials_->mints()) {
    if (config.authz.allow_unauthenticated) {
      Log(Severity::kWarning,
          "--allow-unauthenticated-callers: anyone who can reach this gateway may read every "
          "account it holds credentials for; use it for local development and demos only");
    } else if (credentials_->Current()->callers.empty()) {
      return absl::InvalidArgumentError(
          "the gateway mints upstream credentials but no callers may use them: list callers in "
          "--credentials-file, or pass --allow-unauthenticated-callers (local development only)");
    }
  }
  AuthzOptions authz = config.authz;
  authz.max_metadata_bytes = static_cast<size_t>(config.max_metadata_bytes);
  authorizer_ = std::make_unique<Authorizer>(*credentials_, authz);
  if (config.stream.resume_token_keys == ResumeTokenKeys::ProcessRandom()) {
    Log(Severity::kWarning,
        "no --resume-token-key-file: resume tokens are signed with a random key of this process, "
        "so they do not survive a restart and other replicas refuse them");
  }
  local_page_sizes_ = std::make_unique<LocalPageSizeMemory>();
  if (shared_) {
    shared_page_sizes_ = std::make_unique<RedisPageSizeMemory>(*shared_, *local_page_sizes_,
                                                               config.upstream.http.base_url);
  }
  PageSizeMemory* page_sizes =
      shared_page_sizes_ ? shared_page_sizes_.get() : local_page_sizes_.get();
  service_ =
      std::make_unique<ContactService>(*cache_, authorizer_.get(), config.stream, page_sizes);
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<GatewayServer>> GatewayServer::Start(const Config& config) {
  std::unique_ptr<GatewayServer> gateway(new GatewayServer());
  Metrics().SetAccountLabels(config.metrics_accounts);
  if (absl::Status built = gateway->BuildPageSources(config); !built.ok()) return built;
  if (absl::Status built = gateway->BuildService(config); !built.ok()) return built;
  for (int i = 0; i < config.io_threads; ++i) {
    gateway->io_threads_.emplace_back([io = &gateway->io_] { io->run(); });
  }
  gateway->trimmer_ = std::make_unique<MemoryTrimmer>(gateway->io_, config.memory_trim_interval,
                                                      kMemoryTrimThreshold);

  // Reflection serves the descriptors linked into this binary; referencing the health proto keeps
  // its descriptor linked, so `describe grpc.health.v1.Health` works.
  (void)grpc::health::v1::HealthCheckRequest::descriptor();
  grpc::EnableDefaultHealthCheckService(true);  // one health service per server
  absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> server_credentials =
      ServerCredentials(config.tls);
  if (!server_credentials.ok()) return server_credentials.status();
  grpc::ServerBuilder builder;
  builder.AddListeningPort(config.listen, *server_credentials, &gateway->port_);
  SetConnectionLimits(config, builder);
  builder.SetOption(std::make_unique<Plugins>(/*reflection=*/true));
  builder.RegisterService(gateway->service_.get());
  std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> interceptors;
  interceptors.push_back(std::make_unique<GrpcMetricsInterceptorFactory>(
      Metrics(), std::vector<std::string>{StreamContactsMethod()}));
  builder.experimental().SetInterceptorCreators(std::move(interceptors));
  gateway->server_ = builder.BuildAndStart();
  if (!gateway->server_ || gateway->port_ == 0) {
    gateway->Shutdown(absl::ZeroDuration());
    return absl::UnavailableError(absl::StrCat("cannot listen on ", config.listen));
  }
  if (!config.probe_listen.empty()) {
    grpc::ServerBuilder probe;
    probe.AddListeningPort(config.probe_listen, grpc::InsecureServerCredentials(),
                           &gateway->probe_port_);
    probe.SetOption(std::make_unique<Plugins>(/*reflection=*/false));
    probe.RegisterCallbackGenericService(&gateway->probe_fallback_);
    gateway->probe_server_ = probe.BuildAndStart();
    if (!gateway->probe_server_ || gateway->probe_port_ == 0) {
      gateway->Shutdown(absl::ZeroDuration());
      return absl::UnavailableError(absl::StrCat("cannot listen on ", config.probe_listen));
    }
  }
  for (grpc::Server* server : {gateway->server_.get(), gateway->probe_server_.get()}) {
    if (server) server->GetHealthCheckService()->SetServingStatus(kLivenessService, true);
  }
  gateway->SetReady(true);
  return gateway;
}

absl::Status GatewayServer::ShareThroughRedis(const Config& config) {
  const SharedStateConfig& c = config.shared_state;
  SharedStateOptions options;
  options.redis.url = c.url;
  options.redis.ca_file = c.ca_file;
  options.redis.password = c.password;
  options.redis.connect_timeout = c.connect_timeout;
  options.redis.command_timeout = c.command_timeout;
  // A reply carries at most a stored page, whose record is capped.
  options.redis.max_reply_bytes = c.max_page_bytes + (64 << 10);
  options.prefix = c.prefix;
  options.heartbeat_interval = c.heartbeat;
  options.min_replicas = c.min_replicas;
  absl::StatusOr<std::unique_ptr<SharedState>> shared = SharedState::Create(io_, options);
  if (!shared.ok()) return shared.status();
  shared_ = *std::move(shared);
  rate_budget_ =
      std::make_unique<RedisRateBudget>(io_, *shared_,
                                        FleetBudgetOptions{.per_minute = config.rate.per_minute,
                                                           .burst = config.rate.burst,
                                                           .per_account = config.rate.per_account});
  if (c.pages && config.cache.ttl > absl::ZeroDuration()) {
    store_ = std::make_unique<RedisPageStore>(
        io_, *shared_,
        FleetPageOptions{
            .ttl = config.cache.ttl, .lease = c.lease, .max_page_bytes = c.max_page_bytes});
  } else {
    store_ = std::make_unique<LocalPageStore>(config.cache);
  }
  shared_->Start();  // after the budget and the store listen to it
  return absl::OkStatus();
}

void GatewayServer::SetReady(bool ready) {
  for (grpc::Server* server : {server_.get(), probe_server_.get()}) {
    if (server == nullptr) continue;
    grpc::HealthCheckServiceInterface* health = server->GetHealthCheckService();
    health->SetServingStatus("", ready);
    health->SetServingStatus(contacts::v1::ContactService::service_full_name(), ready);
  }
}

GatewayServer::~GatewayServer() { Shutdown(absl::ZeroDuration()); }

void GatewayServer::Shutdown(absl::Duration drain) {
  if (stopped_) return;
  stopped_ = true;
  if (server_) {
    // Readiness goes NOT_SERVING at once; liveness stays SERVING until the process exits.
    SetReady(false);
    Metrics().draining.Set(1);
    // When the drain time is up, end what still runs with UNAVAILABLE, which callers resume,
    // before gRPC's own deadline would cancel it (CANCELLED is not retried by clients).
    absl::Notification stopped;
    std::thread drainer([this, drain, &stopped] {
      if (stopped.WaitForNotificationWithTimeout(drain)) return;
      Log(Severity::kInfo, absl::StrCat("drain time over: ending ", service_->active_streams(),
                                        " stream(s) with UNAVAILABLE"));
      service_->AbortAll(WithReason(
          absl::UnavailableError("the gateway is shutting down; resume with the last resume_token"),
          reason::kGatewayDraining));
    });
    server_->Shutdown(absl::ToChronoTime(absl::Now() + drain + absl::Seconds(2)));
    server_->Wait();
    HappensAfter(
        service_.get());  // every reactor's OnDone has returned (StreamContactsReactor::OnDone)
    stopped.Notify();
    drainer.join();
  }
  // Probes see readiness NOT_SERVING (and liveness SERVING) until the drain is over.
  if (probe_server_) {
    probe_server_->Shutdown(absl::ToChronoTime(absl::Now() + absl::Seconds(1)));
    probe_server_->Wait();
  }
  if (shared_) shared_->Stop();  // leaves the fleet and closes its Redis connections
  // Let what is already queued run (cancelled fetches hand their streams back), then stop.
  trimmer_.reset();
  work_.reset();
  const absl::Time give_up = absl::Now() + absl::Seconds(1);
  while (!io_.stopped() && absl::Now() < give_up) absl::SleepFor(absl::Milliseconds(5));
  io_.stop();
  for (std::thread& thread : io_threads_) thread.join();
}

}  // namespace contacts::gateway
