#include "server/stream/credential_memory.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <boost/asio/executor_work_guard.hpp>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

#include "server/core/error_reason.h"
#include "tests/unit/fake_page_source.h"

namespace contacts::gateway {
namespace {

using ::testing::HasSubstr;

// Collects the answers of fetches, by index. std::mutex: see fake_page_source.h.
class Answers {
 public:
  PageSource::Callback For(size_t i) {
    return [this, i](PageResult result) {
      {
        std::lock_guard<std::mutex> lock(mu_);
        results_[i] = std::move(result.page);
      }
      wake_.notify_all();
    };
  }
  // Waits (up to 10 s) for answer `i`; its status, or kUnknown "no answer" on timeout.
  absl::Status Wait(size_t i) {
    std::unique_lock<std::mutex> lock(mu_);
    if (!wake_.wait_for(lock, std::chrono::seconds(10), [&] { return results_.count(i) > 0; })) {
      return absl::UnknownError("no answer");
    }
    return results_.at(i).status();
  }
  bool Has(size_t i) {
    std::lock_guard<std::mutex> lock(mu_);
    return results_.count(i) > 0;
  }

 private:
  std::mutex mu_;
  std::condition_variable wake_;
  std::map<size_t, absl::StatusOr<Page>> results_;
};

class CredentialMemoryTest : public ::testing::Test {
 protected:
  CredentialMemoryTest() : thread_([this] { io_.run(); }) { upstream_.Manual(); }
  ~CredentialMemoryTest() override {
    work_.reset();
    thread_.join();
  }

  static PageRequest Request(const std::string& jwt, const std::string& account = "acct-1") {
    PageRequest request;
    request.list_id = "cl-1";
    request.account_id = account;
    request.limit = 10;
    request.credentials = {jwt, "cs-app"};
    request.caller_credentials = true;
    return request;
  }
  void Fetch(CredentialMemoryPageSource& memory, size_t i, PageRequest request,
             std::shared_ptr<Cancellation> cancel = std::make_shared<Cancellation>()) {
    memory.Fetch(std::move(request), std::move(cancel), answers_.For(i));
  }
  // The upstream's refusal, as KoreClient makes it (code, message) with a reason set.
  static absl::Status Refusal() {
    return WithReason(
        absl::UnauthenticatedError("upstream answered HTTP 401 for contact list cl-1: Invalid JWT"),
        reason::kUpstreamUnauthenticated);
  }
  static Page OnePage() { return FakePageSource::PageOf({"c0"}); }
  // Waits (up to 10 s) until the upstream was asked `n` times.
  bool UpstreamAsked(size_t n) {
    for (int i = 0; i < 1000 && upstream_.calls() < n; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return upstream_.calls() == n;
  }

  boost::asio::io_context io_;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work_{
      io_.get_executor()};
  FakePageSource upstream_;
  Answers answers_;
  std::thread thread_;  // last: runs io_ once the members above are ready
};

TEST_F(CredentialMemoryTest, ARefusedJwtIsRefusedAgainWithTheSameStatusWithoutAsking) {
  CredentialMemoryPageSource memory(io_, upstream_, {});
  Fetch(memory, 0, Request("jwt-made-up"));
  upstream_.Answer(Refusal());
  ASSERT_EQ(answers_.Wait(0), Refusal());
  for (size_t i = 1; i <= 5; ++i) {
    Fetch(memory, i, Request("jwt-made-up"));
    absl::Status again = answers_.Wait(i);
    EXPECT_EQ(again, Refusal()) << i;  // code, message and payloads
    EXPECT_EQ(ReasonOf(again), reason::kUpstreamUnauthenticated);
  }
  EXPECT_EQ(upstream_.calls(), 1u);
  EXPECT_EQ(memory.refused(), 5);

  // A changed JWT, or the same JWT for another account, is asked again.
  Fetch(memory, 10, Request("jwt-new"));
  Fetch(memory, 11, Request("jwt-made-up", "acct-2"));
  ASSERT_TRUE(UpstreamAsked(3));
  upstream_.Answer(OnePage());
  upstream_.Answer(absl::PermissionDeniedError("upstream answered HTTP 403"));
  EXPECT_TRUE(answers_.Wait(10).ok());
  EXPECT_EQ(answers_.Wait(11).code(), absl::StatusCode::kPermissionDenied);
}

TEST_F(CredentialMemoryTest, RequestsOfAnUnprovenJwtWaitForTheFirstOnesAnswer) {
  CredentialMemoryPageSource memory(io_, upstream_, {});
  for (size_t i = 0; i < 30; ++i) Fetch(memory, i, Request("jwt-made-up"));
  ASSERT_TRUE(UpstreamAsked(1));
  EXPECT_FALSE(answers_.Has(1));
  upstream_.Answer(Refusal());
  for (size_t i = 0; i < 30; ++i) EXPECT_EQ(answers_.Wait(i), Refusal()) << i;
  EXPECT_EQ(upstream_.calls(), 1u);

  // An accepted JWT lets the waiting ones go on, and later ones go at once, in parallel.
  for (size_t i = 100; i < 104; ++i) Fetch(memory, i, Request("jwt-good"));
  ASSERT_TRUE(UpstreamAsked(2));
  upstream_.Answer(OnePage());
  ASSERT_TRUE(answers_.Wait(100).ok());
  ASSERT_TRUE(UpstreamAsked(5));
  for (size_t i = 104; i < 106; ++i) Fetch(memory, i, Request("jwt-good"));
  ASSERT_TRUE(UpstreamAsked(7));
  for (int i = 0; i < 5; ++i) upstream_.Answer(OnePage());
  for (size_t i = 101; i < 106; ++i) EXPECT_TRUE(answers_.Wait(i).ok()) << i;
}

TEST_F(CredentialMemoryTest, AnAnswerThatSaysNothingOfTheJwtLetsTheNextRequestAsk) {
  CredentialMemoryPageSource memory(io_, upstream_, {});
  for (size_t i = 0; i < 3; ++i) Fetch(memory, i, Request("jwt-1"));
  ASSERT_TRUE(UpstreamAsked(1));
  upstream_.Answer(absl::UnavailableError("upstream answered HTTP 503"));
  EXPECT_EQ(answers_.Wait(0).code(), absl::StatusCode::kUnavailable);
  ASSERT_TRUE(UpstreamAsked(2));  // the next one asks
  EXPECT_FALSE(answers_.Has(2));
  upstream_.Answer(OnePage());
  EXPECT_TRUE(answers_.Wait(1).ok());
  ASSERT_TRUE(UpstreamAsked(3));
  upstream_.Answer(OnePage());
  EXPECT_TRUE(answers_.Wait(2).ok());
}

TEST_F(CredentialMemoryTest, AWaitingRequestLeavesAtOnceWhenCancelled) {
  CredentialMemoryPageSource memory(io_, upstream_, {});
  Fetch(memory, 0, Request("jwt-1"));
  auto cancel = std::make_shared<Cancellation>();
  Fetch(memory, 1, Request("jwt-1"), cancel);
  cancel->Cancel();
  EXPECT_EQ(answers_.Wait(1).code(), absl::StatusCode::kCancelled);
  upstream_.Answer(OnePage());
  EXPECT_TRUE(answers_.Wait(0).ok());
  EXPECT_EQ(upstream_.calls(), 1u);
}

TEST_F(CredentialMemoryTest, VerdictsExpireAndStayBounded) {
  CredentialMemoryPageSource memory(io_, upstream_,
                                    {.ttl = absl::Milliseconds(200), .max_entries = 3});
  for (size_t i = 0; i < 10; ++i) {
    Fetch(memory, i, Request(absl::StrCat("jwt-", i)));
    ASSERT_TRUE(UpstreamAsked(i + 1));
    upstream_.Answer(Refusal());
    ASSERT_EQ(answers_.Wait(i), Refusal());
    EXPECT_LE(memory.entries(), 3u);
  }
  // jwt-9 is remembered; once its verdict expired, it is asked again.
  Fetch(memory, 100, Request("jwt-9"));
  EXPECT_EQ(answers_.Wait(100), Refusal());
  EXPECT_EQ(upstream_.calls(), 10u);
  const absl::Time give_up = absl::Now() + absl::Seconds(10);
  size_t i = 101;
  for (; upstream_.calls() == 10 && absl::Now() < give_up; ++i) {
    Fetch(memory, i, Request("jwt-9"));
    // Either refused from memory at once, or asked upstream.
    while (!answers_.Has(i) && upstream_.calls() == 10 && absl::Now() < give_up) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    if (upstream_.calls() == 10) {
      ASSERT_EQ(answers_.Wait(i), Refusal());
    }
  }
  ASSERT_EQ(upstream_.calls(), 11u);
  upstream_.Answer(OnePage());
  EXPECT_TRUE(answers_.Wait(i - 1).ok());
}

TEST_F(CredentialMemoryTest, MintedCredentialsAndATtlOfZeroPassStraightThrough) {
  CredentialMemoryPageSource memory(io_, upstream_, {});
  PageRequest minted = Request("minted-jwt");
  minted.caller_credentials = false;
  Fetch(memory, 0, minted);
  Fetch(memory, 1, minted);
  ASSERT_TRUE(UpstreamAsked(2));  // no waiting for a first answer
  upstream_.Answer(Refusal());
  upstream_.Answer(Refusal());
  EXPECT_EQ(answers_.Wait(0), Refusal());
  EXPECT_EQ(answers_.Wait(1), Refusal());
  Fetch(memory, 2, minted);
  ASSERT_TRUE(UpstreamAsked(3));  // minted JWTs change: nothing is remembered
  upstream_.Answer(OnePage());
  EXPECT_TRUE(answers_.Wait(2).ok());

  CredentialMemoryPageSource off(io_, upstream_, {.ttl = absl::ZeroDuration()});
  Fetch(off, 10, Request("jwt-1"));
  Fetch(off, 11, Request("jwt-1"));
  ASSERT_TRUE(UpstreamAsked(5));
  upstream_.Answer(Refusal());
  upstream_.Answer(Refusal());
  EXPECT_EQ(answers_.Wait(10), Refusal());
  EXPECT_EQ(answers_.Wait(11), Refusal());
  EXPECT_EQ(off.entries(), 0u);
}

}  // namespace
}  // namespace contacts::gateway
