#include "server/core/metrics.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace contacts::gateway {
namespace {

std::string Escape(std::string_view text, bool quote) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '"' && quote) {
      out += "\\\"";
    } else {
      out += c;
    }
  }
  return out;
}

}  // namespace

std::string EscapeLabelValue(std::string_view value) { return Escape(value, true); }
std::string EscapeHelp(std::string_view help) { return Escape(help, false); }

void Histogram::Observe(double value) {
  size_t bucket = std::lower_bound(bounds_.begin(), bounds_.end(), value) - bounds_.begin();
  counts_[bucket].fetch_add(1, std::memory_order_relaxed);
  sum_.fetch_add(value, std::memory_order_relaxed);
}

std::vector<uint64_t> Histogram::Cumulative() const {
  std::vector<uint64_t> out;
  uint64_t total = 0;
  for (const std::atomic<uint64_t>& count : counts_) {
    total += count.load(std::memory_order_relaxed);
    out.push_back(total);
  }
  return out;
}

void FamilyBase::Sample(absl::string_view suffix, const Values& values,
                        absl::string_view extra_label, absl::string_view extra_value,
                        absl::string_view value, std::string* out) const {
  absl::StrAppend(out, name_, suffix);
  if (!labels_.empty() || !extra_label.empty()) {
    *out += '{';
    for (size_t i = 0; i < labels_.size(); ++i) {
      absl::StrAppend(out, i ? "," : "", labels_[i], "=\"", EscapeLabelValue(values[i]), "\"");
    }
    if (!extra_label.empty()) {
      absl::StrAppend(out, labels_.empty() ? "" : ",", extra_label, "=\"", extra_value, "\"");
    }
    *out += '}';
  }
  absl::StrAppend(out, " ", value, "\n");
}

template <typename Metric>
Family<Metric>::Family(std::string name, std::string help, std::vector<std::string> labels,
                       std::vector<double> bounds)
    : FamilyBase(std::move(name), std::move(help),
                 std::is_same_v<Metric, Counter> ? "counter"
                 : std::is_same_v<Metric, Gauge> ? "gauge"
                                                 : "histogram",
                 std::move(labels)),
      bounds_(std::move(bounds)) {}

template <typename Metric>
Metric& Family<Metric>::With(const std::vector<std::string>& values) {
  absl::MutexLock lock(&mu_);
  std::unique_ptr<Metric>& series = series_[values];
  if (!series) {
    if constexpr (std::is_same_v<Metric, Histogram>) {
      series = std::make_unique<Histogram>(bounds_);
    } else {
      series = std::make_unique<Metric>();
    }
  }
  return *series;
}

template <typename Metric>
void Family<Metric>::Render(std::string* out) const {
  absl::StrAppend(out, "# HELP ", name_, " ", EscapeHelp(help_), "\n# TYPE ", name_, " ", type_,
                  "\n");
  absl::MutexLock lock(&mu_);
  for (const auto& [values, series] : series_) {
    if constexpr (std::is_same_v<Metric, Histogram>) {
      std::vector<uint64_t> cumulative = series->Cumulative();
      for (size_t i = 0; i < cumulative.size(); ++i) {
        std::string le = i < bounds_.size() ? absl::StrCat(bounds_[i]) : "+Inf";
        Sample("_bucket", values, "le", le, absl::StrCat(cumulative[i]), out);
      }
      Sample("_sum", values, "", "", absl::StrFormat("%.9g", series->sum()), out);
      Sample("_count", values, "", "", absl::StrCat(cumulative.back()), out);
    } else {
      Sample("", values, "", "", absl::StrCat(series->value()), out);
    }
  }
}

template class Family<Counter>;
template class Family<Gauge>;
template class Family<Histogram>;

std::string Registry::Render() const {
  std::string out;
  for (const std::unique_ptr<FamilyBase>& family : families_) family->Render(&out);
  return out;
}

namespace {
const std::vector<std::string> kGrpcLabels = {"grpc_type", "grpc_service", "grpc_method"};
}  // namespace

GatewayMetrics::GatewayMetrics()
    : grpc_started(registry.Add<Counter>(
          "grpc_server_started_total", "Total number of RPCs started on the server.", kGrpcLabels)),
      grpc_handled(registry.Add<Counter>(
          "grpc_server_handled_total",
          "Total number of RPCs completed on the server, regardless of success or failure.",
          {"grpc_type", "grpc_service", "grpc_method", "grpc_code"})),
      grpc_msg_received(registry.Add<Counter>(
          "grpc_server_msg_received_total",
          "Total number of RPC stream messages received on the server.", kGrpcLabels)),
      grpc_msg_sent(registry.Add<Counter>(
          "grpc_server_msg_sent_total", "Total number of gRPC stream messages sent by the server.",
          kGrpcLabels)),
      grpc_handling_seconds(
          registry.Add<Histogram>("grpc_server_handling_seconds",
                                  "Histogram of response latency (seconds) of gRPC that had been "
                                  "application-level handled by "
                                  "the server.",
                                  kGrpcLabels, kDefaultBuckets)),
      upstream_requests(registry.Add<Counter>(
          "contacts_gateway_upstream_requests_total",
          "Upstream HTTP exchanges, by HTTP status code (\"transport_error\": no HTTP answer).",
          {"code"})),
      upstream_request_seconds(
          registry
              .Add<Histogram>("contacts_gateway_upstream_request_duration_seconds",
                              "Time of one upstream HTTP exchange, connection set-up included.", {},
                              {.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30})
              .With({})),
      upstream_retries(registry.Add<Counter>(
          "contacts_gateway_upstream_retries_total",
          "Upstream page fetches retried, by the code of the failure.", {"code"})),
      rate_budget_wait_seconds(
          registry
              .Add<Histogram>("contacts_gateway_rate_budget_wait_seconds",
                              "Waits for the upstream rate budget before a request.", {},
                              {.01, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60})
              .With({})),
      coalesced_pages(
          registry
              .Add<Counter>("contacts_gateway_coalesced_pages_total",
                            "Pages a stream received from another stream's upstream fetch.")
              .With({})),
      page_cache_hits(registry
                          .Add<Counter>("contacts_gateway_page_cache_hits_total",
                                        "Pages served from the page cache instead of the upstream.")
                          .With({})),
      contacts_streamed(registry
                            .Add<Counter>("contacts_gateway_contacts_streamed_total",
                                          "Contacts written to StreamContacts callers.")
                            .With({})),
      active_streams(
          registry.Add<Gauge>("contacts_gateway_active_streams", "StreamContacts calls in flight.")
              .With({})),
      upstream_connections(
          registry
              .Add<Gauge>("contacts_gateway_upstream_connections",
                          "Upstream connections open or opening, idle ones included.")
              .With({})),
      shared_state_up(
          registry
              .Add<Gauge>("contacts_gateway_shared_state_up",
                          "1 while the replicas share the upstream budget and pages through Redis "
                          "(--shared-state), 0 while this one keeps to its share on its own.")
              .With({})),
      shared_state_replicas(
          registry
              .Add<Gauge>("contacts_gateway_shared_state_replicas",
                          "Gateway replicas sharing the budget, as their heartbeats in Redis last "
                          "told (0 without --shared-state).")
              .With({})) {}

void GatewayMetrics::UpstreamExchange(std::string_view code, absl::Duration took) {
  upstream_requests.With({std::string(code)}).Increment();
  upstream_request_seconds.Observe(absl::ToDoubleSeconds(took));
}

GatewayMetrics& Metrics() {
  static GatewayMetrics* metrics = new GatewayMetrics();
  return *metrics;
}

}  // namespace contacts::gateway
