#ifndef CONTACTS_GATEWAY_SERVER_APP_GATEWAY_SERVER_H_
#define CONTACTS_GATEWAY_SERVER_APP_GATEWAY_SERVER_H_

#include <grpcpp/generic/async_generic_service.h>
#include <grpcpp/grpcpp.h>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <memory>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "server/app/config.h"
#include "server/app/memory_trim.h"
#include "server/core/page_size_memory.h"
#include "server/core/page_store.h"
#include "server/core/rate_budget.h"
#include "server/fleet/shared_state.h"
#include "server/service/contact_service.h"

namespace contacts::gateway {

// The whole gateway in one object: the upstream I/O threads, the KoreClient, the credentials and
// who may use them, and the gRPC server (plaintext, TLS or mTLS) with ContactService, health and
// reflection. Health serves readiness as "" and "contacts.v1.ContactService" (NOT_SERVING from the
// start of a drain) and liveness as kLivenessService (SERVING until the process ends). With
// Config::probe_listen a second, plaintext gRPC server serves the same health statuses and nothing
// else, for kubelet probes (they cannot speak TLS); it stops after the main server.
// Tests start it on port 0 in-process; main.cc runs one until a signal.
class GatewayServer {
 public:
  static constexpr char kLivenessService[] = "liveness";

  // Errors: kInvalidArgument for unusable configuration, kUnavailable when it cannot listen.
  static absl::StatusOr<std::unique_ptr<GatewayServer>> Start(const Config& config);
  ~GatewayServer();

  int port() const { return port_; }
  int probe_port() const { return probe_port_; }  // 0 without a probe port

  // Readiness goes NOT_SERVING at once and new calls are refused; streams in flight get until
  // `drain` to finish, then end with UNAVAILABLE and a resume token (see ContactService::AbortAll).
  // Returns when everything has stopped. Idempotent.
  void Shutdown(absl::Duration drain);

  // Streams in flight, for tests and logs.
  size_t active_streams() const { return service_->active_streams(); }

 private:
  GatewayServer() = default;
  // The page sources, from the upstream client through the budget, the memory of refused JWTs
  // and retries up to the page cache; the budget and page store local or through Redis.
  absl::Status BuildPageSources(const Config& config);
  // rate_budget_ and store_ through Redis (--shared-state).
  absl::Status ShareThroughRedis(const Config& config);
  // Callers' credentials, their authorization, and the ContactService over the page cache.
  absl::Status BuildService(const Config& config);
  // Sets the readiness services ("" and ContactService) on both servers' health services.
  void SetReady(bool ready);

  boost::asio::io_context io_;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work_{
      io_.get_executor()};
  std::vector<std::thread> io_threads_;
  std::unique_ptr<MemoryTrimmer> trimmer_;  // on io_, stopped before it
  // Callers → cache_ (shares pages through store_) → retry_ → credential_memory_ (refuses callers'
  // JWTs the upstream refused lately) → budgeted_ (asks rate_budget_ before every attempt) →
  // upstream_ (the Kore.ai adapter). With --shared-state, rate_budget_ (and with
  // --shared-state-pages, store_) are shared with the other replicas through shared_ (Redis).
  std::unique_ptr<PageSource> upstream_;
  std::unique_ptr<SharedState> shared_;
  std::unique_ptr<RateBudget> rate_budget_;
  std::unique_ptr<PageSource> budgeted_;
  std::unique_ptr<PageSource> credential_memory_;
  std::unique_ptr<PageSource> retry_;
  std::unique_ptr<PageStore> store_;
  std::unique_ptr<PageSource> cache_;
  std::unique_ptr<CredentialStore> credentials_;
  std::unique_ptr<Authorizer> authorizer_;
  // The largest page the upstream serves, per account: this process's memory, and with
  // --shared-state the fleet's in front of it.
  std::unique_ptr<PageSizeMemory> local_page_sizes_;
  std::unique_ptr<PageSizeMemory> shared_page_sizes_;
  std::unique_ptr<ContactService> service_;
  std::unique_ptr<grpc::Server> server_;
  // Answers UNIMPLEMENTED to every method but health's on the probe server (gRPC wants a
  // callback service on a server before it adds its default health service).
  grpc::CallbackGenericService probe_fallback_;
  std::unique_ptr<grpc::Server> probe_server_;  // health only, plaintext; null without
  int port_ = 0;
  int probe_port_ = 0;
  bool stopped_ = false;
};

}  // namespace contacts::gateway

#endif  // CONTACTS_GATEWAY_SERVER_APP_GATEWAY_SERVER_H_
