#include "server/core/metrics.h"

#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "server/service/grpc_metrics.h"

namespace contacts::gateway {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

TEST(MetricsTest, RendersCountersAndGaugesWithHelpAndType) {
  Registry registry;
  Family<Counter>& requests =
      registry.Add<Counter>("requests_total", "Requests, by code.", {"code"});
  requests.With({"200"}).Increment(3);
  requests.With({"503"}).Increment();
  registry.Add<Gauge>("active", "In flight.").With({}).Add(2);
  EXPECT_EQ(registry.Render(),
            "# HELP requests_total Requests, by code.\n"
            "# TYPE requests_total counter\n"
            "requests_total{code=\"200\"} 3\n"
            "requests_total{code=\"503\"} 1\n"
            "# HELP active In flight.\n"
            "# TYPE active gauge\n"
            "active 2\n");
}

TEST(MetricsTest, FamilyWithNoSeriesRendersOnlyHelpAndType) {
  Registry registry;
  registry.Add<Counter>("unused_total", "Never counted.", {"code"});
  EXPECT_EQ(registry.Render(), "# HELP unused_total Never counted.\n# TYPE unused_total counter\n");
}

TEST(MetricsTest, SameLabelValuesAreTheSameSeries) {
  Registry registry;
  Family<Counter>& family = registry.Add<Counter>("x_total", "X.", {"a", "b"});
  family.With({"1", "2"}).Increment();
  family.With({"1", "2"}).Increment();
  EXPECT_EQ(&family.With({"1", "2"}), &family.With({"1", "2"}));
  EXPECT_EQ(family.With({"1", "2"}).value(), 2u);
  EXPECT_EQ(family.With({"2", "1"}).value(), 0u);
}

TEST(MetricsTest, EscapesLabelValuesAndHelp) {
  EXPECT_EQ(EscapeLabelValue("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
  EXPECT_EQ(EscapeHelp("say \"hi\"\\\n"), "say \"hi\"\\\\\\n");
  Registry registry;
  registry.Add<Counter>("odd_total", "Line one\nline two \\ end.", {"path"})
      .With({"/a\"b\n"})
      .Increment();
  EXPECT_EQ(registry.Render(),
            "# HELP odd_total Line one\\nline two \\\\ end.\n"
            "# TYPE odd_total counter\n"
            "odd_total{path=\"/a\\\"b\\n\"} 1\n");
}

TEST(MetricsTest, HistogramBucketsAreCumulativeWithInfSumAndCount) {
  Registry registry;
  Histogram& latency =
      registry.Add<Histogram>("latency_seconds", "Latency.", {"method"}, {0.1, 0.5, 2.5})
          .With({"Get"});
  for (double v : {0.05, 0.1, 0.3, 0.3, 2.0, 7.5}) latency.Observe(v);
  EXPECT_EQ(
      registry.Render(),
      "# HELP latency_seconds Latency.\n"
      "# TYPE latency_seconds histogram\n"
      "latency_seconds_bucket{method=\"Get\",le=\"0.1\"} 2\n"  // le: an upper bound, inclusive
      "latency_seconds_bucket{method=\"Get\",le=\"0.5\"} 4\n"
      "latency_seconds_bucket{method=\"Get\",le=\"2.5\"} 5\n"
      "latency_seconds_bucket{method=\"Get\",le=\"+Inf\"} 6\n"
      "latency_seconds_sum{method=\"Get\"} 10.25\n"
      "latency_seconds_count{method=\"Get\"} 6\n");
}

TEST(MetricsTest, UnlabelledHistogramHasOnlyTheLeLabel) {
  Registry registry;
  registry.Add<Histogram>("wait_seconds", "Wait.", {}, {1}).With({}).Observe(0.5);
  EXPECT_THAT(registry.Render(), ::testing::HasSubstr("wait_seconds_bucket{le=\"1\"} 1\n"
                                                      "wait_seconds_bucket{le=\"+Inf\"} 1\n"
                                                      "wait_seconds_sum 0.5\n"
                                                      "wait_seconds_count 1\n"));
}

TEST(MetricsTest, GatewayMetricsUseTheGoGrpcPrometheusNames) {
  GatewayMetrics metrics;
  metrics.grpc_started.With({"server_stream", "contacts.v1.ContactService", "StreamContacts"})
      .Increment();
  metrics.UpstreamExchange("200", absl::Milliseconds(20));
  std::string text = metrics.registry.Render();
  EXPECT_THAT(
      text, ::testing::HasSubstr(
                "grpc_server_started_total{grpc_type=\"server_stream\",grpc_service=\"contacts.v1."
                "ContactService\",grpc_method=\"StreamContacts\"} 1\n"));
  EXPECT_THAT(text,
              ::testing::HasSubstr("contacts_gateway_upstream_requests_total{code=\"200\"} 1\n"));
  EXPECT_THAT(text,
              ::testing::HasSubstr(
                  "contacts_gateway_upstream_request_duration_seconds_bucket{le=\"0.025\"} 1\n"));
  for (const char* name :
       {"# TYPE grpc_server_handled_total counter", "# TYPE grpc_server_msg_received_total counter",
        "# TYPE grpc_server_msg_sent_total counter",
        "# TYPE grpc_server_handling_seconds histogram",
        "# TYPE contacts_gateway_upstream_retries_total counter",
        "# TYPE contacts_gateway_rate_budget_wait_seconds histogram",
        "# TYPE contacts_gateway_coalesced_pages_total counter",
        "# TYPE contacts_gateway_page_cache_hits_total counter",
        "# TYPE contacts_gateway_contacts_streamed_total counter",
        "# TYPE contacts_gateway_active_streams gauge"}) {
    EXPECT_THAT(text, ::testing::HasSubstr(name));
  }
}

TEST(MetricsTest, PerAccountSeriesAreOffByDefaultAndBounded) {
  GatewayMetrics metrics;
  metrics.AccountThrottled("acct-a");
  EXPECT_THAT(metrics.registry.Render(),
              Not(HasSubstr("contacts_gateway_account_upstream_throttled_total{")));
  metrics.SetAccountLabels(2);
  for (const char* account : {"acct-a", "acct-b", "acct-c", "acct-a", "acct-d"}) {
    metrics.AccountThrottled(account);
  }
  metrics.AccountBudgetWait("acct-b");
  metrics.AccountBudgetWait("acct-e");
  metrics.AccountPageSize("acct-a", 100);
  metrics.AccountPageSize("acct-e", 50);  // a gauge of "(other)" would mean nothing: none
  const std::string text = metrics.registry.Render();
  EXPECT_THAT(text,
              HasSubstr("contacts_gateway_account_upstream_throttled_total{account=\"acct-a\"}"
                        " 2\n"
                        "contacts_gateway_account_upstream_throttled_total{account=\"acct-b\"}"
                        " 1\n"));
  EXPECT_THAT(text,
              HasSubstr("contacts_gateway_account_upstream_throttled_total{account=\"(other)\"}"
                        " 2\n"));
  EXPECT_THAT(
      text, HasSubstr("contacts_gateway_account_rate_budget_waits_total{account=\"(other)\"} 1\n"
                      "contacts_gateway_account_rate_budget_waits_total{account=\"acct-b\"} 1\n"));
  EXPECT_THAT(text, Not(HasSubstr("acct-c")));
  EXPECT_THAT(text,
              HasSubstr("contacts_gateway_account_upstream_page_size{account=\"acct-a\"} 100\n"));
  EXPECT_THAT(text,
              Not(HasSubstr("contacts_gateway_account_upstream_page_size{account=\"(other)")));
}

TEST(MetricsTest, StreamHistogramsReachHoursAndBuildInfoIsOne) {
  GatewayMetrics metrics;
  metrics.stream_duration_seconds.Observe(2 * 3600 + 1);  // a long stream: not in +Inf only
  metrics.first_message_seconds.Observe(0.03);
  metrics.resumed_streams.Increment();
  const std::string text = metrics.registry.Render();
  EXPECT_THAT(text, HasSubstr("contacts_gateway_stream_duration_seconds_bucket{le=\"7200\"} 0\n"
                              "contacts_gateway_stream_duration_seconds_bucket{le=\"14400\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("contacts_gateway_stream_duration_seconds_bucket{le=\"86400\"} 1\n"));
  EXPECT_THAT(text,
              HasSubstr("contacts_gateway_stream_first_message_seconds_bucket{le=\"0.025\"} 0\n"
                        "contacts_gateway_stream_first_message_seconds_bucket{le=\"0.05\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("contacts_gateway_resumed_streams_total 1\n"));
  EXPECT_THAT(text, HasSubstr("contacts_gateway_draining 0\n"));
  EXPECT_THAT(
      text, ::testing::ContainsRegex(
                "contacts_gateway_build_info\\{version=\"0\\.1\\.0\",revision=\"[^\"]+\"\\} 1\n"));
}

// A procfs tree with the files ProcessCollector reads, as proc(5) lays them out.
std::string FakeProc() {
  const std::string dir = absl::StrCat(::testing::TempDir(), "/proc-", getpid(), "-", rand());
  std::filesystem::create_directories(dir + "/self/fd");
  for (const char* fd : {"0", "1", "2", "7"}) std::ofstream(dir + "/self/fd/" + fd);
  // comm "(gate way) x" holds a space and a parenthesis: fields are counted after the last ')'.
  std::ofstream(dir + "/self/stat")
      << "4242 ((gate way) x) S 1 4242 4242 0 -1 4194560 500 0 0 0 "
         "250 150 0 0 20 0 9 0 12345 104857600 2560 18446744073709551615\n";
  std::ofstream(dir + "/self/limits")
      << "Limit                     Soft Limit           Hard Limit           Units     \n"
         "Max processes             63471                63471                processes \n"
         "Max open files            4096                 1048576              files     \n";
  std::ofstream(dir + "/stat") << "cpu  1 2 3 4\nbtime 1700000000\nprocesses 99\n";
  return dir;
}

TEST(MetricsTest, ProcessMetricsComeFromProcfsAsPrometheusClientsName) {
  const std::string proc = FakeProc();
  std::string text;
  ProcessCollector(proc).Render(&text);
  const double ticks = static_cast<double>(sysconf(_SC_CLK_TCK));
  const double page = static_cast<double>(sysconf(_SC_PAGESIZE));
  auto line = [](const std::string& name, double value) {
    return absl::StrCat("\n", name, " ", absl::StrFormat("%.15g", value), "\n");
  };
  EXPECT_THAT(text, HasSubstr("# TYPE process_cpu_seconds_total counter"));
  EXPECT_THAT(text, HasSubstr(line("process_cpu_seconds_total", 400 / ticks)));
  EXPECT_THAT(text, HasSubstr(line("process_virtual_memory_bytes", 104857600)));
  EXPECT_THAT(text, HasSubstr(line("process_resident_memory_bytes", 2560 * page)));
  EXPECT_THAT(text, HasSubstr(line("process_open_fds", 4)));
  EXPECT_THAT(text, HasSubstr(line("process_max_fds", 4096)));
  EXPECT_THAT(text, HasSubstr(line("process_start_time_seconds", 1700000000 + 12345 / ticks)));
  for (const char* gauge : {"process_virtual_memory_bytes", "process_resident_memory_bytes",
                            "process_open_fds", "process_max_fds", "process_start_time_seconds"}) {
    EXPECT_THAT(text, HasSubstr(absl::StrCat("# TYPE ", gauge, " gauge\n")));
  }

  std::string missing;  // nothing readable: nothing rendered, no made-up zeros
  ProcessCollector(proc + "/nowhere").Render(&missing);
  EXPECT_EQ(missing, "");
}

// The value of an unlabelled sample in a scrape, or -1.
double Sample(const std::string& text, const std::string& name) {
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    if (absl::ConsumePrefix(&line, name + " ")) {
      double value = -1;
      return absl::SimpleAtod(line, &value) ? value : -1;
    }
  }
  return -1;
}

TEST(MetricsTest, ProcessMetricsOfThisProcess) {
  ProcessCollector collector;
  std::string before;
  collector.Render(&before);
  // Burn 0.3 s of CPU (by this process's own clock, so a busy machine only makes it take longer).
  timespec start{}, now{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &start);
  volatile uint64_t sink = 0;
  do {
    for (int i = 0; i < 100000; ++i) sink = sink + i;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &now);
  } while ((now.tv_sec - start.tv_sec) + (now.tv_nsec - start.tv_nsec) * 1e-9 < 0.3);
  int fds[3];
  for (int& fd : fds) fd = open("/dev/null", O_RDONLY);
  std::string after;
  collector.Render(&after);
  for (int fd : fds) close(fd);

  EXPECT_GE(
      Sample(after, "process_cpu_seconds_total") - Sample(before, "process_cpu_seconds_total"),
      0.25);
  EXPECT_EQ(Sample(after, "process_open_fds") - Sample(before, "process_open_fds"), 3);
  rlimit files{};
  ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &files), 0);
  EXPECT_EQ(Sample(after, "process_max_fds"), static_cast<double>(files.rlim_cur));
  EXPECT_GT(Sample(after, "process_resident_memory_bytes"), 1 << 20);
  EXPECT_GT(Sample(after, "process_virtual_memory_bytes"),
            Sample(after, "process_resident_memory_bytes"));
  const double started = Sample(after, "process_start_time_seconds");
  const double epoch_now = static_cast<double>(time(nullptr));
  EXPECT_LE(started, epoch_now + 1);
  EXPECT_GT(started, epoch_now - 3600);  // this test process started within the hour
}

TEST(MetricsTest, GrpcCodesCarryGrpcGoNames) {
  EXPECT_EQ(GoCodeName(grpc::StatusCode::OK), "OK");
  EXPECT_EQ(GoCodeName(grpc::StatusCode::CANCELLED), "Canceled");
  EXPECT_EQ(GoCodeName(grpc::StatusCode::INVALID_ARGUMENT), "InvalidArgument");
  EXPECT_EQ(GoCodeName(grpc::StatusCode::RESOURCE_EXHAUSTED), "ResourceExhausted");
  EXPECT_EQ(GoCodeName(grpc::StatusCode::UNAUTHENTICATED), "Unauthenticated");
  EXPECT_EQ(GoCodeName(static_cast<grpc::StatusCode>(20)),
            "Unknown");  // within the enum's range: no UB
}

// What a handler that counts itself (StreamContacts) reports: one start, its messages, and one
// handled code; a call that ends without a status counts as Canceled.
TEST(MetricsTest, RpcMetricsCountsOneCallOnce) {
  GatewayMetrics metrics;
  const std::vector<std::string> labels = {"server_stream", "contacts.v1.ContactService",
                                           "StreamContacts"};
  {
    RpcMetrics rpc(metrics, labels);
    rpc.Received();
    rpc.Sent();
    rpc.Sent();
    rpc.Handled(grpc::StatusCode::INVALID_ARGUMENT);
    rpc.Handled(grpc::StatusCode::OK);  // only the first status counts
  }
  { RpcMetrics gone(metrics, labels); }
  const std::string text = metrics.registry.Render();
  const std::string l =
      "grpc_type=\"server_stream\",grpc_service=\"contacts.v1.ContactService\","
      "grpc_method=\"StreamContacts\"";
  EXPECT_THAT(text, ::testing::HasSubstr(absl::StrCat("grpc_server_started_total{", l, "} 2\n")));
  EXPECT_THAT(text,
              ::testing::HasSubstr(absl::StrCat("grpc_server_msg_received_total{", l, "} 1\n")));
  EXPECT_THAT(text, ::testing::HasSubstr(absl::StrCat("grpc_server_msg_sent_total{", l, "} 2\n")));
  EXPECT_THAT(text, ::testing::HasSubstr(absl::StrCat("grpc_server_handled_total{", l,
                                                      ",grpc_code=\"InvalidArgument\"} 1\n")));
  EXPECT_THAT(text, ::testing::HasSubstr(absl::StrCat("grpc_server_handled_total{", l,
                                                      ",grpc_code=\"Canceled\"} 1\n")));
  EXPECT_THAT(text, ::testing::Not(::testing::HasSubstr("grpc_code=\"OK\"")));
  EXPECT_THAT(
      text, ::testing::HasSubstr(absl::StrCat("grpc_server_handling_seconds_count{", l, "} 2\n")));
}

}  // namespace
}  // namespace contacts::gateway
