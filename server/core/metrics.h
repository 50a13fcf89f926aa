#ifndef CONTACTS_GATEWAY_SERVER_CORE_METRICS_H_
#define CONTACTS_GATEWAY_SERVER_CORE_METRICS_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_set.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace contacts::gateway {

// Prometheus metrics, rendered in the text exposition format 0.0.4. Updates are lock-free atomics;
// only finding a labelled series (Family::With) takes a mutex, so hot paths look a series up once
// and keep the reference. Series are never removed: references stay valid as long as the Registry.

class Counter {
 public:
  void Increment(uint64_t n = 1) { value_.fetch_add(n, std::memory_order_relaxed); }
  uint64_t value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> value_{0};
};

class Gauge {
 public:
  void Add(int64_t n) { value_.fetch_add(n, std::memory_order_relaxed); }
  void Set(int64_t n) { value_.store(n, std::memory_order_relaxed); }
  int64_t value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<int64_t> value_{0};
};

// Observations counted into fixed buckets (upper bounds, ascending; +Inf is implicit).
class Histogram {
 public:
  explicit Histogram(const std::vector<double>& bounds)
      : bounds_(bounds), counts_(bounds.size() + 1) {}
  void Observe(double value);

  // Cumulative counts per bound, +Inf last (which is also the count).
  std::vector<uint64_t> Cumulative() const;
  double sum() const { return sum_.load(std::memory_order_relaxed); }
  const std::vector<double>& bounds() const { return bounds_; }

 private:
  const std::vector<double>& bounds_;  // the family's
  std::vector<std::atomic<uint64_t>> counts_;
  std::atomic<double> sum_{0};
};

// The buckets of go-grpc-prometheus's handling-time histogram (prometheus.DefBuckets).
inline const std::vector<double> kDefaultBuckets = {.005, .01, .025, .05, .1, .25,
                                                    .5,   1,   2.5,  5,   10};

// Renders samples at scrape time; the Registry holds them in the order they were added.
class Collector {
 public:
  virtual ~Collector() = default;
  // Appends HELP, TYPE and the samples of every family it renders.
  virtual void Render(std::string* out) const = 0;
};

// One metric name with its label names; a series per distinct tuple of label values.
class FamilyBase : public Collector {
 public:
  FamilyBase(std::string name, std::string help, std::string type, std::vector<std::string> labels)
      : name_(std::move(name)),
        help_(std::move(help)),
        type_(std::move(type)),
        labels_(std::move(labels)) {}

 protected:
  using Values = std::vector<std::string>;
  // Appends `name``suffix`{label="value",...,extra_label="extra_value"} value
  void Sample(absl::string_view suffix, const Values& values, absl::string_view extra_label,
              absl::string_view extra_value, absl::string_view value, std::string* out) const;

  const std::string name_;
  const std::string help_;
  const std::string type_;
  const std::vector<std::string> labels_;
};

template <typename Metric>
class Family final : public FamilyBase {
 public:
  Family(std::string name, std::string help, std::vector<std::string> labels,
         std::vector<double> bounds = {});

  // The series with these label values (as many as label names), created on first use.
  Metric& With(const std::vector<std::string>& values);
  void Render(std::string* out) const override;

 private:
  const std::vector<double> bounds_;  // histograms only
  mutable absl::Mutex mu_;
  std::map<Values, std::unique_ptr<Metric>> series_ ABSL_GUARDED_BY(mu_);
};

extern template class Family<Counter>;
extern template class Family<Gauge>;
extern template class Family<Histogram>;

// The process_* metrics every Prometheus client library exports on Linux, read from procfs at
// each scrape: process_cpu_seconds_total, process_resident_memory_bytes,
// process_virtual_memory_bytes, process_open_fds, process_max_fds, process_start_time_seconds.
// `proc` is procfs' mount point and `self` the process's directory in it (tests pass a fake
// tree); a file that cannot be read leaves its metrics out of the scrape.
class ProcessCollector final : public Collector {
 public:
  explicit ProcessCollector(std::string proc = "/proc", std::string self = "self");
  void Render(std::string* out) const override;

 private:
  const std::string proc_;
  const std::string self_;
  const long ticks_per_second_;
  const long page_bytes_;
};

// Owns families and collectors and renders them in the order they were added.
class Registry {
 public:
  // `bounds` for histograms only.
  template <typename Metric>
  Family<Metric>& Add(std::string name, std::string help, std::vector<std::string> labels = {},
                      std::vector<double> bounds = {}) {
    auto family = std::make_unique<Family<Metric>>(std::move(name), std::move(help),
                                                   std::move(labels), std::move(bounds));
    Family<Metric>& out = *family;
    collectors_.push_back(std::move(family));
    return out;
  }
  void AddCollector(std::unique_ptr<Collector> collector) {
    collectors_.push_back(std::move(collector));
  }
  std::string Render() const;

 private:
  std::vector<std::unique_ptr<Collector>> collectors_;  // filled before use, then read-only
};

// Escaping of the text format: label values escape \ " and newline; HELP text \ and newline.
std::string EscapeLabelValue(std::string_view value);
std::string EscapeHelp(std::string_view help);

// Everything contacts-gateway exports, in the process-wide registry (see README "Metrics").
// The series without labels are resolved once here, so callers update them without a lookup.
struct GatewayMetrics {
  GatewayMetrics();

  // One upstream HTTP exchange: `code` is the HTTP status, or "transport_error".
  void UpstreamExchange(std::string_view code, absl::Duration took);

  // Per-account series (account_*) for the first `accounts` accounts seen, later ones counted as
  // account="(other)", which no account id can be: at most accounts + 1 series per family. 0 (the
  // default): none.
  void SetAccountLabels(int accounts);
  // The upstream answered 429 to a request of `account`.
  void AccountThrottled(std::string_view account);
  // A request of `account` waited for the account's rate budget.
  void AccountBudgetWait(std::string_view account);
  // The largest page the upstream serves for `account`, as remembered (accounts past the first N
  // have no series: a gauge of "(other)" would mean nothing).
  void AccountPageSize(std::string_view account, int64_t size);

  Registry registry;

  // go-grpc-prometheus names and labels, for every service (filled by GrpcMetricsInterceptor).
  Family<Counter>& grpc_started;       // grpc_type, grpc_service, grpc_method
  Family<Counter>& grpc_handled;       // ... and grpc_code (Go names: OK, InvalidArgument, ...)
  Family<Counter>& grpc_msg_received;  // grpc_type, grpc_service, grpc_method
  Family<Counter>& grpc_msg_sent;      // grpc_type, grpc_service, grpc_method
  Family<Histogram>& grpc_handling_seconds;

  // The gateway's own, prefix contacts_gateway_.
  Family<Counter>& upstream_requests;    // code: HTTP status, or "transport_error"
  Histogram& upstream_request_seconds;   // each upstream HTTP exchange
  Family<Counter>& upstream_retries;     // code: the failure retried (UNAVAILABLE, ...)
  Histogram& rate_budget_wait_seconds;   // one observation per wait for the rate budget
  Counter& coalesced_pages;              // pages a stream got from another's fetch
  Counter& page_cache_hits;              // pages served from the page cache
  Counter& refused_caller_jwt_requests;  // refused at once: the upstream refused that JWT lately
  Counter& contacts_streamed;
  Gauge& active_streams;
  Gauge& upstream_connections;  // open or opening, idle ones included
  // StreamContacts, start to end (minutes to hours: grpc_server_handling_seconds stops at 10 s).
  Histogram& stream_duration_seconds;
  Histogram& first_message_seconds;       // start to the first response message
  Counter& resumed_streams;               // calls that came with a resume token
  Gauge& draining;                        // 1 from the start of a drain
  Family<Counter>& account_throttled;     // account (SetAccountLabels)
  Family<Counter>& account_budget_waits;  // account (SetAccountLabels)
  Family<Gauge>& account_page_size;       // account (SetAccountLabels), no "(other)"
  Counter& page_size_refusals;            // 400s that refused a page size, asked again smaller
  Family<Gauge>& build_info;              // version, revision: one series, value 1

  // With --shared-state only (fleet/SharedState resolves the series, so they are absent without
  // it): 1 while replicas share through Redis, 0 while this one keeps to its share on its own;
  // and the fleet's size as the heartbeats last told it.
  Family<Gauge>& shared_state_up;
  Family<Gauge>& shared_state_replicas;

 private:
  // The label for `account`, or "" when per-account series are off.
  std::string AccountLabel(std::string_view account);

  absl::Mutex accounts_mu_;
  size_t account_labels_ ABSL_GUARDED_BY(accounts_mu_) = 0;
  absl::flat_hash_set<std::string> labelled_ ABSL_GUARDED_BY(accounts_mu_);
};

// The process-wide metrics; never destroyed.
GatewayMetrics& Metrics();

}  // namespace contacts::gateway

#endif  // CONTACTS_GATEWAY_SERVER_CORE_METRICS_H_
