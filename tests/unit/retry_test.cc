#include "server/stream/retry.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <boost/asio/executor_work_guard.hpp>
#include <deque>
#include <future>
#include <thread>

#include "absl/strings/cord.h"

namespace contacts::gateway {
namespace {

using ::testing::HasSubstr;

const absl::Time kNow = absl::FromUnixSeconds(784111777);  // Sun, 06 Nov 1994 08:49:37 GMT

TEST(RetryAfterTest, ReadsDelaySeconds) {
  EXPECT_EQ(ParseRetryAfter("120", kNow), absl::Seconds(120));
  EXPECT_EQ(ParseRetryAfter(" 0 ", kNow), absl::ZeroDuration());
}

TEST(RetryAfterTest, ReadsHttpDatesInAllThreeForms) {
  EXPECT_EQ(ParseRetryAfter("Sun, 06 Nov 1994 08:50:07 GMT", kNow), absl::Seconds(30));
  EXPECT_EQ(ParseRetryAfter("Sunday, 06-Nov-94 08:50:07 GMT", kNow), absl::Seconds(30));
  EXPECT_EQ(ParseRetryAfter("Sun Nov  6 08:50:07 1994", kNow), absl::Seconds(30));
  EXPECT_EQ(ParseRetryAfter("Sun, 06 Nov 1994 08:00:00 GMT", kNow), absl::ZeroDuration());  // past
}

TEST(RetryAfterTest, RejectsGarbage) {
  for (const char* bad : {"", "-5", "soon", "1.5", "Sun, 32 Nov 1994 08:49:37 GMT"}) {
    EXPECT_FALSE(ParseRetryAfter(bad, kNow).has_value()) << bad;
  }
}

TEST(RetryDelayTest, FullJitterDoublesUpToTheCap) {
  RetryOptions options{.initial_backoff = absl::Milliseconds(100), .max_backoff = absl::Seconds(1)};
  absl::Status failure = absl::UnavailableError("503");
  EXPECT_EQ(RetryDelay(options, 1, failure, kNow, 1.0), absl::Milliseconds(100));
  EXPECT_EQ(RetryDelay(options, 3, failure, kNow, 1.0), absl::Milliseconds(400));
  EXPECT_EQ(RetryDelay(options, 10, failure, kNow, 1.0), absl::Seconds(1));
  EXPECT_EQ(RetryDelay(options, 3, failure, kNow, 0.0), absl::ZeroDuration());
  EXPECT_EQ(RetryDelay(options, 3, failure, kNow, 0.5), absl::Milliseconds(200));
}

TEST(RetryDelayTest, HonoursRetryAfterWithACap) {
  RetryOptions options{.max_retry_after = absl::Seconds(60)};
  absl::Status failure = absl::ResourceExhaustedError("429");
  failure.SetPayload("retry-after", absl::Cord("7"));
  EXPECT_EQ(RetryDelay(options, 1, failure, kNow, 0.1), absl::Seconds(7));
  failure.SetPayload("retry-after", absl::Cord("3600"));
  EXPECT_EQ(RetryDelay(options, 1, failure, kNow, 0.1), absl::Seconds(60));
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

// Answers each Fetch with the next scripted result, inline.
class ScriptedSource final : public PageSource {
 public:
  explicit ScriptedSource(std::deque<absl::StatusOr<Page>> script) : script_(std::move(script)) {}
  void Fetch(PageRequest, std::shared_ptr<Cancellation>, Callback done) override {
    ++calls;
    absl::StatusOr<Page> next = script_.empty() ? absl::StatusOr<Page>(Page{}) : script_.front();
    if (!script_.empty()) script_.pop_front();
    std::move(done)(std::move(next));
  }
  int calls = 0;

 private:
  std::deque<absl::StatusOr<Page>> script_;
};

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
                 [&](absl::StatusOr<Page> page) { result.set_value(std::move(page)); });
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
  ScriptedSource inner(
      {absl::UnavailableError("HTTP 503"), absl::InternalError("truncated"), page});
  RetryingPageSource source(io_, inner, Fast());
  absl::StatusOr<Page> result = Fetch(source);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->contacts[0].id(), "c1");
  EXPECT_EQ(inner.calls, 3);
}

TEST_F(RetryingPageSourceTest, FailsFastOnNonRetryable) {
  ScriptedSource inner({absl::NotFoundError("HTTP 404")});
  RetryingPageSource source(io_, inner, Fast());
  EXPECT_EQ(Fetch(source).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(inner.calls, 1);
}

TEST_F(RetryingPageSourceTest, GivesUpAfterMaxAttemptsKeepingTheCode) {
  ScriptedSource inner({absl::ResourceExhaustedError("HTTP 429"),
                        absl::ResourceExhaustedError("HTTP 429"),
                        absl::ResourceExhaustedError("HTTP 429"), Page{}});
  RetryingPageSource source(io_, inner, Fast());
  absl::StatusOr<Page> result = Fetch(source);
  EXPECT_EQ(result.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(result.status().message(), HasSubstr("gave up after 3 attempts"));
  EXPECT_EQ(inner.calls, 3);
}

TEST_F(RetryingPageSourceTest, NeverWaitsPastTheDeadline) {
  absl::Status throttled = absl::ResourceExhaustedError("HTTP 429");
  throttled.SetPayload("retry-after", absl::Cord("30"));
  ScriptedSource inner({throttled, Page{}});
  RetryingPageSource source(io_, inner, Fast());
  absl::Time start = absl::Now();
  absl::StatusOr<Page> result = Fetch(source, start + absl::Seconds(2));
  EXPECT_LT(absl::Now() - start, absl::Seconds(1));
  EXPECT_EQ(result.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(result.status().message(), HasSubstr("deadline"));
  EXPECT_EQ(inner.calls, 1);
}

TEST_F(RetryingPageSourceTest, CancellationEndsTheWaitAtOnce) {
  absl::Status throttled = absl::ResourceExhaustedError("HTTP 429");
  throttled.SetPayload("retry-after", absl::Cord("30"));
  ScriptedSource inner({throttled, Page{}});
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
  EXPECT_EQ(inner.calls, 1);
}

}  // namespace
}  // namespace contacts::gateway
