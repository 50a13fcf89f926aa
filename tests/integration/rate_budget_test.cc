// The rate budget, coalescing and parallel prefetch against the real kore-sim process enforcing
// a per-account rate limit: concurrent streams of one list cost about one stream's upstream
// requests, a budget just under kore-sim's limit never draws a 429, and every stream's ids are
// exactly kore-sim's list. Rates are scaled down (600/min) so that each case takes seconds.
#include <gmock/gmock.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <iostream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "google/rpc/error_details.pb.h"
#include "google/rpc/status.pb.h"
#include "server/app/gateway_server.h"
#include "tests/integration/sim_suite.h"
#include "tests/integration/test_support.h"

namespace contacts::gateway {
namespace {

using ::contacts::testing::KoreSim;
using ::testing::HasSubstr;

constexpr char kAppId[] = "cs-budget";
constexpr char kSecret[] = "budget-secret-7a2c";
constexpr int kSimPerMinute = 600;
constexpr int kPageSize = 100;

class RateBudgetTest : public ::contacts::testing::SimSuite {
 protected:
  static void SetUpTestSuite() {
    sim_ = KoreSim::Start({"--app", absl::StrCat(kAppId, "=", kSecret), "--rate-limit",
                           std::to_string(kSimPerMinute)});
    ASSERT_NE(sim_, nullptr);
  }

  void StartGateway(int64_t per_minute, int prefetch_pages) {
    Config config;
    config.listen = "127.0.0.1:0";
    config.upstream.http.base_url = sim_->base_url();
    config.upstream.http.allow_plain_http = true;
    config.client_id = kAppId;
    config.client_secret = kSecret;
    config.authz.allow_unauthenticated = true;
    config.rate.per_minute = per_minute;
    config.stream.prefetch_pages = prefetch_pages;
    absl::StatusOr<std::unique_ptr<GatewayServer>> gateway = GatewayServer::Start(config);
    ASSERT_TRUE(gateway.ok()) << gateway.status();
    gateway_ = *std::move(gateway);
    stub_ = contacts::v1::ContactService::NewStub(grpc::CreateChannel(
        absl::StrCat("127.0.0.1:", gateway_->port()), grpc::InsecureChannelCredentials()));
  }

  struct Result {
    grpc::Status status;
    std::vector<std::string> ids;
  };
  Result Stream(const std::string& list, const std::string& account = "acct-budget",
                absl::Duration deadline = absl::Seconds(60)) {
    Result result;
    contacts::v1::StreamContactsRequest request;
    request.set_stream_id("st-budget");
    request.set_contact_list_id(list);
    request.set_account_id(account);
    request.set_page_size(kPageSize);
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + deadline));
    auto reader = stub_->StreamContacts(&context, request);
    contacts::v1::StreamContactsResponse response;
    while (reader->Read(&response)) {
      for (const auto& contact : response.contacts()) result.ids.push_back(contact.id());
    }
    result.status = reader->Finish();
    return result;
  }
  // Runs one stream per entry of `lists` at once.
  std::vector<Result> StreamAll(const std::vector<std::string>& lists) {
    std::vector<Result> results(lists.size());
    std::vector<std::thread> threads;
    for (size_t i = 0; i < lists.size(); ++i) {
      threads.emplace_back([&, i] { results[i] = Stream(lists[i]); });
    }
    for (std::thread& thread : threads) thread.join();
    return results;
  }

  std::unique_ptr<contacts::v1::ContactService::Stub> stub_;
};

TEST_F(RateBudgetTest, ConcurrentStreamsOfOneListCostAboutOneStream) {
  const std::string list = "cl-sim-2000";  // 20 pages of 100
  StartGateway(kSimPerMinute * 95 / 100, 4);
  Result one = Stream(list);
  ASSERT_TRUE(one.status.ok()) << one.status.error_message();
  const int64_t one_stream = sim_->ListRequests();
  EXPECT_EQ(one_stream, 20);
  gateway_->Shutdown(absl::ZeroDuration());  // a fresh gateway: an empty cache
  ASSERT_EQ(sim_->Control("POST", "/_sim/reset").status, 200);

  StartGateway(kSimPerMinute * 95 / 100, 4);
  const std::vector<std::string> expected = sim_->Ids(list);
  std::vector<Result> results = StreamAll(std::vector<std::string>(10, list));
  for (const Result& result : results) {
    ASSERT_TRUE(result.status.ok()) << result.status.error_message();
    EXPECT_EQ(result.ids, expected);
  }
  const std::string stats = sim_->Stats();
  const int64_t ten_streams = KoreSim::StatsNumber(stats, "list_requests");
  std::cout << "10 concurrent streams of " << list << ": " << ten_streams
            << " upstream requests (one stream: " << one_stream << ")" << std::endl;
  EXPECT_LE(ten_streams, one_stream * 11 / 10);
  EXPECT_EQ(KoreSim::StatsNumber(stats, "429", /*absent=*/0), 0);
}

TEST_F(RateBudgetTest, BudgetJustUnderTheLimitDrawsNo429AndIsSpent) {
  // Demand above the budget: 4 different lists of 20 pages, budget 95% of kore-sim's 600/min.
  const int64_t budget = kSimPerMinute * 95 / 100;
  StartGateway(budget, 8);
  std::vector<std::string> lists = {"cl-sim-2000", "cl-sim-2001", "cl-sim-2002", "cl-sim-2003"};
  std::vector<std::vector<std::string>> expected;
  for (const std::string& list : lists) expected.push_back(sim_->Ids(list));
  const absl::Time start = absl::Now();
  std::vector<Result> results = StreamAll(lists);
  const absl::Duration elapsed = absl::Now() - start;
  for (size_t i = 0; i < lists.size(); ++i) {
    ASSERT_TRUE(results[i].status.ok()) << lists[i] << ": " << results[i].status.error_message();
    EXPECT_EQ(results[i].ids, expected[i]) << lists[i];
  }
  const std::string stats = sim_->Stats();
  const int64_t requests = KoreSim::StatsNumber(stats, "list_requests");
  EXPECT_EQ(KoreSim::StatsNumber(stats, "429", /*absent=*/0), 0) << stats;
  // The first request of the burst is free; the rest are paced at the budget's rate.
  const double used = static_cast<double>(requests - 1) / (absl::ToDoubleMinutes(elapsed) * budget);
  std::cout << requests << " upstream requests in " << absl::FormatDuration(elapsed) << ": "
            << static_cast<int>(used * 100) << "% of the budget (" << budget << "/min)"
            << std::endl;
  EXPECT_GE(requests, 4 * 20);
  EXPECT_LE(used, 1.0 + 1e-9);  // never faster than the budget
}

TEST_F(RateBudgetTest, AccountsOverTheirBudgetWaitWithoutFailing) {
  // A budget that allows the first page at once and one more every 200 ms: a 3-page stream with
  // a window of 4 still delivers everything, in order, paced.
  StartGateway(300, 4);
  const std::string list = "cl-sim-300";
  Result result = Stream(list);
  ASSERT_TRUE(result.status.ok()) << result.status.error_message();
  EXPECT_EQ(result.ids, sim_->Ids(list));
  EXPECT_EQ(sim_->ListRequests(), 3);
}

// A budget that cannot serve a page before the call's deadline says so at once: DEADLINE_EXCEEDED
// (not UNAVAILABLE, which callers would resume in a loop), with when a request is free.
TEST_F(RateBudgetTest, ABudgetThatCannotFitTheDeadlineIsDeadlineExceededSayingWhen) {
  StartGateway(/*per_minute=*/2, /*prefetch_pages=*/1);  // a request every 30 s
  ASSERT_TRUE(Stream("cl-sim-10").status.ok());          // spends the one free request
  const absl::Time start = absl::Now();
  Result refused = Stream("cl-sim-20", "acct-budget", absl::Seconds(5));
  EXPECT_LT(absl::Now() - start, absl::Seconds(4));  // refused, not waited out
  ASSERT_EQ(refused.status.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED)
      << refused.status.error_message();
  EXPECT_THAT(refused.status.error_message(), HasSubstr("rate budget of account acct-budget"));
  google::rpc::Status rich;
  ASSERT_TRUE(rich.ParseFromString(refused.status.error_details()));
  std::string reason;
  int64_t retry_seconds = -1;
  for (const google::protobuf::Any& any : rich.details()) {
    if (google::rpc::ErrorInfo info; any.UnpackTo(&info)) reason = info.reason();
    if (google::rpc::RetryInfo retry; any.UnpackTo(&retry)) {
      retry_seconds = retry.retry_delay().seconds();
    }
  }
  EXPECT_EQ(reason, "RATE_BUDGET_EXHAUSTED");
  EXPECT_GE(retry_seconds, 20);  // the next request is ~30 s away
  EXPECT_LE(retry_seconds, 30);
}

}  // namespace
}  // namespace contacts::gateway
