// load_client: the benchmarks' gRPC caller (see bench/REPORT.md and bench/run.sh).
//
// Opens --streams concurrent StreamContacts calls for one kore-sim generated list (cl-sim-<N>),
// decodes every message and checks every contact id against the id kore-sim generates for that
// position, so a stream that loses, repeats or reorders a contact fails the run (exit 1). With
// --gateway-pid it also reads the gateway's CPU time (/proc/PID/stat) and RSS (/proc/PID/status),
// with --upstream-pid kore-sim's CPU time: with its own, where the machine's CPU goes.
//
// Phases: --slow-streams S streams (of --slow-list, a list too long to fit in flow-control
// windows) read their first message and then stop reading, so that flow control holds them in the
// gateway; once all S hold, the gateway's RSS is sampled and --streams fast streams run to
// completion; then the slow streams are cancelled (their contacts so far are checked).
//
// Prints one line of key=value pairs:
//   contacts, messages, wall_s, contacts_per_s  (fast streams)
//   ttfm_ms_median, ttfm_ms_max  (time from call start to first message, fast streams; the
//                                 channels are connected before), ttfm_max_over_median
//   stream_s_median, stream_s_max
//   gw_cpu_ns_per_contact  (gateway utime+stime over the fast phase / contacts, with --gateway-pid)
//   client_cpu_ns_per_contact  (this process, the same way)
//   upstream_cpu_ns_per_contact  (kore-sim, the same way, with --upstream-pid)
//   gw_rss_kib_before, gw_rss_kib_held, rss_kib_per_slow_stream  (with --slow-streams)

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "contacts/v1/contacts.grpc.pb.h"
#include "grpcpp/grpcpp.h"
#include "tools/kore-sim/contact_render.h"

namespace {

using Clock = std::chrono::steady_clock;
using contacts::v1::ContactService;
using contacts::v1::StreamContactsRequest;
using contacts::v1::StreamContactsResponse;

struct Options {
  std::string target = "127.0.0.1:50051";
  std::string list_id;
  std::string slow_list_id;  // default: list_id
  std::string account_id = "acct-bench";
  std::string stream_id = "st-bench";
  int streams = 1;
  int slow_streams = 0;
  int channels = 1;
  int ramp = 0;  // > 0: open slow streams in groups of this many, each after the last one holds
  int page_size = 0;
  int batch_size = 0;
  double cancel_after_s = 0;  // > 0: cancel the fast streams then; only order is checked
  int gateway_pid = 0;
  int upstream_pid = 0;
};

// utime + stime of process `pid` (0: this one) in nanoseconds, or -1.
int64_t CpuNanos(int pid) {
  std::ifstream in(pid ? absl::StrCat("/proc/", pid, "/stat") : std::string("/proc/self/stat"));
  std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const size_t paren = stat.rfind(')');
  if (paren == std::string::npos) return -1;
  std::istringstream fields(stat.substr(paren + 2));
  std::string field;
  int64_t utime = 0, stime = 0;
  for (int i = 3; i <= 15 && fields >> field; ++i) {  // field 3 is the state
    if (i == 14) utime = std::stoll(field);
    if (i == 15) stime = std::stoll(field);
  }
  return (utime + stime) * (1'000'000'000 / sysconf(_SC_CLK_TCK));
}

int64_t RssKib(int pid) {
  std::ifstream in(absl::StrCat("/proc/", pid, "/status"));
  std::string line;
  while (std::getline(in, line)) {
    if (line.starts_with("VmRSS:")) return std::stoll(line.substr(6));
  }
  return -1;
}

// Counts streams that reached a state; the main thread waits for a count.
class Latch {
 public:
  void Add() {
    absl::MutexLock lock(&mu_);
    ++count_;
  }
  void WaitFor(int n) {
    absl::MutexLock lock(&mu_);
    target_ = n;
    mu_.Await(absl::Condition(this, &Latch::Reached));
  }

 private:
  bool Reached() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return count_ >= target_; }

  absl::Mutex mu_;
  int count_ ABSL_GUARDED_BY(mu_) = 0;
  int target_ ABSL_GUARDED_BY(mu_) = 0;
};

// One StreamContacts call. Callbacks come on gRPC's threads, one at a time per stream.
class Stream : public grpc::ClientReadReactor<StreamContactsResponse> {
 public:
  // `list_id` is cl-sim-<list_size>.
  Stream(ContactService::Stub* stub, const Options& options, const std::string& list_id,
         int64_t list_size, bool hold, Latch* first, Latch* done)
      : list_hash_(contacts::kore_sim::ListHash(list_id)),
        list_size_(list_size),
        hold_(hold),
        first_(first),
        done_(done) {
    request_.set_stream_id(options.stream_id);
    request_.set_contact_list_id(list_id);
    request_.set_account_id(options.account_id);
    request_.set_page_size(options.page_size);
    request_.set_max_batch_size(options.batch_size);
    start_ = Clock::now();
    stub->async()->StreamContacts(&context_, &request_, this);
    StartRead(&response_);
    StartCall();
  }

  void Cancel() { context_.TryCancel(); }

  void OnReadDone(bool ok) override {
    if (!ok) return;  // OnDone follows
    if (messages_++ == 0) {
      first_message_ = Clock::now();
      if (!hold_) first_->Add();
    }
    std::string expected;
    for (const contacts::v1::Contact& contact : response_.contacts()) {
      expected.clear();
      contacts::kore_sim::AppendContactId(expected, list_hash_,
                                          contacts::kore_sim::ContactKey::Generated(contacts_));
      if (contact.id() != expected && error_.empty()) {
        error_ = absl::StrCat("contact ", contacts_, " is '", contact.id(), "', expected '",
                              expected, "'");
        context_.TryCancel();
      }
      ++contacts_;
    }
    if (hold_ && messages_ == 1) {
      first_->Add();
      return;  // read no more: the stream holds until cancelled
    }
    StartRead(&response_);
  }

  void OnDone(const grpc::Status& status) override {
    end_ = Clock::now();
    status_ = status;
    if (messages_ == 0) first_->Add();  // a stream that failed at once waits for nothing
    done_->Add();
  }

  int64_t contacts() const { return contacts_; }
  int64_t list_size() const { return list_size_; }
  int64_t messages() const { return messages_; }
  const grpc::Status& status() const { return status_; }
  const std::string& error() const { return error_; }
  double ttfm_ms() const {
    return std::chrono::duration<double, std::milli>(first_message_ - start_).count();
  }
  double total_s() const { return std::chrono::duration<double>(end_ - start_).count(); }

 private:
  grpc::ClientContext context_;
  StreamContactsRequest request_;
  StreamContactsResponse response_;
  const uint32_t list_hash_;
  const int64_t list_size_;
  const bool hold_;
  Latch* const first_;
  Latch* const done_;
  Clock::time_point start_, first_message_, end_;
  int64_t contacts_ = 0;
  int64_t messages_ = 0;
  grpc::Status status_;
  std::string error_;
};

double Median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

// Checks each finished stream; returns false (and prints why) when one lost or garbled contacts.
bool CheckStreams(const std::vector<std::unique_ptr<Stream>>& streams, bool cancelled,
                  const char* kind) {
  bool ok = true;
  for (size_t i = 0; i < streams.size(); ++i) {
    const Stream& s = *streams[i];
    std::string why = s.error();
    if (why.empty() && !s.status().ok() &&
        !(cancelled && s.status().error_code() == grpc::StatusCode::CANCELLED)) {
      why = absl::StrCat("status ", s.status().error_code(), ": ", s.status().error_message());
    }
    if (why.empty() && !cancelled && s.contacts() != s.list_size()) {
      why = absl::StrCat("got ", s.contacts(), " contacts of ", s.list_size());
    }
    if (!why.empty()) {
      std::fprintf(stderr, "load_client: %s stream %zu: %s\n", kind, i, why.c_str());
      ok = false;
    }
  }
  return ok;
}

constexpr std::string_view kUsage =
    "usage: load_client --list cl-sim-N [--target HOST:PORT] [--streams N] [--slow-streams N]\n"
    "  [--slow-list cl-sim-N] [--ramp N] [--channels N] [--page-size N] [--batch-size N] "
    "[--cancel-after-s S]\n"
    "  [--gateway-pid PID] [--upstream-pid PID] [--account-id ID] [--stream-id ID]\n";

bool ParseOptions(int argc, char** argv, Options& o) {
  for (int i = 1; i < argc; ++i) {
    const std::string_view flag = argv[i];
    if (i + 1 >= argc) return false;
    const std::string value = argv[++i];
    bool ok = true;
    if (flag == "--target")
      o.target = value;
    else if (flag == "--list")
      o.list_id = value;
    else if (flag == "--slow-list")
      o.slow_list_id = value;
    else if (flag == "--account-id")
      o.account_id = value;
    else if (flag == "--stream-id")
      o.stream_id = value;
    else if (flag == "--streams")
      ok = absl::SimpleAtoi(value, &o.streams);
    else if (flag == "--slow-streams")
      ok = absl::SimpleAtoi(value, &o.slow_streams);
    else if (flag == "--ramp")
      ok = absl::SimpleAtoi(value, &o.ramp);
    else if (flag == "--channels")
      ok = absl::SimpleAtoi(value, &o.channels) && o.channels > 0;
    else if (flag == "--page-size")
      ok = absl::SimpleAtoi(value, &o.page_size);
    else if (flag == "--batch-size")
      ok = absl::SimpleAtoi(value, &o.batch_size);
    else if (flag == "--cancel-after-s")
      ok = absl::SimpleAtod(value, &o.cancel_after_s);
    else if (flag == "--gateway-pid")
      ok = absl::SimpleAtoi(value, &o.gateway_pid);
    else if (flag == "--upstream-pid")
      ok = absl::SimpleAtoi(value, &o.upstream_pid);
    else
      ok = false;
    if (!ok) {
      std::fprintf(stderr, "load_client: bad flag or value: %s %s\n", argv[i - 1], value.c_str());
      return false;
    }
  }
  if (o.slow_list_id.empty()) o.slow_list_id = o.list_id;
  return o.streams >= 0 && o.slow_streams >= 0;
}

// The size N of a kore-sim generated list cl-sim-N, or nullopt.
std::optional<int64_t> GeneratedListSize(std::string_view list_id) {
  int64_t size = 0;
  if (!list_id.starts_with("cl-sim-") || !absl::SimpleAtoi(std::string(list_id.substr(7)), &size)) {
    return std::nullopt;
  }
  return size;
}

}  // namespace

int main(int argc, char** argv) {
  Options options;
  if (!ParseOptions(argc, argv, options)) {
    std::fprintf(stderr, "%s", kUsage.data());
    return 2;
  }
  const std::optional<int64_t> list_size = GeneratedListSize(options.list_id);
  const std::optional<int64_t> slow_list_size = GeneratedListSize(options.slow_list_id);
  if (!list_size || !slow_list_size) {
    std::fprintf(stderr, "load_client: lists must be kore-sim's generated cl-sim-N\n%s",
                 kUsage.data());
    return 2;
  }

  // Several channels (each with its own connection) spread many streams over HTTP/2 connections.
  std::vector<std::unique_ptr<ContactService::Stub>> stubs;
  for (int i = 0; i < options.channels; ++i) {
    grpc::ChannelArguments args;
    args.SetMaxReceiveMessageSize(-1);
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    if (options.slow_streams > 0) {
      // Small fixed stream windows: a held stream buffers little on either side.
      args.SetInt(GRPC_ARG_HTTP2_BDP_PROBE, 0);
      args.SetInt(GRPC_ARG_HTTP2_STREAM_LOOKAHEAD_BYTES, 16 * 1024);
    }
    std::shared_ptr<grpc::Channel> channel =
        grpc::CreateCustomChannel(options.target, grpc::InsecureChannelCredentials(), args);
    // Connected before any timing starts: time to first message excludes the HTTP/2 handshake.
    if (!channel->WaitForConnected(std::chrono::system_clock::now() + std::chrono::seconds(10))) {
      std::fprintf(stderr, "load_client: cannot connect to %s\n", options.target.c_str());
      return 1;
    }
    stubs.push_back(ContactService::NewStub(channel));
  }
  auto stub = [&](size_t i) { return stubs[i % stubs.size()].get(); };

  const int pid = options.gateway_pid;
  const int64_t rss_before = pid ? RssKib(pid) : -1;
  std::vector<std::unique_ptr<Stream>> slow;
  Latch slow_first, slow_done;
  for (int i = 0; i < options.slow_streams; ++i) {
    if (options.ramp > 0 && i > 0 && i % options.ramp == 0) slow_first.WaitFor(i);
    slow.push_back(std::make_unique<Stream>(stub(i), options, options.slow_list_id, *slow_list_size,
                                            true, &slow_first, &slow_done));
  }
  slow_first.WaitFor(options.slow_streams);
  const int64_t rss_held = pid ? RssKib(pid) : -1;

  const int64_t cpu_before = pid ? CpuNanos(pid) : -1;
  const int64_t client_cpu_before = CpuNanos(0);
  const int upstream = options.upstream_pid;
  const int64_t upstream_cpu_before = upstream ? CpuNanos(upstream) : -1;
  const auto fast_start = Clock::now();
  std::vector<std::unique_ptr<Stream>> fast;
  Latch fast_first, fast_done;
  for (int i = 0; i < options.streams; ++i) {
    fast.push_back(std::make_unique<Stream>(stub(i), options, options.list_id, *list_size, false,
                                            &fast_first, &fast_done));
  }
  const bool cancel = options.cancel_after_s > 0;
  if (cancel) {
    usleep(static_cast<useconds_t>(options.cancel_after_s * 1e6));
    for (auto& s : fast) s->Cancel();
  }
  fast_done.WaitFor(options.streams);
  const double wall_s = std::chrono::duration<double>(Clock::now() - fast_start).count();
  const int64_t cpu_after = pid ? CpuNanos(pid) : -1;
  const int64_t client_cpu_after = CpuNanos(0);
  const int64_t upstream_cpu_after = upstream ? CpuNanos(upstream) : -1;

  for (auto& s : slow) s->Cancel();
  slow_done.WaitFor(options.slow_streams);

  const bool fast_ok = CheckStreams(fast, cancel, "fast");
  const bool ok = CheckStreams(slow, true, "slow") && fast_ok;
  int64_t contacts = 0, messages = 0;
  std::vector<double> ttfm, total;
  for (const auto& s : fast) {
    contacts += s->contacts();
    messages += s->messages();
    if (s->messages() > 0) ttfm.push_back(s->ttfm_ms());
    total.push_back(s->total_s());
  }
  const double ttfm_median = Median(ttfm);
  const double ttfm_max = ttfm.empty() ? 0 : *std::max_element(ttfm.begin(), ttfm.end());
  std::string line = absl::StrCat(
      "contacts=", contacts, " messages=", messages, " wall_s=", wall_s,
      " contacts_per_s=", static_cast<int64_t>(contacts / wall_s), " ttfm_ms_median=", ttfm_median,
      " ttfm_ms_max=", ttfm_max,
      " ttfm_max_over_median=", ttfm_median > 0 ? ttfm_max / ttfm_median : 0,
      " stream_s_median=", Median(total),
      " stream_s_max=", total.empty() ? 0 : *std::max_element(total.begin(), total.end()));
  if (pid && contacts > 0) {
    absl::StrAppend(&line, " gw_cpu_ns_per_contact=", (cpu_after - cpu_before) / contacts);
  }
  if (contacts > 0) {
    absl::StrAppend(
        &line, " client_cpu_ns_per_contact=", (client_cpu_after - client_cpu_before) / contacts);
  }
  if (upstream && contacts > 0) {
    absl::StrAppend(&line, " upstream_cpu_ns_per_contact=",
                    (upstream_cpu_after - upstream_cpu_before) / contacts);
  }
  if (pid && options.slow_streams > 0) {
    absl::StrAppend(&line, " gw_rss_kib_before=", rss_before, " gw_rss_kib_held=", rss_held,
                    " rss_kib_per_slow_stream=",
                    static_cast<double>(rss_held - rss_before) / options.slow_streams);
  }
  std::printf("%s\n", line.c_str());
  return ok ? 0 : 1;
}
