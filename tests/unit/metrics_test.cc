#include "server/core/metrics.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "server/service/grpc_metrics.h"

namespace contacts::gateway {
namespace {

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

TEST(MetricsTest, GrpcCodesCarryGrpcGoNames) {
  EXPECT_EQ(GoCodeName(grpc::StatusCode::OK), "OK");
  EXPECT_EQ(GoCodeName(grpc::StatusCode::CANCELLED), "Canceled");
  EXPECT_EQ(GoCodeName(grpc::StatusCode::INVALID_ARGUMENT), "InvalidArgument");
  EXPECT_EQ(GoCodeName(grpc::StatusCode::RESOURCE_EXHAUSTED), "ResourceExhausted");
  EXPECT_EQ(GoCodeName(grpc::StatusCode::UNAUTHENTICATED), "Unauthenticated");
  EXPECT_EQ(GoCodeName(static_cast<grpc::StatusCode>(20)),
            "Unknown");  // within the enum's range: no UB
}

}  // namespace
}  // namespace contacts::gateway
