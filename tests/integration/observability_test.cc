// The contacts-gateway binary against the real kore-sim process: its /metrics (scraped before and
// after each call, deltas checked) and its JSON log lines on stdout.
#include <gmock/gmock.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <simdjson.h>

#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "contacts/v1/contacts.grpc.pb.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "tests/integration/test_support.h"

namespace contacts::gateway {
namespace {

using ::contacts::testing::ChildProcess;
using ::contacts::testing::HttpRequest;
using ::contacts::testing::KoreSim;
using ::contacts::testing::ReadFile;
using ::contacts::testing::SplitLines;
using ::contacts::v1::StreamContactsRequest;
using ::contacts::v1::StreamContactsResponse;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kAppId[] = "cs-observability";
constexpr char kSecret[] = "obs-secret-Zq81xW";
constexpr char kStream[] =
    "grpc_type=\"server_stream\",grpc_service=\"contacts.v1.ContactService\",grpc_method="
    "\"StreamContacts\"";

// The value of the sample `series` (name{labels}) in a scrape; 0 when absent.
double Value(const std::string& scrape, const std::string& series) {
  for (const std::string& line : SplitLines(scrape)) {
    if (line.size() > series.size() && line.compare(0, series.size(), series) == 0 &&
        line[series.size()] == ' ') {
      double value = 0;
      EXPECT_TRUE(absl::SimpleAtod(line.substr(series.size() + 1), &value)) << line;
      return value;
    }
  }
  return 0;
}

class ObservabilityTest : public ::testing::Test {
 protected:
  void SetUp() override {
    sim_ = KoreSim::Start({"--app", absl::StrCat(kAppId, "=", kSecret)});
    ASSERT_NE(sim_, nullptr);
    gateway_ = contacts::testing::StartGatewayProcess(
        *sim_, {.client_id = kAppId,
                .client_secret = kSecret,
                .extra = {"--retry-initial-backoff", "10ms", "--log-level", "debug",
                          "--metrics-accounts", "1", "--account-rate-limit", "acct-budget=600"}});
    ASSERT_NE(gateway_, nullptr);
    ASSERT_NE(gateway_->admin_port(), 0) << "the ready line names no admin port";
    channel_ = grpc::CreateChannel(absl::StrCat("127.0.0.1:", gateway_->port()),
                                   grpc::InsecureChannelCredentials());
    stub_ = contacts::v1::ContactService::NewStub(channel_);
  }

  std::string Scrape() {
    contacts::testing::HttpResult result = HttpRequest("GET", gateway_->admin_port(), "/metrics");
    EXPECT_EQ(result.status, 200);
    return result.body;
  }

  static StreamContactsRequest Request(const std::string& list) {
    StreamContactsRequest request;
    request.set_stream_id("st-obs");
    request.set_contact_list_id(list);
    request.set_account_id("acct-obs");
    request.set_page_size(50);  // the tests count pages of 50
    return request;
  }
  struct Result {
    grpc::Status status;
    int messages = 0;
    int contacts = 0;
  };
  Result Stream(const StreamContactsRequest& request, const std::string& request_id = "") {
    Result result;
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    if (!request_id.empty()) context.AddMetadata("x-request-id", request_id);
    auto reader = stub_->StreamContacts(&context, request);
    StreamContactsResponse response;
    while (reader->Read(&response)) {
      ++result.messages;
      result.contacts += response.contacts_size();
    }
    result.status = reader->Finish();
    return result;
  }

  std::unique_ptr<KoreSim> sim_;
  std::unique_ptr<ChildProcess> gateway_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<contacts::v1::ContactService::Stub> stub_;
};

TEST_F(ObservabilityTest, StreamMovesTheGrpcAndGatewayCounters) {
  const std::string before = Scrape();
  const int64_t sim_before = sim_->ListRequests();
  StreamContactsRequest request = Request("cl-sim-1234");
  request.set_page_size(100);
  request.set_max_batch_size(200);
  Result result = Stream(request);
  ASSERT_TRUE(result.status.ok()) << result.status.error_message();
  ASSERT_EQ(result.contacts, 1234);
  const int64_t pages = sim_->ListRequests() - sim_before;
  ASSERT_EQ(pages, 13);  // ceil(1234 / 100)
  const std::string after = Scrape();

  auto delta = [&](const std::string& series) {
    return Value(after, series) - Value(before, series);
  };
  EXPECT_EQ(delta(absl::StrCat("grpc_server_started_total{", kStream, "}")), 1);
  EXPECT_EQ(delta(absl::StrCat("grpc_server_handled_total{", kStream, ",grpc_code=\"OK\"}")), 1);
  EXPECT_EQ(delta(absl::StrCat("grpc_server_msg_received_total{", kStream, "}")), 1);
  EXPECT_EQ(delta(absl::StrCat("grpc_server_msg_sent_total{", kStream, "}")), result.messages);
  EXPECT_EQ(delta(absl::StrCat("grpc_server_handling_seconds_count{", kStream, "}")), 1);
  EXPECT_GT(delta(absl::StrCat("grpc_server_handling_seconds_sum{", kStream, "}")), 0);
  EXPECT_EQ(delta("contacts_gateway_contacts_streamed_total"), 1234);
  EXPECT_EQ(delta("contacts_gateway_stream_duration_seconds_count"), 1);
  EXPECT_EQ(delta("contacts_gateway_stream_duration_seconds_bucket{le=\"+Inf\"}"), 1);
  EXPECT_EQ(delta("contacts_gateway_stream_first_message_seconds_count"), 1);
  EXPECT_GT(delta("contacts_gateway_stream_duration_seconds_sum"),
            delta("contacts_gateway_stream_first_message_seconds_sum"));
  EXPECT_EQ(delta("contacts_gateway_resumed_streams_total"), 0);
  EXPECT_EQ(delta("contacts_gateway_upstream_requests_total{code=\"200\"}"), pages);
  EXPECT_EQ(delta("contacts_gateway_upstream_request_duration_seconds_count"), pages);
  EXPECT_EQ(delta("contacts_gateway_upstream_request_duration_seconds_bucket{le=\"+Inf\"}"), pages);

  // Buckets are cumulative, in order, and end with +Inf = _count.
  std::vector<double> buckets;
  std::string last_le;
  for (const std::string& line : SplitLines(after)) {
    std::string prefix = absl::StrCat("grpc_server_handling_seconds_bucket{", kStream, ",le=\"");
    if (line.rfind(prefix, 0) != 0) continue;
    last_le = line.substr(prefix.size(), line.find('"', prefix.size()) - prefix.size());
    buckets.push_back(Value(after, line.substr(0, line.find(' '))));
  }
  ASSERT_EQ(buckets.size(), 12u);  // 11 bounds and +Inf
  EXPECT_TRUE(std::is_sorted(buckets.begin(), buckets.end()));
  EXPECT_EQ(last_le, "+Inf");
  EXPECT_EQ(buckets.back(),
            Value(after, absl::StrCat("grpc_server_handling_seconds_count{", kStream, "}")));

  // The stream's OnDone may trail the caller's Finish by a moment.
  double active = -1;
  for (int i = 0; i < 100 && active != 0; ++i) {
    active = Value(Scrape(), "contacts_gateway_active_streams");
    if (active != 0) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_EQ(active, 0);
}

TEST_F(ObservabilityTest, InvalidArgumentIsCountedWithItsCodeAndNoUpstreamRequest) {
  const std::string before = Scrape();
  Result result = Stream(Request("../etc"));
  ASSERT_EQ(result.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  const std::string after = Scrape();
  auto delta = [&](const std::string& series) {
    return Value(after, series) - Value(before, series);
  };
  EXPECT_EQ(delta(absl::StrCat("grpc_server_started_total{", kStream, "}")), 1);
  EXPECT_EQ(
      delta(absl::StrCat("grpc_server_handled_total{", kStream, ",grpc_code=\"InvalidArgument\"}")),
      1);
  EXPECT_EQ(delta(absl::StrCat("grpc_server_handled_total{", kStream, ",grpc_code=\"OK\"}")), 0);
  EXPECT_EQ(delta(absl::StrCat("grpc_server_msg_sent_total{", kStream, "}")), 0);
  EXPECT_EQ(delta("contacts_gateway_upstream_request_duration_seconds_count"), 0);
}

// StreamContacts counts itself (no interceptor on it): a stream its caller cancels after the
// first message is one start, one message received, and handled as Canceled, once.
TEST_F(ObservabilityTest, ACancelledStreamIsCountedAsCanceledOnce) {
  const std::string before = Scrape();
  {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    StreamContactsRequest request = Request("cl-sim-5000");
    auto reader = stub_->StreamContacts(&context, request);
    StreamContactsResponse response;
    ASSERT_TRUE(reader->Read(&response));
    EXPECT_EQ(response.contacts_size(), 50);
    context.TryCancel();
    while (reader->Read(&response)) {
    }
    EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::CANCELLED);
  }
  // The gateway counts the end when its reactor finishes, a moment after the caller's.
  const std::string canceled =
      absl::StrCat("grpc_server_handled_total{", kStream, ",grpc_code=\"Canceled\"}");
  std::string after = Scrape();
  for (int i = 0; i < 100 && Value(after, canceled) == Value(before, canceled); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    after = Scrape();
  }
  auto delta = [&](const std::string& series) {
    return Value(after, series) - Value(before, series);
  };
  EXPECT_EQ(delta(absl::StrCat("grpc_server_started_total{", kStream, "}")), 1);
  EXPECT_EQ(delta(absl::StrCat("grpc_server_msg_received_total{", kStream, "}")), 1);
  EXPECT_EQ(delta(canceled), 1);
  EXPECT_EQ(delta(absl::StrCat("grpc_server_handled_total{", kStream, ",grpc_code=\"OK\"}")), 0);
  EXPECT_GE(delta(absl::StrCat("grpc_server_msg_sent_total{", kStream, "}")), 1);
  EXPECT_EQ(delta(absl::StrCat("grpc_server_handling_seconds_count{", kStream, "}")), 1);
}

TEST_F(ObservabilityTest, RetriedUpstreamFailureIsCountedByStatusAndCode) {
  ASSERT_EQ(
      sim_->Control("POST", "/_sim/faults?kind=status&code=503&count=1&list=cl-sim-120").status,
      200);
  const std::string before = Scrape();
  Result result = Stream(Request("cl-sim-120"));
  ASSERT_TRUE(result.status.ok()) << result.status.error_message();
  EXPECT_EQ(result.contacts, 120);
  const std::string after = Scrape();
  auto delta = [&](const std::string& series) {
    return Value(after, series) - Value(before, series);
  };
  EXPECT_EQ(delta("contacts_gateway_upstream_requests_total{code=\"503\"}"), 1);
  EXPECT_EQ(delta("contacts_gateway_upstream_requests_total{code=\"200\"}"), 3);  // 50 + 50 + 20
  EXPECT_EQ(delta("contacts_gateway_upstream_retries_total{code=\"UNAVAILABLE\"}"), 1);
  EXPECT_EQ(delta("contacts_gateway_contacts_streamed_total"), 120);
}

TEST_F(ObservabilityTest, ResumesThrottlingAndBudgetWaitsAreCounted) {
  // A 429 (retried at once) on the first page of acct-obs, the first account labelled.
  ASSERT_EQ(sim_->Control("POST",
                          "/_sim/faults?kind=status&code=429&retry_after=0&count=1&list=cl-sim-120")
                .status,
            200);
  const std::string before = Scrape();
  StreamContactsRequest request = Request("cl-sim-120");
  request.set_max_batch_size(50);
  grpc::ClientContext context;
  auto reader = stub_->StreamContacts(&context, request);
  StreamContactsResponse first;
  ASSERT_TRUE(reader->Read(&first));
  context.TryCancel();
  reader->Finish();
  request.set_resume_token(first.resume_token());
  Result resumed = Stream(request);
  ASSERT_TRUE(resumed.status.ok()) << resumed.status.error_message();
  EXPECT_EQ(resumed.contacts, 70);
  // acct-budget is limited to 10 requests a second: its 13 pages wait for the budget.
  StreamContactsRequest budgeted = Request("cl-sim-1234");
  budgeted.set_account_id("acct-budget");
  budgeted.set_page_size(100);
  ASSERT_TRUE(Stream(budgeted).status.ok());
  const std::string after = Scrape();
  auto delta = [&](const std::string& series) {
    return Value(after, series) - Value(before, series);
  };
  EXPECT_EQ(delta("contacts_gateway_resumed_streams_total"), 1);
  EXPECT_EQ(delta("contacts_gateway_upstream_requests_total{code=\"429\"}"), 1);
  EXPECT_EQ(delta("contacts_gateway_account_upstream_throttled_total{account=\"acct-obs\"}"), 1);
  const double waits = delta("contacts_gateway_rate_budget_wait_seconds_count");
  EXPECT_GE(waits, 10);  // the first page finds a token; with prefetch most others wait
  EXPECT_EQ(delta("contacts_gateway_account_rate_budget_waits_total{account=\"(other)\"}"), waits);
  EXPECT_THAT(after, Not(HasSubstr("account=\"acct-budget\"")));  // one account labelled only
}

TEST_F(ObservabilityTest, HealthChecksAreCountedAsUnaryCalls) {
  const std::string before = Scrape();
  auto health = grpc::health::v1::Health::NewStub(channel_);
  grpc::ClientContext context;
  grpc::health::v1::HealthCheckRequest request;
  grpc::health::v1::HealthCheckResponse response;
  ASSERT_TRUE(health->Check(&context, request, &response).ok());
  const std::string after = Scrape();
  const std::string labels =
      "grpc_type=\"unary\",grpc_service=\"grpc.health.v1.Health\",grpc_method=\"Check\"";
  auto delta = [&](const std::string& series) {
    return Value(after, series) - Value(before, series);
  };
  EXPECT_EQ(delta(absl::StrCat("grpc_server_started_total{", labels, "}")), 1);
  EXPECT_EQ(delta(absl::StrCat("grpc_server_handled_total{", labels, ",grpc_code=\"OK\"}")), 1);
  EXPECT_EQ(delta(absl::StrCat("grpc_server_msg_received_total{", labels, "}")), 1);
  EXPECT_EQ(delta(absl::StrCat("grpc_server_msg_sent_total{", labels, "}")), 1);
}

TEST_F(ObservabilityTest, AdminPortServesMetricsAndHealthzOnly) {
  contacts::testing::HttpResult healthz = HttpRequest("GET", gateway_->admin_port(), "/healthz");
  EXPECT_EQ(healthz.status, 200);
  EXPECT_EQ(healthz.body, "ok\n");
  std::string metrics = Scrape();
  EXPECT_THAT(metrics, HasSubstr("# TYPE grpc_server_handled_total counter\n"));
  EXPECT_THAT(
      metrics,
      HasSubstr("# HELP contacts_gateway_active_streams StreamContacts calls in flight.\n"));
  EXPECT_EQ(HttpRequest("GET", gateway_->admin_port(), "/metrics?x=1").status, 200);
  EXPECT_EQ(HttpRequest("GET", gateway_->admin_port(), "/nothing").status, 404);
  EXPECT_EQ(HttpRequest("POST", gateway_->admin_port(), "/metrics").status, 405);
}

TEST_F(ObservabilityTest, LogsAreJsonLinesWithIdsAndNeverTheSecret) {
  ASSERT_TRUE(Stream(Request("cl-sim-75"), "req-obs-42").status.ok());
  ASSERT_TRUE(Stream(Request("cl-sim-10")).status.ok());
  ASSERT_EQ(Stream(Request("cl-missing")).status.error_code(), grpc::StatusCode::NOT_FOUND);
  stub_.reset();  // with the connection gone, the gateway stops at once
  channel_.reset();
  ASSERT_EQ(gateway_->Stop(SIGTERM), 0);
  const std::string out = ReadFile(gateway_->stdout_path());
  EXPECT_THAT(out, Not(HasSubstr(kSecret)));
  EXPECT_THAT(ReadFile(gateway_->log_path()), Not(HasSubstr(kSecret)));

  simdjson::dom::parser parser;
  std::vector<std::string> ended;  // request ids of "stream ended" lines
  int lines = 0;
  for (const std::string& line : SplitLines(out)) {
    ++lines;
    simdjson::dom::object object;
    ASSERT_EQ(parser.parse(line).get(object), simdjson::SUCCESS) << line;
    std::string_view ts, severity, msg;
    ASSERT_EQ(object["ts"].get(ts), simdjson::SUCCESS) << line;
    EXPECT_THAT(std::string(ts),
                ::testing::MatchesRegex("20[0-9][0-9]-[01][0-9]-[0-3][0-9]T[0-2][0-9]:[0-5][0-9]:"
                                        "[0-6][0-9]\\.[0-9][0-9][0-9]Z"));
    ASSERT_EQ(object["severity"].get(severity), simdjson::SUCCESS) << line;
    EXPECT_THAT(std::string(severity), ::testing::AnyOf("DEBUG", "INFO", "WARNING", "ERROR"));
    ASSERT_EQ(object["msg"].get(msg), simdjson::SUCCESS) << line;
    if (msg.rfind("stream ended", 0) == 0) {
      std::string_view request_id, stream_id, list_id, account_id;
      ASSERT_EQ(object["request_id"].get(request_id), simdjson::SUCCESS) << line;
      ASSERT_EQ(object["stream_id"].get(stream_id), simdjson::SUCCESS) << line;
      ASSERT_EQ(object["list_id"].get(list_id), simdjson::SUCCESS) << line;
      ASSERT_EQ(object["account_id"].get(account_id), simdjson::SUCCESS) << line;
      EXPECT_EQ(stream_id, "st-obs");
      EXPECT_EQ(account_id, "acct-obs");
      if (list_id == "cl-missing") {
        EXPECT_THAT(std::string(msg), HasSubstr("NOT_FOUND"));
      }
      ended.emplace_back(request_id);
    }
  }
  EXPECT_THAT(out, HasSubstr("listening on "));
  EXPECT_THAT(out, HasSubstr("\"msg\":\"stopped\""));
  ASSERT_EQ(ended.size(), 3u) << out;
  EXPECT_EQ(ended[0], "req-obs-42");                               // the caller's
  EXPECT_THAT(ended[1], ::testing::MatchesRegex("[0-9a-f]{16}"));  // made up
  EXPECT_NE(ended[1], ended[2]);
  EXPECT_GE(lines, 5);
}

}  // namespace
}  // namespace contacts::gateway
