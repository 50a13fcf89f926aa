#include "server/core/metrics.h"

#include <dirent.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <sstream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"

#ifndef CONTACTS_VERSION
#define CONTACTS_VERSION "unknown"
#endif
#ifndef CONTACTS_REVISION
#define CONTACTS_REVISION "unknown"
#endif

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
  for (const std::unique_ptr<Collector>& collector : collectors_) collector->Render(&out);
  return out;
}

namespace {

std::string ReadAll(const std::string& path) {
  std::ifstream in(path);
  if (!in) return "";
  std::stringstream content;
  content << in.rdbuf();
  return content.str();
}

void Gather(absl::string_view name, absl::string_view type, absl::string_view help, double value,
            std::string* out) {
  absl::StrAppend(out, "# HELP ", name, " ", help, "\n# TYPE ", name, " ", type, "\n", name, " ",
                  absl::StrFormat("%.15g", value), "\n");
}

}  // namespace

ProcessCollector::ProcessCollector(std::string proc, std::string self)
    : proc_(std::move(proc)),
      self_(std::move(self)),
      ticks_per_second_(sysconf(_SC_CLK_TCK)),
      page_bytes_(sysconf(_SC_PAGESIZE)) {}

void ProcessCollector::Render(std::string* out) const {
  const std::string dir = absl::StrCat(proc_, "/", self_);
  // stat: "pid (comm) state ppid ..."; comm may hold spaces and parentheses, so fields are counted
  // after the last ')': state is field 3, utime 14, stime 15, starttime 22, vsize 23, rss 24.
  const std::string stat = ReadAll(dir + "/stat");
  std::vector<absl::string_view> fields;
  if (size_t paren = stat.rfind(')'); paren != std::string::npos) {
    fields = absl::StrSplit(absl::string_view(stat).substr(paren + 1), ' ', absl::SkipEmpty());
  }
  auto field = [&fields](int number, double* value) {  // number as in proc(5)
    size_t index = static_cast<size_t>(number - 3);
    return index < fields.size() && absl::SimpleAtod(fields[index], value);
  };
  double utime = 0, stime = 0, start = 0, vsize = 0, rss = 0, boot = 0;
  if (field(14, &utime) && field(15, &stime)) {
    Gather("process_cpu_seconds_total", "counter",
           "Total user and system CPU time spent in seconds.",
           (utime + stime) / static_cast<double>(ticks_per_second_), out);
  }
  if (field(24, &rss)) {
    Gather("process_resident_memory_bytes", "gauge", "Resident memory size in bytes.",
           rss * static_cast<double>(page_bytes_), out);
  }
  if (field(23, &vsize)) {
    Gather("process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.", vsize, out);
  }
  if (DIR* fds = opendir((dir + "/fd").c_str())) {
    int open = 0;
    while (const dirent* entry = readdir(fds)) {
      if (entry->d_name[0] != '.') ++open;
    }
    closedir(fds);
    Gather("process_open_fds", "gauge", "Number of open file descriptors.", open, out);
  }
  for (absl::string_view line : absl::StrSplit(ReadAll(dir + "/limits"), '\n')) {
    // "Max open files            1024                 4096                 files"
    if (!absl::ConsumePrefix(&line, "Max open files")) continue;
    std::vector<absl::string_view> limits = absl::StrSplit(line, ' ', absl::SkipEmpty());
    double soft = 0;
    if (!limits.empty() && absl::SimpleAtod(limits[0], &soft)) {  // the soft limit
      Gather("process_max_fds", "gauge", "Maximum number of open file descriptors.", soft, out);
    }
  }
  for (absl::string_view line : absl::StrSplit(ReadAll(proc_ + "/stat"), '\n')) {
    if (absl::ConsumePrefix(&line, "btime ")) {
      (void)absl::SimpleAtod(line, &boot);
    }
  }
  if (boot > 0 && field(22, &start)) {
    Gather("process_start_time_seconds", "gauge",
           "Start time of the process since unix epoch in seconds.",
           boot + start / static_cast<double>(ticks_per_second_), out);
  }
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
      refused_caller_jwt_requests(
          registry
              .Add<Counter>("contacts_gateway_refused_caller_jwt_requests_total",
                            "Page requests with a caller's own JWT refused by the gateway itself: "
                            "the upstream refused that JWT for that account shortly before.")
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
      stream_duration_seconds(
          registry
              .Add<Histogram>("contacts_gateway_stream_duration_seconds",
                              "StreamContacts calls from start to end, whatever the outcome.", {},
                              {.1, 1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 14400,
                               28800, 86400})
              .With({})),
      first_message_seconds(
          registry
              .Add<Histogram>("contacts_gateway_stream_first_message_seconds",
                              "Time from the start of a StreamContacts call to its first response "
                              "message.",
                              {}, {.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120})
              .With({})),
      resumed_streams(registry
                          .Add<Counter>("contacts_gateway_resumed_streams_total",
                                        "StreamContacts calls that came with a resume token.")
                          .With({})),
      draining(registry
                   .Add<Gauge>("contacts_gateway_draining",
                               "1 from the start of a drain (SIGTERM) until the process exits.")
                   .With({})),
      account_throttled(registry.Add<Counter>(
          "contacts_gateway_account_upstream_throttled_total",
          "Upstream 429 answers, per account (--metrics-accounts; later accounts as \"(other)\").",
          {"account"})),
      account_budget_waits(registry.Add<Counter>(
          "contacts_gateway_account_rate_budget_waits_total",
          "Upstream requests that waited for the account's rate budget, per account "
          "(--metrics-accounts; later accounts as \"(other)\").",
          {"account"})),
      account_page_size(registry.Add<Gauge>(
          "contacts_gateway_account_upstream_page_size",
          "The largest page the upstream serves, per account, as the gateway learned it "
          "(--metrics-accounts; later accounts have no series).",
          {"account"})),
      page_size_refusals(registry
                             .Add<Counter>("contacts_gateway_upstream_page_size_refusals_total",
                                           "Upstream 400 answers that refused the page size; the "
                                           "stream asked again with a smaller one.")
                             .With({})),
      build_info(registry.Add<Gauge>("contacts_gateway_build_info",
                                     "The gateway's version and source revision; always 1.",
                                     {"version", "revision"})),
      shared_state_up(registry.Add<Gauge>(
          "contacts_gateway_shared_state_up",
          "With --shared-state: 1 while the replicas share the upstream budget and pages through "
          "Redis, 0 while this one keeps to its share on its own.")),
      shared_state_replicas(registry.Add<Gauge>(
          "contacts_gateway_shared_state_replicas",
          "With --shared-state: gateway replicas sharing the budget, as their heartbeats in Redis "
          "last told.")) {
  build_info.With({CONTACTS_VERSION, CONTACTS_REVISION}).Set(1);
  registry.AddCollector(std::make_unique<ProcessCollector>());
}

void GatewayMetrics::SetAccountLabels(int accounts) {
  absl::MutexLock lock(&accounts_mu_);
  account_labels_ = static_cast<size_t>(std::max(accounts, 0));
}

std::string GatewayMetrics::AccountLabel(std::string_view account) {
  absl::MutexLock lock(&accounts_mu_);
  if (account_labels_ == 0) return "";
  std::string label(account);
  if (labelled_.contains(label)) return label;
  if (labelled_.size() < account_labels_) return *labelled_.insert(std::move(label)).first;
  return "(other)";
}

void GatewayMetrics::AccountThrottled(std::string_view account) {
  if (std::string label = AccountLabel(account); !label.empty()) {
    account_throttled.With({label}).Increment();
  }
}

void GatewayMetrics::AccountBudgetWait(std::string_view account) {
  if (std::string label = AccountLabel(account); !label.empty()) {
    account_budget_waits.With({label}).Increment();
  }
}

void GatewayMetrics::AccountPageSize(std::string_view account, int64_t size) {
  if (std::string label = AccountLabel(account); !label.empty() && label != "(other)") {
    account_page_size.With({label}).Set(size);
  }
}

void GatewayMetrics::UpstreamExchange(std::string_view code, absl::Duration took) {
  upstream_requests.With({std::string(code)}).Increment();
  upstream_request_seconds.Observe(absl::ToDoubleSeconds(took));
}

GatewayMetrics& Metrics() {
  static GatewayMetrics* metrics = new GatewayMetrics();
  return *metrics;
}

}  // namespace contacts::gateway
