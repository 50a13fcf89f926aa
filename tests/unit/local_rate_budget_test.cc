#include "server/stream/local_rate_budget.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <boost/asio/executor_work_guard.hpp>
#include <future>
#include <mutex>
#include <thread>

#include "absl/strings/str_cat.h"
#include "server/stream/budgeted_page_source.h"
#include "tests/unit/fake_page_source.h"

namespace contacts::gateway {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

const absl::Time kStart = absl::FromUnixSeconds(1'700'000'000);

absl::Time At(double seconds) { return kStart + absl::Seconds(seconds); }

// A request of stream `owner` of `caller` for `account`.
RateBudget::Ask Ask(const std::string& account, uint64_t owner, bool first_page = false,
                    const std::string& caller = "") {
  return {.account = account, .caller = caller, .owner = owner, .first_page = first_page};
}

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

TEST(BudgetBooksTest, UnlimitedAccountsAreNotBudgeted) {
  BudgetBooks budget({.per_minute = 0, .per_account = {{"slow", 30}}});
  EXPECT_FALSE(budget.Limited("any"));
  EXPECT_TRUE(budget.Limited("slow"));
  BudgetBooks limited({.per_minute = 60, .per_account = {{"free", 0}}});
  EXPECT_TRUE(limited.Limited("any"));
  EXPECT_FALSE(limited.Limited("free"));
}

TEST(BudgetBooksTest, ServesOwnersRoundRobinNotByHowManyTheyAsk) {
  BudgetBooks budget({.per_minute = 60, .burst = 1, .per_account = {}});
  // Owner 1 queues five pages, owners 2 and 3 one each, all before any token.
  budget.Enqueue(100, Ask("acct", 1), kStart);  // takes the first token below
  absl::Time wake;
  EXPECT_THAT(budget.Grant(kStart, &wake), ElementsAre(100));
  for (BudgetBooks::Ticket t : {101, 102, 103, 104}) budget.Enqueue(t, Ask("acct", 1), kStart);
  budget.Enqueue(201, Ask("acct", 2), kStart);
  budget.Enqueue(301, Ask("acct", 3), kStart);
  EXPECT_EQ(wake, absl::InfiniteFuture());
  EXPECT_THAT(budget.Grant(kStart, &wake), IsEmpty());
  EXPECT_EQ(wake, At(1));
  std::vector<BudgetBooks::Ticket> order;
  for (int second = 1; second <= 6; ++second) {
    for (BudgetBooks::Ticket t : budget.Grant(At(second), &wake)) order.push_back(t);
  }
  EXPECT_THAT(order, ElementsAre(101, 201, 301, 102, 103, 104));
  EXPECT_EQ(wake, absl::InfiniteFuture());
}

TEST(BudgetBooksTest, AccountsHaveBudgetsOfTheirOwn) {
  BudgetBooks budget({.per_minute = 60, .burst = 1, .per_account = {{"big", 600}}});
  for (BudgetBooks::Ticket t : {1, 2}) budget.Enqueue(t, Ask("small", 1), kStart);
  for (BudgetBooks::Ticket t : {11, 12}) budget.Enqueue(t, Ask("big", 2), kStart);
  absl::Time wake;
  EXPECT_THAT(budget.Grant(kStart, &wake), testing::UnorderedElementsAre(1, 11));
  EXPECT_EQ(wake, At(0.1));
  EXPECT_THAT(budget.Grant(At(0.1), &wake), ElementsAre(12));
  EXPECT_THAT(budget.Grant(At(1), &wake), ElementsAre(2));
}

TEST(BudgetBooksTest, EstimatesTheGrantBehindTheOwnersAhead) {
  BudgetBooks budget({.per_minute = 60, .burst = 1, .per_account = {}});
  EXPECT_EQ(budget.Enqueue(1, Ask("acct", 1), kStart), kStart);
  EXPECT_EQ(budget.Enqueue(2, Ask("acct", 2), kStart), At(1));
  EXPECT_EQ(budget.Enqueue(3, Ask("acct", 3), kStart), At(2));
}

TEST(BudgetBooksTest, RemovedTicketsAreNotGranted) {
  BudgetBooks budget({.per_minute = 60, .burst = 1, .per_account = {}});
  budget.Enqueue(1, Ask("acct", 1), kStart);
  budget.Enqueue(2, Ask("acct", 2), kStart);
  budget.Enqueue(3, Ask("acct", 2), kStart);
  EXPECT_TRUE(budget.Remove(1));
  EXPECT_FALSE(budget.Remove(1));
  EXPECT_TRUE(budget.Remove(3));
  absl::Time wake;
  EXPECT_THAT(budget.Grant(kStart, &wake), ElementsAre(2));
  EXPECT_EQ(wake, absl::InfiniteFuture());
}

TEST(BudgetBooksTest, ForgetsIdleAccountsButNotBusyOrPausedOnes) {
  BudgetBooks budget({.per_minute = 60, .burst = 1, .per_account = {}});
  absl::Time wake;
  // A paused account, and one with a request in flight: both must be kept.
  budget.Enqueue(1, Ask("paused", 1), kStart);
  budget.Enqueue(2, Ask("busy", 2), kStart);
  ASSERT_THAT(budget.Grant(kStart, &wake), testing::UnorderedElementsAre(1, 2));
  budget.Answered("paused", {.throttled = true, .retry_after = absl::Seconds(10000)}, kStart);
  // Thousands of accounts that each spent a token and were answered.
  for (int i = 0; i < 5000; ++i) {
    const std::string account = absl::StrCat("a", i);
    budget.Enqueue(10 + i, Ask(account, 3), At(i));
    ASSERT_THAT(budget.Grant(At(i), &wake), ElementsAre(10 + i));
    budget.Answered(account, {}, At(i));
  }
  EXPECT_LE(budget.accounts(), 64u);  // each refills a second after its request, then goes
  // The paused account still pauses, the busy one still counts its request in flight.
  budget.Enqueue(20000, Ask("paused", 1), At(5000));
  EXPECT_THAT(budget.Grant(At(5000), &wake), IsEmpty());
  EXPECT_EQ(wake, At(10000));
  budget.Enqueue(20001, Ask("busy", 2), At(5000));
  EXPECT_THAT(budget.Grant(At(5000), &wake), ElementsAre(20001));
}

TEST(BudgetBooksTest, ThrottledAnswerPausesTheWholeAccount) {
  BudgetBooks budget({.per_minute = 600, .burst = 1, .per_account = {}});
  budget.Enqueue(1, Ask("acct", 1), kStart);
  absl::Time wake;
  ASSERT_THAT(budget.Grant(kStart, &wake), ElementsAre(1));
  budget.Enqueue(2, Ask("acct", 2), kStart);  // another stream of the same account
  budget.Answered("acct", {.throttled = true, .retry_after = absl::Seconds(7)}, At(0.5));
  EXPECT_THAT(budget.Grant(At(1), &wake), IsEmpty());
  EXPECT_EQ(wake, At(7.5));
  EXPECT_THAT(budget.Grant(At(7.5), &wake), ElementsAre(2));
}

TEST(BudgetBooksTest, ThrottledWithoutRetryAfterUsesTheResetOrASecond) {
  BudgetBooks budget({.per_minute = 600, .burst = 1, .per_account = {}});
  budget.Enqueue(1, Ask("acct", 1), kStart);
  absl::Time wake;
  budget.Grant(kStart, &wake);
  budget.Answered("acct", {.throttled = true, .reset = absl::Seconds(4)}, kStart);
  budget.Enqueue(2, Ask("acct", 1), kStart);
  budget.Grant(kStart, &wake);
  EXPECT_EQ(wake, At(4));
  budget.Grant(At(4), &wake);
  budget.Answered("acct", {.throttled = true}, At(4));
  budget.Enqueue(3, Ask("acct", 1), At(4));
  budget.Grant(At(4), &wake);
  EXPECT_EQ(wake, At(5));
}

TEST(BudgetBooksTest, RemainingQuotaCountsRequestsStillInFlight) {
  BudgetBooks budget({.per_minute = 6000, .burst = 10, .per_account = {}});
  for (BudgetBooks::Ticket t : {1, 2, 3}) budget.Enqueue(t, Ask("acct", 1), kStart);
  absl::Time wake;
  ASSERT_THAT(budget.Grant(kStart, &wake), ElementsAre(1, 2, 3));
  // The answer to 1 says two requests are left for 30 s; 2 and 3 will spend them.
  budget.Answered("acct", {.remaining = 2, .reset = absl::Seconds(30)}, kStart);
  budget.Enqueue(4, Ask("acct", 1), kStart);
  EXPECT_THAT(budget.Grant(At(1), &wake), IsEmpty());
  EXPECT_EQ(wake, At(30));
  EXPECT_THAT(budget.Grant(At(30), &wake), ElementsAre(4));
}

TEST(BudgetBooksTest, AStreamsFirstPageGoesBeforeRunningStreamsLaterPages) {
  BudgetBooks budget({.per_minute = 60, .burst = 1, .per_account = {}});
  budget.Enqueue(1, Ask("acct", 1), kStart);  // takes the only token
  absl::Time wake;
  ASSERT_THAT(budget.Grant(kStart, &wake), ElementsAre(1));
  for (BudgetBooks::Ticket t : {2, 3}) budget.Enqueue(t, Ask("acct", 1), kStart);
  budget.Enqueue(4, Ask("acct", 2), kStart);
  EXPECT_EQ(budget.Enqueue(5, Ask("acct", 3, /*first_page=*/true), kStart),
            At(1));  // a new stream: next in line
  EXPECT_THAT(budget.Grant(At(1), &wake), ElementsAre(5));
  EXPECT_THAT(budget.Grant(At(2), &wake), ElementsAre(2));
  EXPECT_THAT(budget.Grant(At(3), &wake), ElementsAre(4));
}

TEST(BudgetBooksTest, ServesCallersRoundRobinThenTheirStreams) {
  BudgetBooks budget({.per_minute = 60, .burst = 1, .per_account = {}});
  absl::Time wake;
  budget.Enqueue(1, Ask("acct", 99, false, "first"), kStart);  // takes the only token
  ASSERT_THAT(budget.Grant(kStart, &wake), ElementsAre(1));
  // Caller "many" has four streams with two pages each, caller "one" one stream with three.
  for (uint64_t owner : {11, 12, 13, 14}) {
    for (BudgetBooks::Ticket page : {0, 1}) {
      budget.Enqueue(owner * 10 + page, Ask("acct", owner, false, "many"), kStart);
    }
  }
  for (BudgetBooks::Ticket t : {901, 902, 903})
    budget.Enqueue(t, Ask("acct", 9, false, "one"), kStart);
  std::vector<BudgetBooks::Ticket> order;
  for (int second = 1; second <= 11; ++second) {
    for (BudgetBooks::Ticket t : budget.Grant(At(second), &wake)) order.push_back(t);
  }
  // "one" gets every other request while it waits, not one in five; within "many" its streams
  // take turns.
  EXPECT_THAT(order, ElementsAre(110, 901, 120, 902, 130, 903, 140, 111, 121, 131, 141));
  EXPECT_EQ(wake, absl::InfiniteFuture());
}

TEST(BudgetBooksTest, ACallersNewStreamGoesFirstOnlyAmongItsOwnStreams) {
  BudgetBooks budget({.per_minute = 60, .burst = 1, .per_account = {}});
  absl::Time wake;
  budget.Enqueue(1, Ask("acct", 1, false, "a"), kStart);  // takes the only token
  ASSERT_THAT(budget.Grant(kStart, &wake), ElementsAre(1));
  budget.Enqueue(2, Ask("acct", 1, false, "a"), kStart);
  budget.Enqueue(3, Ask("acct", 2, false, "b"), kStart);
  // Caller a opens streams to jump the queue: each new stream's first page comes next among a's
  // streams, but b keeps its turn.
  EXPECT_EQ(budget.Enqueue(4, Ask("acct", 3, true, "a"), kStart), At(1));
  EXPECT_EQ(budget.Enqueue(5, Ask("acct", 4, true, "a"), kStart), At(1));
  EXPECT_EQ(budget.Enqueue(6, Ask("acct", 5, true, "c"), kStart), At(3));  // behind a and b
  std::vector<BudgetBooks::Ticket> order;
  for (int second = 1; second <= 5; ++second) {
    for (BudgetBooks::Ticket t : budget.Grant(At(second), &wake)) order.push_back(t);
  }
  EXPECT_THAT(order, ElementsAre(5, 3, 6, 4, 2));
}

TEST(BudgetBooksTest, EstimatesTheGrantBehindTheCallersAhead) {
  BudgetBooks budget({.per_minute = 60, .burst = 1, .per_account = {}});
  EXPECT_EQ(budget.Enqueue(1, Ask("acct", 1, false, "a"), kStart), kStart);
  for (BudgetBooks::Ticket t : {2, 3, 4}) budget.Enqueue(t, Ask("acct", 1, false, "a"), kStart);
  budget.Enqueue(5, Ask("acct", 2, false, "b"), kStart);
  // c's first request waits for one of a's and one of b's; its second for a's second too (b has
  // no second), after c's own first.
  EXPECT_EQ(budget.Enqueue(6, Ask("acct", 3, false, "c"), kStart), At(2));
  EXPECT_EQ(budget.Enqueue(7, Ask("acct", 3, false, "c"), kStart), At(4));
  absl::Time wake;
  std::vector<BudgetBooks::Ticket> order;
  for (int second = 0; second <= 6; ++second) {
    for (BudgetBooks::Ticket t : budget.Grant(At(second), &wake)) order.push_back(t);
  }
  EXPECT_THAT(order, ElementsAre(1, 5, 6, 2, 7, 3, 4));
}

class LocalRateBudgetTest : public ::testing::Test {
 protected:
  LocalRateBudgetTest() : thread_([this] { io_.run(); }) {}
  ~LocalRateBudgetTest() override {
    work_.reset();
    thread_.join();
  }
  std::future<RateBudget::Decision> Acquire(
      RateBudget& budget, uint64_t owner, absl::Time deadline = absl::InfiniteFuture(),
      std::shared_ptr<Cancellation> cancel = std::make_shared<Cancellation>()) {
    auto result = std::make_shared<std::promise<RateBudget::Decision>>();
    budget.Acquire({.account = "acct", .owner = owner, .deadline = deadline}, cancel,
                   [result](RateBudget::Decision d) { result->set_value(std::move(d)); });
    return result->get_future();
  }

  boost::asio::io_context io_;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work_{
      io_.get_executor()};
  std::thread thread_;
};

TEST_F(LocalRateBudgetTest, GrantsInTurnAndCountsOnlyTheQueued) {
  // One request per 300 ms: the four asks below come in long before the second is free.
  LocalRateBudget budget(io_, {.per_minute = 200, .burst = 1, .per_account = {}});
  std::vector<uint64_t> order;
  std::mutex mu;
  std::vector<std::future<void>> done;
  for (uint64_t owner : {1, 1, 1, 2}) {
    auto granted = std::make_shared<std::promise<void>>();
    done.push_back(granted->get_future());
    budget.Acquire({.account = "acct", .owner = owner}, std::make_shared<Cancellation>(),
                   [&, owner, granted](RateBudget::Decision d) {
                     EXPECT_TRUE(d.status.ok()) << d.status;
                     {
                       std::lock_guard<std::mutex> lock(mu);
                       order.push_back(owner);
                     }
                     // Outside the lock: once the last is set, the test may end and destroy `mu`.
                     granted->set_value();
                   });
  }
  for (auto& f : done) f.get();
  // The first goes at once; then stream 2 gets its turn before stream 1's third request.
  EXPECT_THAT(order, ElementsAre(1, 1, 2, 1));
  EXPECT_EQ(budget.queued(), 3);  // all but the first waited for a request
}

TEST_F(LocalRateBudgetTest, CancellationEndsTheWaitAtOnce) {
  LocalRateBudget budget(io_, {.per_minute = 1, .burst = 1, .per_account = {}});
  ASSERT_TRUE(Acquire(budget, 1).get().status.ok());  // spends the only request for a minute
  auto cancel = std::make_shared<Cancellation>();
  auto waiting = Acquire(budget, 2, absl::InfiniteFuture(), cancel);
  cancel->Cancel();
  EXPECT_EQ(waiting.get().status.code(), absl::StatusCode::kCancelled);
}

TEST_F(LocalRateBudgetTest, AWaitPastTheDeadlineIsRefusedAtOnceSayingWhen) {
  LocalRateBudget budget(io_, {.per_minute = 1, .burst = 1, .per_account = {}});
  ASSERT_TRUE(Acquire(budget, 1).get().status.ok());
  RateBudget::Decision refused = Acquire(budget, 2, absl::Now() + absl::Seconds(30)).get();
  EXPECT_EQ(refused.status.code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_THAT(refused.status.message(), HasSubstr("rate budget of account acct"));
  EXPECT_GT(refused.retry_after, absl::Seconds(50));  // the next request is a minute away
  EXPECT_LE(refused.retry_after, absl::Seconds(60));
}

TEST_F(LocalRateBudgetTest, AThrottledAnswerHoldsBackTheWholeAccount) {
  LocalRateBudget budget(io_, {.per_minute = 6000, .burst = 5, .per_account = {}});
  ASSERT_TRUE(Acquire(budget, 1).get().status.ok());
  budget.Answered("acct", {.throttled = true, .retry_after = absl::Seconds(60)});
  // Another stream of the account would now wait a minute: past its deadline, so refused.
  RateBudget::Decision refused = Acquire(budget, 2, absl::Now() + absl::Seconds(10)).get();
  EXPECT_EQ(refused.status.code(), absl::StatusCode::kDeadlineExceeded);
}

TEST_F(LocalRateBudgetTest, UnbudgetedAccountsAreNotLimited) {
  LocalRateBudget budget(io_, {.per_minute = 0, .per_account = {{"slow", 30}}});
  EXPECT_FALSE(budget.Limited("acct"));
  EXPECT_TRUE(budget.Limited("slow"));
}

TEST_F(LocalRateBudgetTest, TheBudgetedSourceAsksBeforeEveryRequestAndReportsTheAnswer) {
  LocalRateBudget budget(io_, {.per_minute = 6000, .burst = 5, .per_account = {}});
  FakePageSource inner;
  inner.Script({{absl::ResourceExhaustedError("HTTP 429"),
                 {.throttled = true, .retry_after = absl::Seconds(60)}}});
  BudgetedPageSource source(budget, inner);
  auto fetch = [&](absl::Time deadline) {
    std::promise<PageResult> result;
    PageRequest request;
    request.account_id = "acct";
    request.deadline = deadline;
    source.Fetch(request, std::make_shared<Cancellation>(),
                 [&](PageResult r) { result.set_value(std::move(r)); });
    return result.get_future().get();
  };
  EXPECT_EQ(fetch(absl::InfiniteFuture()).page.status().code(),
            absl::StatusCode::kResourceExhausted);
  // The 429 paused the account: the next request is refused before reaching the upstream, and
  // says when the budget frees up.
  PageResult refused = fetch(absl::Now() + absl::Seconds(10));
  EXPECT_EQ(refused.page.status().code(), absl::StatusCode::kDeadlineExceeded);
  ASSERT_TRUE(refused.rate_limit.retry_after.has_value());
  EXPECT_GT(*refused.rate_limit.retry_after, absl::Seconds(50));
  EXPECT_EQ(inner.calls(), 1u);
}

}  // namespace
}  // namespace contacts::gateway
