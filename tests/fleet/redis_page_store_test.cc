// RedisPageStore against a real redis-server, two replicas (SharedState + store each) in this
// process: one fetcher per page fleet-wide, waiters woken by pub/sub when the page is published or
// given up, a crashed fetcher's lease taken over when it expires, TTLs on every key, a corrupt or
// oversized page never shared, and no waiting while Redis is away.
#include "server/fleet/redis_page_store.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <future>

#include "absl/strings/str_cat.h"
#include "tests/fleet/fleet_test_support.h"
#include "tests/integration/test_support.h"

namespace contacts::gateway {
namespace {

using ::contacts::testing::RedisServer;
using Claimed = PageStore::Claimed;

constexpr char kKey[] = "st-1/cl-1/acct-1/app/0/50";

Page MakePage(int contacts) {
  Page page;
  for (int i = 0; i < contacts; ++i) {
    page.contacts.Append({.id = absl::StrCat("c", i), .phone_number = "+14155550100"});
  }
  page.skip = 0;
  page.limit = contacts;
  page.has_more = true;
  page.total_results = 1000;
  return page;
}

class PageStoreTest : public ReplicasTest {
 protected:
  RedisPageStore& NewStore(FleetPageOptions options = {}) {
    SharedState& replica = NewReplica();
    return *stores_.emplace_back(std::make_unique<RedisPageStore>(io_.io(), replica, options));
  }

  // A claim whose answer is read later.
  std::future<absl::StatusOr<Claimed>> ClaimLater(
      PageStore& store, absl::Time deadline = absl::InfiniteFuture(),
      std::shared_ptr<Cancellation> cancel = std::make_shared<Cancellation>()) {
    auto promise = std::make_shared<std::promise<absl::StatusOr<Claimed>>>();
    store.Claim(kKey, deadline, std::move(cancel), [promise](absl::StatusOr<Claimed> claimed) {
      promise->set_value(std::move(claimed));
    });
    return promise->get_future();
  }
  static bool Ready(const std::future<absl::StatusOr<Claimed>>& f) {
    return f.wait_for(std::chrono::seconds(0)) == std::future_status::ready;
  }

  std::vector<std::unique_ptr<RedisPageStore>> stores_;
};

TEST_F(PageStoreTest, OneReplicaFetchesTheOthersWaitAndGetThePage) {
  RedisPageStore& first = NewStore();
  RedisPageStore& second = NewStore();
  StartAll();
  absl::StatusOr<Claimed> lease = ClaimLater(first).get();
  ASSERT_TRUE(lease.ok()) << lease.status();
  ASSERT_FALSE(lease->page);
  ASSERT_FALSE(lease->lease.empty());
  auto waiting = ClaimLater(second);
  absl::SleepFor(absl::Milliseconds(100));
  EXPECT_FALSE(Ready(waiting));  // the page is being fetched elsewhere: wait, do not fetch
  const Page page = MakePage(50);
  first.Publish(kKey, lease->lease, page);
  absl::StatusOr<Claimed> got = waiting.get();
  ASSERT_TRUE(got.ok()) << got.status();
  ASSERT_TRUE(got->page);
  EXPECT_EQ(got->page->contacts.wire(0, 50), page.contacts.wire(0, 50));
  EXPECT_EQ(got->page->contacts.id(49), "c49");
  EXPECT_EQ(got->page->total_results, 1000);
  EXPECT_EQ(second.waits(), 1);
  // Later claims find it stored, on either replica.
  absl::StatusOr<Claimed> stored = ClaimLater(first).get();
  ASSERT_TRUE(stored.ok() && stored->page);
  EXPECT_EQ(first.found() + second.found(), 2);
  // Every key has a TTL: the page its --page-cache-ttl (30 s), no lease left behind.
  const std::string digest = RedisPageStore::Digest(kKey);
  const int64_t ttl = std::stoll(redis_->Cli({"PTTL", PageDataKey("test:", digest)}));
  EXPECT_GT(ttl, 25000);
  EXPECT_LE(ttl, 30000);
  EXPECT_EQ(redis_->Cli({"EXISTS", PageLeaseKey("test:", digest)}), "0");
}

TEST_F(PageStoreTest, AGivenUpLeaseGoesToAWaiterAtOnce) {
  RedisPageStore& first = NewStore();
  RedisPageStore& second = NewStore();
  StartAll();
  absl::StatusOr<Claimed> lease = ClaimLater(first).get();
  ASSERT_TRUE(lease.ok() && !lease->lease.empty());
  EXPECT_GT(std::stoll(redis_->Cli({"PTTL", PageLeaseKey("test:", RedisPageStore::Digest(kKey))})),
            9000);  // the lease time, 10 s
  auto waiting = ClaimLater(second);
  absl::SleepFor(absl::Milliseconds(100));
  const absl::Time abandoned = absl::Now();
  first.Abandon(kKey, lease->lease);  // the fetch failed: errors are never stored
  absl::StatusOr<Claimed> next = waiting.get();
  ASSERT_TRUE(next.ok());
  EXPECT_FALSE(next->page);
  EXPECT_FALSE(next->lease.empty());
  EXPECT_NE(next->lease, lease->lease);
  EXPECT_LT(absl::Now() - abandoned, absl::Seconds(5));  // woken, not the lease running out
}

TEST_F(PageStoreTest, AnExpiredLeaseIsTakenOver) {
  RedisPageStore& crashed = NewStore({.lease = absl::Milliseconds(300)});
  RedisPageStore& other = NewStore({.lease = absl::Milliseconds(300)});
  StartAll();
  absl::StatusOr<Claimed> lease = ClaimLater(crashed).get();
  ASSERT_TRUE(lease.ok() && !lease->lease.empty());
  const absl::Time taken = absl::Now();
  // Never published nor given up, as by a fetcher that was killed.
  absl::StatusOr<Claimed> taken_over = ClaimLater(other).get();
  ASSERT_TRUE(taken_over.ok());
  EXPECT_FALSE(taken_over->lease.empty());
  EXPECT_GE(absl::Now() - taken, absl::Milliseconds(250));
  EXPECT_LT(absl::Now() - taken, absl::Seconds(3));
  // The late publisher's page is still stored; its lease is not the current one, so it is kept.
  crashed.Publish(kKey, lease->lease, MakePage(3));
  ASSERT_TRUE(Eventually([&] {
    return redis_->Cli({"EXISTS", PageLeaseKey("test:", RedisPageStore::Digest(kKey))}) == "1";
  }));
}

TEST_F(PageStoreTest, WaitersLeaveOnDeadlineAndCancellation) {
  RedisPageStore& first = NewStore();
  RedisPageStore& second = NewStore();
  StartAll();
  ASSERT_TRUE(ClaimLater(first).get().ok());
  auto deadline = ClaimLater(second, absl::Now() + absl::Milliseconds(200));
  auto cancel = std::make_shared<Cancellation>();
  auto cancelled = ClaimLater(second, absl::InfiniteFuture(), cancel);
  EXPECT_EQ(deadline.get().status().code(), absl::StatusCode::kDeadlineExceeded);
  cancel->Cancel();
  EXPECT_EQ(cancelled.get().status().code(), absl::StatusCode::kCancelled);
}

TEST_F(PageStoreTest, ACorruptStoredPageIsNeverServed) {
  RedisPageStore& store = NewStore();
  StartAll();
  const Page page = MakePage(2);
  std::string corrupt = EncodePageRecord(page);
  corrupt[corrupt.size() - page.contacts.bytes()] = 0x0b;  // the first entry's tag
  ASSERT_TRUE(Call(replicas_[0]->redis(),
                   {"SET", PageDataKey("test:", RedisPageStore::Digest(kKey)), corrupt})
                  .ok());
  absl::StatusOr<Claimed> claimed = ClaimLater(store).get();
  ASSERT_TRUE(claimed.ok());
  EXPECT_FALSE(claimed->page);
  EXPECT_TRUE(claimed->lease.empty());  // fetch it without sharing
  EXPECT_EQ(store.rejected(), 1);
}

TEST_F(PageStoreTest, APageAboveTheCapIsNotSharedAndTheWaiterFetches) {
  RedisPageStore& first = NewStore({.max_page_bytes = 1000});
  RedisPageStore& second = NewStore({.max_page_bytes = 1000});
  StartAll();
  absl::StatusOr<Claimed> lease = ClaimLater(first).get();
  ASSERT_TRUE(lease.ok() && !lease->lease.empty());
  auto waiting = ClaimLater(second);
  absl::SleepFor(absl::Milliseconds(50));
  first.Publish(kKey, lease->lease, MakePage(100));  // ~2.4 KB
  absl::StatusOr<Claimed> next = waiting.get();
  ASSERT_TRUE(next.ok());
  EXPECT_FALSE(next->page);
  EXPECT_FALSE(next->lease.empty());
  EXPECT_EQ(redis_->Cli({"EXISTS", PageDataKey("test:", RedisPageStore::Digest(kKey))}), "0");
}

TEST_F(PageStoreTest, WithoutRedisClaimsAndWaitersFetchWithoutSharing) {
  auto own = RedisServer::Start();
  ASSERT_NE(own, nullptr);
  redis_ = own.get();
  RedisPageStore& first = NewStore();
  RedisPageStore& second = NewStore();
  StartAll();
  ASSERT_TRUE(ClaimLater(first).get().ok());
  auto waiting = ClaimLater(second);
  absl::SleepFor(absl::Milliseconds(50));
  own->Kill();
  absl::StatusOr<Claimed> let_go = waiting.get();  // not the 10 s lease
  ASSERT_TRUE(let_go.ok());
  EXPECT_TRUE(let_go->lease.empty());
  ASSERT_TRUE(Eventually([&] { return replicas_[1]->mode() == SharedState::Mode::kLocal; }));
  absl::StatusOr<Claimed> alone = ClaimLater(second).get();
  ASSERT_TRUE(alone.ok());
  EXPECT_FALSE(alone->page);
  EXPECT_TRUE(alone->lease.empty());
}

}  // namespace
}  // namespace contacts::gateway
