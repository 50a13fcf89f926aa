#include "server/stream/retry.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <boost/asio/executor_work_guard.hpp>
#include <deque>
#include <future>
#include <thread>

#include "tests/unit/fake_page_source.h"

namespace contacts::gateway {
namespace {

using ::testing::HasSubstr;

TEST(RetryDelayTest, FullJitterDoublesUpToTheCap) {
  RetryOptions options{.initial_backoff = absl::Milliseconds(100), .max_backoff = absl::Seconds(1)};
  const RateLimitFacts answer;  // no Retry-After
  EXPECT_EQ(RetryDelay(options, 1, answer, 1.0), absl::Milliseconds(100));
  EXPECT_EQ(RetryDelay(options, 3, answer, 1.0), absl::Milliseconds(400));
  EXPECT_EQ(RetryDelay(options, 10, answer, 1.0), absl::Seconds(1));
  EXPECT_EQ(RetryDelay(options, 3, answer, 0.0), absl::ZeroDuration());
  EXPECT_EQ(RetryDelay(options, 3, answer, 0.5), absl::Milliseconds(200));
}

TEST(RetryDelayTest, HonoursRetryAfterWithACap) {
  RetryOptions options{.max_retry_after = absl::Seconds(60)};
  RateLimitFacts answer{.throttled = true, .retry_after = absl::Seconds(7)};
  EXPECT_EQ(RetryDelay(options, 1, answer, 0.1), absl::Seconds(7));
  answer.retry_after = absl::Seconds(3600);
  EXPECT_EQ(RetryDelay(options, 1, answer, 0.1), absl::Seconds(60));
}

TEST(RetryTest, RetriesOnlyWhatAnotherAttemptCanFix) {
  EXPECT_TRUE(IsRetryable(absl::UnavailableError("")));
  EXPECT_TRUE(IsRetryable(absl::ResourceExhaustedError("")));
  EXPECT_TRUE(IsRetryable(absl::InternalError("truncated")));
  EXPECT_FALSE(IsRetryable(absl::NotFoundError("")));
  EXPECT_FALSE(IsRetryable(absl::PermissionDeniedError("")));
  EXPECT_FALSE(IsRetryable(absl::UnauthenticatedError("")));
  EXPECT_FALSE(IsRetryable(absl::InvalidArgumentError("")));
  EXPECT_FALSE(IsRetryable(absl::CancelledError("")));
  EXPECT_FALSE(IsRetryable(absl::DeadlineExceededError("")));
}

// A 429 that says when to come back.
PageResult Throttled(absl::Duration retry_after) {
  return PageResult{absl::ResourceExhaustedError("HTTP 429"),
                    {.throttled = true, .retry_after = retry_after}};
}

class RetryingPageSourceTest : public ::testing::Test {
 protected:
  RetryingPageSourceTest() : thread_([this] { io_.run(); }) {}
  ~RetryingPageSourceTest() override {
    work_.reset();
    thread_.join();
  }
  absl::StatusOr<Page> Fetch(
      PageSource& source, absl::Time deadline = absl::InfiniteFuture(),
      std::shared_ptr<Cancellation> cancel = std::make_shared<Cancellation>()) {
    std::promise<absl::StatusOr<Page>> result;
    PageRequest request;
    request.deadline = deadline;
    source.Fetch(request, cancel,
                 [&](PageResult answer) { result.set_value(std::move(answer.page)); });
    return result.get_future().get();
  }
  RetryOptions Fast() {
    return {.max_attempts = 3,
            .initial_backoff = absl::Milliseconds(5),
            .max_backoff = absl::Milliseconds(20)};
  }

  boost::asio::io_context io_;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work_{
      io_.get_executor()};
  std::thread thread_;
};

TEST_F(RetryingPageSourceTest, SucceedsAfterTransientFailures) {
  Page page;
  page.contacts.Append({.id = "c1"});
  FakePageSource inner;
  inner.Script({{absl::UnavailableError("HTTP 503"), {}},
                {absl::InternalError("truncated"), {}},
                {page, {}}});
  RetryingPageSource source(io_, inner, Fast());
  absl::StatusOr<Page> result = Fetch(source);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->contacts[0].id(), "c1");
  EXPECT_EQ(inner.calls(), 3);
}

TEST_F(RetryingPageSourceTest, FailsFastOnNonRetryable) {
  FakePageSource inner;
  inner.Script({{absl::NotFoundError("HTTP 404"), {}}});
  RetryingPageSource source(io_, inner, Fast());
  EXPECT_EQ(Fetch(source).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(inner.calls(), 1);
}

TEST_F(RetryingPageSourceTest, GivesUpAfterMaxAttemptsKeepingTheCode) {
  FakePageSource inner;
  inner.Script({{absl::ResourceExhaustedError("HTTP 429"), {}},
                {absl::ResourceExhaustedError("HTTP 429"), {}},
                {absl::ResourceExhaustedError("HTTP 429"), {}}});
  RetryingPageSource source(io_, inner, Fast());
  absl::StatusOr<Page> result = Fetch(source);
  EXPECT_EQ(result.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(result.status().message(), HasSubstr("gave up after 3 attempts"));
  EXPECT_EQ(inner.calls(), 3);
}

TEST_F(RetryingPageSourceTest, NeverWaitsPastTheDeadline) {
  FakePageSource inner;
  inner.Script({Throttled(absl::Seconds(30))});
  RetryingPageSource source(io_, inner, Fast());
  absl::Time start = absl::Now();
  absl::StatusOr<Page> result = Fetch(source, start + absl::Seconds(2));
  EXPECT_LT(absl::Now() - start, absl::Seconds(20));  // did not wait out the 30 s
  EXPECT_EQ(result.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(result.status().message(), HasSubstr("deadline"));
  EXPECT_EQ(inner.calls(), 1);
}

TEST_F(RetryingPageSourceTest, CancellationEndsTheWaitAtOnce) {
  FakePageSource inner;
  inner.Script({Throttled(absl::Seconds(30))});
  RetryingPageSource source(io_, inner, Fast());
  auto cancel = std::make_shared<Cancellation>();
  std::thread canceller([cancel] {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    cancel->Cancel();
  });
  absl::Time start = absl::Now();
  absl::StatusOr<Page> result = Fetch(source, absl::InfiniteFuture(), cancel);
  canceller.join();
  EXPECT_EQ(result.status().code(), absl::StatusCode::kCancelled);
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));
  EXPECT_EQ(inner.calls(), 1);
}

}  // namespace
}  // namespace contacts::gateway
