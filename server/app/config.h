#ifndef CONTACTS_GATEWAY_SERVER_APP_CONFIG_H_
#define CONTACTS_GATEWAY_SERVER_APP_CONFIG_H_

#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "server/core/log.h"
#include "server/service/authz.h"
#include "server/service/contact_service.h"
#include "server/stream/credential_memory.h"
#include "server/stream/local_rate_budget.h"
#include "server/stream/page_cache.h"
#include "server/stream/retry.h"
#include "server/upstream/jwt.h"
#include "server/upstream/kore_client.h"

namespace contacts::gateway {

// How the gRPC server treats client connections. Closing connections at an age makes clients
// reconnect, so that Kubernetes spreads long-lived clients over new pods; the keepalive rules
// accept what grpc-go and grpc-java clients may send (their keepalive time is at least 10 s).
struct ConnectionOptions {
  absl::Duration max_age = absl::Minutes(5);  // then GOAWAY; 0 = never
  // For calls in flight after that GOAWAY: unlimited, so that aging only moves new calls to other
  // pods and never cuts an hours-long stream (gRFC A9's default); a drain still bounds shutdown.
  absl::Duration max_age_grace = absl::InfiniteDuration();
  absl::Duration min_ping_interval = absl::Seconds(10);  // clients pinging more often are cut off
  bool permit_pings_without_calls = true;
  int max_concurrent_streams = 100;  // per connection
  // What anyone who reaches the port can make the gateway hold before any authorization runs.
  // The largest request message: a larger one ends RESOURCE_EXHAUSTED, but only once gRPC 1.51 has
  // read it whole. The memory gRPC's ResourceQuota lets every connection and call of the server
  // use together (socket reads, HTTP/2 buffers): over it, gRPC resets a stream (ENHANCE_YOUR_CALM)
  // per reclamation pass and closes idle connections, which is what stops a large request early.
  // How long a connection may carry no call: gRPC 1.51 has no limit on the number of connections.
  int max_request_bytes = 4096;
  size_t memory_quota = 64 << 20;
  absl::Duration max_idle = absl::Minutes(2);  // then GOAWAY; 0 = never
};

// TLS for the gateway's own callers; certificate files are re-read every reload_interval (gRPC's
// FileWatcherCertificateProvider), so rotated Kubernetes secrets apply without a restart.
struct ServingTlsOptions {
  std::string cert_file;  // PEM chain; "" = plaintext gRPC
  std::string key_file;
  std::string client_ca_file;  // verify client certificates against this CA (mTLS)
  bool require_client_cert = false;
  absl::Duration reload_interval = absl::Seconds(60);
};

// Replicas sharing each account's upstream budget, and fetched pages, through Redis (fleet/). An
// empty url keeps every process on its own, as without it.
struct SharedStateConfig {
  std::string url;  // redis://[USER@]HOST[:PORT][/DB] or rediss://
  std::string ca_file;
  std::string password;  // never printed
  std::string prefix = "contacts-gateway:";
  absl::Duration connect_timeout = absl::Seconds(2);
  absl::Duration command_timeout = absl::Milliseconds(500);
  absl::Duration heartbeat = absl::Seconds(1);
  int64_t min_replicas = 1;
  bool pages = false;  // share fetched pages too (they hold phone numbers: opt in)
  absl::Duration lease = absl::Seconds(10);
  size_t max_page_bytes = 1 << 20;
};

// Everything contacts-gateway can be told, with its defaults.
struct Config {
  // "[::]" listens on IPv6 and IPv4 alike (IPv4 only where the host has no IPv6).
  std::string listen = "[::]:50051";
  ConnectionOptions connections;
  std::string admin_listen = "[::]:9090";  // empty: no admin port
  // Plaintext gRPC health only, for kubelet probes while `listen` serves TLS; empty: none. Off by
  // default: a fixed port would collide where several gateways share a host (tests, benchmarks);
  // deploy/k8s sets [::]:50052.
  std::string probe_listen;
  // Per-account metric series for the first N accounts seen (later ones as "_other"); 0 = none.
  int metrics_accounts = 0;
  KoreClientOptions upstream;
  RetryOptions retry;
  RateBudgetOptions rate;
  CredentialMemoryOptions credential_memory;
  PageCacheOptions cache;
  SharedStateConfig shared_state;
  std::string client_id;
  std::string client_secret;  // never printed
  std::string credentials_file;
  absl::Duration credentials_reload_interval = absl::Seconds(10);
  AuthzOptions authz;
  ServingTlsOptions tls;
  int max_metadata_bytes = 8192;  // request metadata a caller may send
  JwtOptions jwt;
  StreamOptions stream;
  int io_threads = 2;
  absl::Duration memory_trim_interval = absl::Seconds(10);  // 0 = never (see MemoryTrimmer)
  absl::Duration drain_timeout = absl::Seconds(20);
  Severity log_level = Severity::kInfo;
};

// Reads flags (`--name=value`, `--name value`, `--flag` for booleans) over environment variables
// (`CONTACTS_GATEWAY_NAME`, upper case, '-' as '_') over the defaults. `getenv` is injectable for
// tests. Sets *help and returns a default Config when --help is given.
// Errors: kInvalidArgument with one line naming the flag and the problem (never a secret's value).
absl::StatusOr<Config> ParseConfig(const std::vector<std::string>& args,
                                   const std::function<const char*(const char*)>& getenv,
                                   bool* help);

// The --help text: every flag, its environment variable, its default and what it does.
std::string HelpText();

}  // namespace contacts::gateway

#endif  // CONTACTS_GATEWAY_SERVER_APP_CONFIG_H_
