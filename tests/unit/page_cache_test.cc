#include "server/stream/page_cache.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <boost/asio/executor_work_guard.hpp>
#include <future>
#include <thread>

#include "tests/unit/fake_page_source.h"

namespace contacts::gateway {
namespace {

using ::testing::ElementsAre;

Page PageOf(std::vector<std::string> ids) { return FakePageSource::PageOf(ids); }

std::vector<std::string> Ids(const absl::StatusOr<Page>& page) {
  std::vector<std::string> ids;
  if (page.ok()) {
    for (size_t i = 0; i < page->contacts.size(); ++i) ids.emplace_back(page->contacts.id(i));
  }
  return ids;
}

class CachingPageSourceTest : public ::testing::Test {
 protected:
  CachingPageSourceTest() : thread_([this] { io_.run(); }) {}
  ~CachingPageSourceTest() override {
    work_.reset();
    thread_.join();
  }
  static PageRequest Request(int64_t skip, std::string jwt = "minted",
                             bool caller_credentials = false) {
    PageRequest request;
    request.stream_id = "st-1";
    request.list_id = "cl-1";
    request.account_id = "acct";
    request.skip = skip;
    request.limit = 2;
    request.credentials = {std::move(jwt), "cs-app"};
    request.caller_credentials = caller_credentials;
    return request;
  }
  std::future<absl::StatusOr<Page>> Start(
      PageSource& source, PageRequest request,
      std::shared_ptr<Cancellation> cancel = std::make_shared<Cancellation>()) {
    auto result = std::make_shared<std::promise<absl::StatusOr<Page>>>();
    source.Fetch(std::move(request), cancel,
                 [result](PageResult answer) { result->set_value(std::move(answer.page)); });
    return result->get_future();
  }

  boost::asio::io_context io_;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work_{
      io_.get_executor()};
  std::thread thread_;
};

TEST_F(CachingPageSourceTest, IdenticalRequestsInFlightAreFetchedOnceAndFannedOut) {
  FakePageSource inner;
  inner.Manual();
  LocalPageStore source_store({.max_bytes = 0});
  CachingPageSource source(io_, source_store, inner);  // no cache: coalescing only
  std::vector<std::future<absl::StatusOr<Page>>> results;
  for (int i = 0; i < 5; ++i)
    results.push_back(Start(source, Request(0, "jwt-" + std::to_string(i))));
  auto other = Start(source, Request(2));
  EXPECT_EQ(inner.calls(), 2u);
  inner.Answer(PageOf({"c0", "c1"}));
  inner.Answer(PageOf({"c2", "c3"}));
  for (auto& result : results) EXPECT_THAT(Ids(result.get()), ElementsAre("c0", "c1"));
  EXPECT_THAT(Ids(other.get()), ElementsAre("c2", "c3"));
  EXPECT_EQ(source.coalesced(), 4);
  EXPECT_EQ(source.misses(), 2);
  // Nothing was kept: the same request again goes upstream.
  auto again = Start(source, Request(0));
  EXPECT_EQ(inner.calls(), 3u);
  inner.Answer(PageOf({"c0", "c1"}));
  EXPECT_THAT(Ids(again.get()), ElementsAre("c0", "c1"));
}

TEST_F(CachingPageSourceTest, ErrorsReachEveryWaiterButAreNotCached) {
  FakePageSource inner;
  inner.Manual();
  LocalPageStore source_store({});
  CachingPageSource source(io_, source_store, inner);
  auto first = Start(source, Request(0));
  auto second = Start(source, Request(0));
  inner.Answer(absl::UnavailableError("HTTP 503"));
  EXPECT_EQ(first.get().status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(second.get().status().code(), absl::StatusCode::kUnavailable);
  auto retry = Start(source, Request(0));
  EXPECT_EQ(inner.calls(), 2u);
  inner.Answer(PageOf({"c0", "c1"}));
  EXPECT_THAT(Ids(retry.get()), ElementsAre("c0", "c1"));
}

TEST_F(CachingPageSourceTest, CachedPagesServeLaterRequestsUntilTheTtl) {
  FakePageSource inner;
  inner.Manual();
  LocalPageStore source_store({.max_bytes = 1 << 20, .ttl = absl::Milliseconds(300)});
  CachingPageSource source(io_, source_store, inner);
  auto first = Start(source, Request(0));
  inner.Answer(PageOf({"c0", "c1"}));
  EXPECT_THAT(Ids(first.get()), ElementsAre("c0", "c1"));
  EXPECT_THAT(Ids(Start(source, Request(0)).get()), ElementsAre("c0", "c1"));
  EXPECT_EQ(inner.calls(), 1u);
  EXPECT_EQ(source.hits(), 1);
  absl::SleepFor(absl::Milliseconds(400));
  auto expired = Start(source, Request(0));
  EXPECT_EQ(inner.calls(), 2u);
  inner.Answer(PageOf({"c0", "c1"}));
  EXPECT_THAT(Ids(expired.get()), ElementsAre("c0", "c1"));
}

TEST_F(CachingPageSourceTest, EvictsTheOldestPagesBeyondTheByteCap) {
  FakePageSource inner;
  inner.Manual();
  // Room for about two small pages.
  size_t page_bytes = 0;
  {
    LocalPageStore probe_store({});
    CachingPageSource probe(io_, probe_store, inner);
    auto r = Start(probe, Request(0));
    inner.Answer(PageOf({"c0", "c1"}));
    ASSERT_TRUE(r.get().ok());
    page_bytes = probe_store.bytes();
  }
  LocalPageStore source_store({.max_bytes = 2 * page_bytes + page_bytes / 2});
  CachingPageSource source(io_, source_store, inner);
  for (int64_t skip : {0, 2, 4}) {
    auto r = Start(source, Request(skip));
    inner.Answer(PageOf({"c" + std::to_string(skip), "c" + std::to_string(skip + 1)}));
    ASSERT_TRUE(r.get().ok());
  }
  EXPECT_LE(source_store.bytes(), 2 * page_bytes + page_bytes / 2);
  const size_t calls = inner.calls();
  EXPECT_THAT(Ids(Start(source, Request(4)).get()), ElementsAre("c4", "c5"));  // newest: kept
  EXPECT_EQ(inner.calls(), calls);
  auto oldest = Start(source, Request(0));  // evicted: fetched again
  EXPECT_EQ(inner.calls(), calls + 1);
  inner.Answer(PageOf({"c0", "c1"}));
  EXPECT_THAT(Ids(oldest.get()), ElementsAre("c0", "c1"));
}

TEST_F(CachingPageSourceTest, CallerCredentialsAreNeverShared) {
  FakePageSource inner;
  inner.Manual();
  LocalPageStore source_store({});
  CachingPageSource source(io_, source_store, inner);
  auto alice = Start(source, Request(0, "alice-jwt", true));
  auto bob = Start(source, Request(0, "bob-jwt", true));
  EXPECT_EQ(inner.calls(), 2u);  // each caller's JWT asks for itself
  inner.Answer(PageOf({"c0", "c1"}));
  inner.Answer(absl::UnauthenticatedError("HTTP 401"));
  EXPECT_THAT(Ids(alice.get()), ElementsAre("c0", "c1"));
  EXPECT_EQ(bob.get().status().code(), absl::StatusCode::kUnauthenticated);
  // Alice's cached page serves Alice again, and minted requests share regardless of the JWT.
  EXPECT_THAT(Ids(Start(source, Request(0, "alice-jwt", true)).get()), ElementsAre("c0", "c1"));
  EXPECT_EQ(inner.calls(), 2u);
  EXPECT_NE(PageKey(Request(0, "x", true)), PageKey(Request(0, "y", true)));
  EXPECT_EQ(PageKey(Request(0, "minted-1")), PageKey(Request(0, "minted-2")));
  EXPECT_EQ(PageKey(Request(0, "x", true)).find("x"), std::string::npos);  // hashed, not kept
}

TEST_F(CachingPageSourceTest, CancelledWaiterLeavesAtOnceAndTheLastOneCancelsTheFetch) {
  FakePageSource inner;
  inner.Manual();
  LocalPageStore source_store({});
  CachingPageSource source(io_, source_store, inner);
  auto cancel_a = std::make_shared<Cancellation>();
  auto cancel_b = std::make_shared<Cancellation>();
  auto a = Start(source, Request(0), cancel_a);
  auto b = Start(source, Request(0), cancel_b);
  cancel_a->Cancel();
  EXPECT_EQ(a.get().status().code(), absl::StatusCode::kCancelled);
  EXPECT_FALSE(inner.cancelled(0));  // b still waits for it
  cancel_b->Cancel();
  EXPECT_EQ(b.get().status().code(), absl::StatusCode::kCancelled);
  EXPECT_TRUE(inner.cancelled(0));
  inner.Answer(absl::CancelledError("cancelled"));
  // The answer reaches the cache before the test (and the cache) ends.
  EXPECT_TRUE(inner.WaitAnswered(1));
  EXPECT_EQ(inner.calls(), 1u);
}

}  // namespace
}  // namespace contacts::gateway
