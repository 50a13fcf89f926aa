// W3C trace context end to end: the contacts-gateway binary between a caller and the real kore-sim
// process, whose request log (/_sim/requests) shows what reached the upstream.
#include <gmock/gmock.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "contacts/v1/contacts.grpc.pb.h"
#include "simdjson.h"
#include "tests/integration/test_support.h"

namespace contacts::gateway {
namespace {

using ::contacts::testing::ChildProcess;
using ::contacts::testing::KoreSim;
using ::contacts::testing::ReadFile;
using ::contacts::testing::SplitLines;
using ::testing::HasSubstr;

constexpr char kTraceId[] = "4bf92f3577b34da6a3ce929d0e0e4736";
constexpr char kCallerSpan[] = "00f067aa0ba902b7";

class TracingTest : public ::testing::Test {
 protected:
  void SetUp() override {
    sim_ = KoreSim::Start({"--app", "cs-trace=trace-secret-81"});
    ASSERT_NE(sim_, nullptr);
    gateway_ = contacts::testing::StartGatewayProcess(
        *sim_, {.client_id = "cs-trace", .client_secret = "trace-secret-81"});
    ASSERT_NE(gateway_, nullptr);
    stub_ = contacts::v1::ContactService::NewStub(grpc::CreateChannel(
        absl::StrCat("127.0.0.1:", gateway_->port()), grpc::InsecureChannelCredentials()));
  }

  // Streams cl-sim-<size> in pages of 50; returns the traceparent the gateway answered with.
  std::string Stream(int size, const std::string& traceparent, const std::string& tracestate) {
    grpc::ClientContext context;
    if (!traceparent.empty()) context.AddMetadata("traceparent", traceparent);
    if (!tracestate.empty()) context.AddMetadata("tracestate", tracestate);
    contacts::v1::StreamContactsRequest request;
    request.set_stream_id("st-trace");
    request.set_contact_list_id(absl::StrCat("cl-sim-", size));
    request.set_account_id("acct-trace");
    auto reader = stub_->StreamContacts(&context, request);
    contacts::v1::StreamContactsResponse response;
    while (reader->Read(&response)) {
    }
    EXPECT_TRUE(reader->Finish().ok());
    auto it = context.GetServerInitialMetadata().find("traceparent");
    return it == context.GetServerInitialMetadata().end()
               ? ""
               : std::string(it->second.data(), it->second.size());
  }

  // The (traceparent, tracestate) of every request kore-sim logged, in order.
  std::vector<std::pair<std::string, std::string>> UpstreamTraces() {
    contacts::testing::HttpResult log = sim_->Control("GET", "/_sim/requests");
    EXPECT_EQ(log.status, 200);
    simdjson::dom::parser parser;
    simdjson::dom::element root = parser.parse(log.body);
    std::vector<std::pair<std::string, std::string>> out;
    for (simdjson::dom::element entry : root["requests"].get_array()) {
      std::string_view parent, state;
      if (entry["traceparent"].get_string().get(parent)) parent = "";
      if (entry["tracestate"].get_string().get(state)) state = "";
      out.emplace_back(std::string(parent), std::string(state));
    }
    return out;
  }

  std::unique_ptr<KoreSim> sim_;
  std::unique_ptr<ChildProcess> gateway_;
  std::unique_ptr<contacts::v1::ContactService::Stub> stub_;
};

TEST_F(TracingTest, TheCallersTraceReachesEveryUpstreamRequestWithASpanOfItsOwn) {
  const std::string traceparent = absl::StrCat("00-", kTraceId, "-", kCallerSpan, "-01");
  const std::string answered = Stream(220, traceparent, "rojo=t61rcWkgMzE");
  // The gateway's stream is a span of the caller's trace.
  ASSERT_EQ(answered.size(), 55u);
  EXPECT_EQ(answered.substr(3, 32), kTraceId);
  EXPECT_NE(answered.substr(36, 16), kCallerSpan);

  std::vector<std::pair<std::string, std::string>> upstream = UpstreamTraces();
  ASSERT_EQ(upstream.size(), 5u);  // 220 contacts in pages of 50
  std::set<std::string> spans;
  for (const auto& [parent, state] : upstream) {
    ASSERT_EQ(parent.size(), 55u) << parent;
    EXPECT_EQ(parent.substr(0, 3), "00-");
    EXPECT_EQ(parent.substr(3, 32), kTraceId);
    EXPECT_EQ(parent.substr(52), "-01");
    EXPECT_EQ(state, "rojo=t61rcWkgMzE");
    spans.insert(parent.substr(36, 16));
  }
  EXPECT_EQ(spans.size(), upstream.size());  // a new span per upstream request
  EXPECT_FALSE(spans.contains(kCallerSpan));

  // The stream's log lines name the trace and the stream's span.
  stub_.reset();  // its connection closed: the gateway has nothing to drain
  gateway_->Stop(SIGTERM);
  std::string stream_ended;
  for (const std::string& line : SplitLines(ReadFile(gateway_->stdout_path()))) {
    if (line.find("stream ended") != std::string::npos) stream_ended = line;
  }
  EXPECT_THAT(stream_ended, HasSubstr(absl::StrCat("\"trace_id\":\"", kTraceId, "\"")));
  EXPECT_THAT(stream_ended,
              HasSubstr(absl::StrCat("\"span_id\":\"", answered.substr(36, 16), "\"")));
}

TEST_F(TracingTest, ACallerWithoutATraceGetsANewOneUpstreamToo) {
  const std::string answered = Stream(60, "", "");
  ASSERT_EQ(answered.size(), 55u);
  std::vector<std::pair<std::string, std::string>> upstream = UpstreamTraces();
  ASSERT_EQ(upstream.size(), 2u);
  for (const auto& [parent, state] : upstream) {
    EXPECT_EQ(parent.substr(3, 32), answered.substr(3, 32));
    EXPECT_EQ(state, "");
  }
  // An invalid traceparent counts as none: a new trace, not the garbage.
  const std::string replaced = Stream(10, "00-not-a-trace", "");
  EXPECT_NE(replaced.substr(3, 32), answered.substr(3, 32));
  EXPECT_EQ(UpstreamTraces().back().first.substr(3, 32), replaced.substr(3, 32));
}

}  // namespace
}  // namespace contacts::gateway
