#include "server/stream/rate_budget.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <boost/asio/executor_work_guard.hpp>
#include <future>
#include <thread>

#include "absl/strings/cord.h"
#include "absl/strings/str_cat.h"
#include "server/upstream/kore_client.h"

namespace contacts::gateway {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

const absl::Time kStart = absl::FromUnixSeconds(1'700'000'000);

absl::Time At(double seconds) { return kStart + absl::Seconds(seconds); }

TEST(TokenBucketTest, PacesAtTheRateAfterTheBurst) {
  TokenBucket bucket(60, 2, kStart);
  EXPECT_EQ(bucket.Ready(kStart), kStart);
  bucket.Take(kStart);
  EXPECT_EQ(bucket.Ready(kStart), kStart);
  bucket.Take(kStart);
  EXPECT_EQ(bucket.Ready(kStart), At(1));
  EXPECT_EQ(bucket.Ready(kStart, 3), At(3));
  bucket.Take(At(1));
  EXPECT_EQ(bucket.Ready(At(1)), At(2));
  // A quiet spell refills up to the burst, not beyond.
  EXPECT_EQ(bucket.Ready(At(100), 2), At(100));
  EXPECT_EQ(bucket.Ready(At(100), 3), At(101));
}

TEST(TokenBucketTest, BurstOneNeverExceedsTheRateInAnyMinute) {
  TokenBucket bucket(600, 1, kStart);
  std::vector<absl::Time> grants;
  absl::Time now = kStart;
  while (grants.size() < 1800) {
    now = bucket.Ready(now);
    bucket.Take(now);
    grants.push_back(now);
  }
  for (size_t i = 600; i < grants.size(); ++i) {
    EXPECT_GE(grants[i] - grants[i - 600], absl::Minutes(1)) << i;
  }
}

TEST(TokenBucketTest, PauseAdmitsNothingUntilItsEndThenPaces) {
  TokenBucket bucket(60, 5, kStart);
  bucket.PauseUntil(At(30));
  EXPECT_EQ(bucket.Ready(At(10)), At(30));
  bucket.Take(At(30));
  EXPECT_EQ(bucket.Ready(At(30)), At(31));  // no burst right after a pause
}

TEST(TokenBucketTest, QuotaHoldsGrantsUntilItsReset) {
  TokenBucket bucket(600, 10, kStart);
  bucket.Limit(2, At(20));
  bucket.Take(kStart);
  bucket.Take(kStart);
  EXPECT_EQ(bucket.Ready(kStart), At(20));
  EXPECT_EQ(bucket.Ready(At(20)), At(20));
}

TEST(RateBudgetTest, UnlimitedAccountsAreNotBudgeted) {
  RateBudget budget({.per_minute = 0, .per_account = {{"slow", 30}}});
  EXPECT_FALSE(budget.Limited("any"));
  EXPECT_TRUE(budget.Limited("slow"));
  RateBudget limited({.per_minute = 60, .per_account = {{"free", 0}}});
  EXPECT_TRUE(limited.Limited("any"));
  EXPECT_FALSE(limited.Limited("free"));
}

TEST(RateBudgetTest, ServesOwnersRoundRobinNotByHowManyTheyAsk) {
  RateBudget budget({.per_minute = 60, .burst = 1, .per_account = {}});
  // Owner 1 queues five pages, owners 2 and 3 one each, all before any token.
  budget.Enqueue(100, "acct", 1, kStart);  // takes the first token below
  absl::Time wake;
  EXPECT_THAT(budget.Grant(kStart, &wake), ElementsAre(100));
  for (RateBudget::Ticket t : {101, 102, 103, 104}) budget.Enqueue(t, "acct", 1, kStart);
  budget.Enqueue(201, "acct", 2, kStart);
  budget.Enqueue(301, "acct", 3, kStart);
  EXPECT_EQ(wake, absl::InfiniteFuture());
  EXPECT_THAT(budget.Grant(kStart, &wake), IsEmpty());
  EXPECT_EQ(wake, At(1));
  std::vector<RateBudget::Ticket> order;
  for (int second = 1; second <= 6; ++second) {
    for (RateBudget::Ticket t : budget.Grant(At(second), &wake)) order.push_back(t);
  }
  EXPECT_THAT(order, ElementsAre(101, 201, 301, 102, 103, 104));
  EXPECT_EQ(wake, absl::InfiniteFuture());
}

TEST(RateBudgetTest, AccountsHaveBudgetsOfTheirOwn) {
  RateBudget budget({.per_minute = 60, .burst = 1, .per_account = {{"big", 600}}});
  for (RateBudget::Ticket t : {1, 2}) budget.Enqueue(t, "small", 1, kStart);
  for (RateBudget::Ticket t : {11, 12}) budget.Enqueue(t, "big", 2, kStart);
  absl::Time wake;
  EXPECT_THAT(budget.Grant(kStart, &wake), testing::UnorderedElementsAre(1, 11));
  EXPECT_EQ(wake, At(0.1));
  EXPECT_THAT(budget.Grant(At(0.1), &wake), ElementsAre(12));
  EXPECT_THAT(budget.Grant(At(1), &wake), ElementsAre(2));
}

TEST(RateBudgetTest, EstimatesTheGrantBehindTheOwnersAhead) {
  RateBudget budget({.per_minute = 60, .burst = 1, .per_account = {}});
  EXPECT_EQ(budget.Enqueue(1, "acct", 1, kStart), kStart);
  EXPECT_EQ(budget.Enqueue(2, "acct", 2, kStart), At(1));
  EXPECT_EQ(budget.Enqueue(3, "acct", 3, kStart), At(2));
}

TEST(RateBudgetTest, RemovedTicketsAreNotGranted) {
  RateBudget budget({.per_minute = 60, .burst = 1, .per_account = {}});
  budget.Enqueue(1, "acct", 1, kStart);
  budget.Enqueue(2, "acct", 2, kStart);
  budget.Enqueue(3, "acct", 2, kStart);
  EXPECT_TRUE(budget.Remove(1));
  EXPECT_FALSE(budget.Remove(1));
  EXPECT_TRUE(budget.Remove(3));
  absl::Time wake;
  EXPECT_THAT(budget.Grant(kStart, &wake), ElementsAre(2));
  EXPECT_EQ(wake, absl::InfiniteFuture());
}

TEST(RateBudgetTest, ForgetsIdleAccountsButNotBusyOrPausedOnes) {
  RateBudget budget({.per_minute = 60, .burst = 1, .per_account = {}});
  absl::Time wake;
  // A paused account, and one with a request in flight: both must be kept.
  budget.Enqueue(1, "paused", 1, kStart);
  budget.Enqueue(2, "busy", 2, kStart);
  ASSERT_THAT(budget.Grant(kStart, &wake), testing::UnorderedElementsAre(1, 2));
  budget.Answered("paused", true, absl::Seconds(10000), {}, kStart);
  // Thousands of accounts that each spent a token and were answered.
  for (int i = 0; i < 5000; ++i) {
    const std::string account = absl::StrCat("a", i);
    budget.Enqueue(10 + i, account, 3, At(i));
    ASSERT_THAT(budget.Grant(At(i), &wake), ElementsAre(10 + i));
    budget.Answered(account, false, std::nullopt, {}, At(i));
  }
  EXPECT_LE(budget.accounts(), 64u);  // each refills a second after its request, then goes
  // The paused account still pauses, the busy one still counts its request in flight.
  budget.Enqueue(20000, "paused", 1, At(5000));
  EXPECT_THAT(budget.Grant(At(5000), &wake), IsEmpty());
  EXPECT_EQ(wake, At(10000));
  budget.Enqueue(20001, "busy", 2, At(5000));
  EXPECT_THAT(budget.Grant(At(5000), &wake), ElementsAre(20001));
}

TEST(RateBudgetTest, ThrottledAnswerPausesTheWholeAccount) {
  RateBudget budget({.per_minute = 600, .burst = 1, .per_account = {}});
  budget.Enqueue(1, "acct", 1, kStart);
  absl::Time wake;
  ASSERT_THAT(budget.Grant(kStart, &wake), ElementsAre(1));
  budget.Enqueue(2, "acct", 2, kStart);  // another stream of the same account
  budget.Answered("acct", true, absl::Seconds(7), {}, At(0.5));
  EXPECT_THAT(budget.Grant(At(1), &wake), IsEmpty());
  EXPECT_EQ(wake, At(7.5));
  EXPECT_THAT(budget.Grant(At(7.5), &wake), ElementsAre(2));
}

TEST(RateBudgetTest, ThrottledWithoutRetryAfterUsesTheResetOrASecond) {
  RateBudget budget({.per_minute = 600, .burst = 1, .per_account = {}});
  budget.Enqueue(1, "acct", 1, kStart);
  absl::Time wake;
  budget.Grant(kStart, &wake);
  budget.Answered("acct", true, std::nullopt,
                  {.remaining = std::nullopt, .reset = absl::Seconds(4)}, kStart);
  budget.Enqueue(2, "acct", 1, kStart);
  budget.Grant(kStart, &wake);
  EXPECT_EQ(wake, At(4));
  budget.Grant(At(4), &wake);
  budget.Answered("acct", true, std::nullopt, {}, At(4));
  budget.Enqueue(3, "acct", 1, At(4));
  budget.Grant(At(4), &wake);
  EXPECT_EQ(wake, At(5));
}

TEST(RateBudgetTest, RemainingQuotaCountsRequestsStillInFlight) {
  RateBudget budget({.per_minute = 6000, .burst = 10, .per_account = {}});
  for (RateBudget::Ticket t : {1, 2, 3}) budget.Enqueue(t, "acct", 1, kStart);
  absl::Time wake;
  ASSERT_THAT(budget.Grant(kStart, &wake), ElementsAre(1, 2, 3));
  // The answer to 1 says two requests are left for 30 s; 2 and 3 will spend them.
  budget.Answered("acct", false, std::nullopt, {.remaining = 2, .reset = absl::Seconds(30)},
                  kStart);
  budget.Enqueue(4, "acct", 1, kStart);
  EXPECT_THAT(budget.Grant(At(1), &wake), IsEmpty());
  EXPECT_EQ(wake, At(30));
  EXPECT_THAT(budget.Grant(At(30), &wake), ElementsAre(4));
}

TEST(RateLimitHeadersTest, ReadsDeltaSecondsAndUnixTimes) {
  RateLimitHint hint = ParseRateLimitHeaders("5", "12", kStart);
  EXPECT_EQ(hint.remaining, 5);
  EXPECT_EQ(hint.reset, absl::Seconds(12));
  hint = ParseRateLimitHeaders("0", "1700000042", kStart);
  EXPECT_EQ(hint.remaining, 0);
  EXPECT_EQ(hint.reset, absl::Seconds(42));
  hint = ParseRateLimitHeaders("", "soon", kStart);
  EXPECT_FALSE(hint.remaining.has_value());
  EXPECT_FALSE(hint.reset.has_value());
}

// Answers each Fetch at once with an empty page (or `answer`), counting calls.
class CountingSource final : public PageSource {
 public:
  void Fetch(PageRequest request, std::shared_ptr<Cancellation>, Callback done) override {
    {
      absl::MutexLock lock(&mu_);
      owners_.push_back(request.owner);
    }
    std::move(done)(answer);
  }
  std::vector<uint64_t> owners() {
    absl::MutexLock lock(&mu_);
    return owners_;
  }
  absl::StatusOr<Page> answer = Page{};

 private:
  absl::Mutex mu_;
  std::vector<uint64_t> owners_;
};

class RateLimitedPageSourceTest : public ::testing::Test {
 protected:
  RateLimitedPageSourceTest() : thread_([this] { io_.run(); }) {}
  ~RateLimitedPageSourceTest() override {
    work_.reset();
    thread_.join();
  }
  std::future<absl::StatusOr<Page>> Start(
      PageSource& source, uint64_t owner, absl::Time deadline = absl::InfiniteFuture(),
      std::shared_ptr<Cancellation> cancel = std::make_shared<Cancellation>()) {
    auto result = std::make_shared<std::promise<absl::StatusOr<Page>>>();
    PageRequest request;
    request.account_id = "acct";
    request.owner = owner;
    request.deadline = deadline;
    source.Fetch(request, cancel,
                 [result](absl::StatusOr<Page> page) { result->set_value(std::move(page)); });
    return result->get_future();
  }

  boost::asio::io_context io_;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work_{
      io_.get_executor()};
  std::thread thread_;
};

TEST_F(RateLimitedPageSourceTest, SpendsOneTokenPerRequestAndWaitsForTheNext) {
  CountingSource inner;
  // One token per 300 ms: the four requests below come in long before the second token.
  RateLimitedPageSource source(io_, inner, {.per_minute = 200, .burst = 1, .per_account = {}});
  std::vector<std::future<absl::StatusOr<Page>>> results;
  for (uint64_t owner : {1, 1, 1, 2}) results.push_back(Start(source, owner));
  for (auto& result : results) EXPECT_TRUE(result.get().ok());
  // The first goes at once; then stream 2 gets its turn before stream 1's third page.
  EXPECT_THAT(inner.owners(), ElementsAre(1, 1, 2, 1));
  EXPECT_EQ(source.waits(), 3);  // queued for a token: all but the first
}

TEST_F(RateLimitedPageSourceTest, CancellationEndsTheWaitAtOnce) {
  CountingSource inner;
  RateLimitedPageSource source(io_, inner, {.per_minute = 1, .burst = 1, .per_account = {}});
  ASSERT_TRUE(Start(source, 1).get().ok());  // spends the only token for a minute
  auto cancel = std::make_shared<Cancellation>();
  auto waiting = Start(source, 2, absl::InfiniteFuture(), cancel);
  cancel->Cancel();
  EXPECT_EQ(waiting.get().status().code(), absl::StatusCode::kCancelled);
  EXPECT_EQ(inner.owners().size(), 1u);
}

TEST_F(RateLimitedPageSourceTest, WaitPastTheDeadlineFailsAtOnce) {
  CountingSource inner;
  RateLimitedPageSource source(io_, inner, {.per_minute = 1, .burst = 1, .per_account = {}});
  ASSERT_TRUE(Start(source, 1).get().ok());
  absl::StatusOr<Page> refused = Start(source, 2, absl::Now() + absl::Seconds(30)).get();
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_THAT(refused.status().message(), HasSubstr("rate budget of account acct"));
  EXPECT_EQ(inner.owners().size(), 1u);
}

TEST_F(RateLimitedPageSourceTest, ThrottledAnswerHoldsBackTheAccount) {
  CountingSource inner;
  absl::Status throttled = absl::ResourceExhaustedError("HTTP 429");
  throttled.SetPayload(kRetryAfterPayload, absl::Cord("60"));
  inner.answer = throttled;
  RateLimitedPageSource source(io_, inner, {.per_minute = 6000, .burst = 5, .per_account = {}});
  EXPECT_EQ(Start(source, 1).get().status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(source.throttled(), 1);
  // Another stream of the account would now wait a minute: past its deadline, so refused.
  absl::StatusOr<Page> refused = Start(source, 2, absl::Now() + absl::Seconds(10)).get();
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_EQ(inner.owners().size(), 1u);
}

TEST_F(RateLimitedPageSourceTest, UnbudgetedAccountsPassStraightThrough) {
  CountingSource inner;
  RateLimitedPageSource source(io_, inner, {.per_minute = 0, .per_account = {}});
  for (int i = 0; i < 100; ++i) ASSERT_TRUE(Start(source, 1).get().ok());
  EXPECT_EQ(source.waits(), 0);
  EXPECT_EQ(inner.owners().size(), 100u);
}

}  // namespace
}  // namespace contacts::gateway
