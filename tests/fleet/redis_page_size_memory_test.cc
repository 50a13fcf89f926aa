// RedisPageSizeMemory against a real redis-server, two replicas in this process: what one learns
// the other recalls (and then knows itself), on the upstream's and account's key with a TTL;
// without Redis each answers from its own memory.
#include "server/fleet/redis_page_size_memory.h"

#include <gtest/gtest.h>

#include <future>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "server/stream/local_page_size_memory.h"
#include "tests/fleet/fleet_test_support.h"
#include "tests/integration/test_support.h"

namespace contacts::gateway {
namespace {

using ::contacts::testing::RedisServer;

constexpr char kUpstream[] = "https://kore.example";

class PageSizeMemoryTest : public ReplicasTest {
 protected:
  struct Replica {
    LocalPageSizeMemory local;
    std::unique_ptr<RedisPageSizeMemory> fleet;
  };
  // A started replica sharing through `url` (the suite's Redis unless given).
  Replica& NewMemory(std::string url = "") {
    SharedState& shared = NewReplica(absl::Seconds(1), std::move(url));
    Replica& memory = *memories_.emplace_back(std::make_unique<Replica>());
    memory.fleet = std::make_unique<RedisPageSizeMemory>(shared, memory.local, kUpstream);
    shared.Start();
    return memory;
  }
  static std::optional<int32_t> Recall(PageSizeMemory& memory, const std::string& account) {
    std::promise<std::optional<int32_t>> answer;
    memory.Recall(account, [&answer](std::optional<int32_t> size) { answer.set_value(size); });
    return answer.get_future().get();
  }

  std::vector<std::unique_ptr<Replica>> memories_;
};

TEST_F(PageSizeMemoryTest, WhatOneReplicaLearnsAnotherRecalls) {
  Replica& first = NewMemory();
  Replica& second = NewMemory();
  ASSERT_TRUE(Eventually([&] { return replicas_[0]->mode() == SharedState::Mode::kShared; }));
  ASSERT_TRUE(Eventually([&] { return replicas_[1]->mode() == SharedState::Mode::kShared; }));
  EXPECT_EQ(Recall(*second.fleet, "acct-1"), std::nullopt);  // nobody knows yet

  EXPECT_TRUE(first.fleet->Learn("acct-1", 100));
  EXPECT_FALSE(first.fleet->Learn("acct-1", 100));  // no change: not written again
  const std::string key = first.fleet->Key("acct-1");
  EXPECT_EQ(key, "test:page-size:https://kore.example:{acct-1}");
  ASSERT_TRUE(Eventually([&] { return redis_->Cli({"GET", key}) == "100"; }));
  const int64_t ttl = std::stoll(redis_->Cli({"PTTL", key}));
  EXPECT_GT(ttl, absl::ToInt64Milliseconds(absl::Hours(23)));
  EXPECT_LE(ttl, absl::ToInt64Milliseconds(RedisPageSizeMemory::kDefaultTtl));

  EXPECT_EQ(second.local.Peek("acct-1"), std::nullopt);
  EXPECT_EQ(Recall(*second.fleet, "acct-1"), 100);
  EXPECT_EQ(second.local.Peek("acct-1"), 100);  // kept: the next stream asks no Redis
  EXPECT_EQ(Recall(*second.fleet, "acct-2"), std::nullopt);

  // A smaller cap found later replaces it for the fleet.
  EXPECT_TRUE(second.fleet->Learn("acct-1", 50));
  ASSERT_TRUE(Eventually([&] { return redis_->Cli({"GET", key}) == "50"; }));
}

TEST_F(PageSizeMemoryTest, AnUnreadableStoredSizeIsNotKnown) {
  Replica& replica = NewMemory();
  ASSERT_TRUE(Eventually([&] { return replicas_[0]->mode() == SharedState::Mode::kShared; }));
  redis_->Cli({"SET", replica.fleet->Key("acct-1"), "many"});
  redis_->Cli({"SET", replica.fleet->Key("acct-2"), "0"});
  EXPECT_EQ(Recall(*replica.fleet, "acct-1"), std::nullopt);
  EXPECT_EQ(Recall(*replica.fleet, "acct-2"), std::nullopt);
  EXPECT_EQ(replica.local.size(), 0u);
}

TEST_F(PageSizeMemoryTest, WithoutRedisEachReplicaAnswersFromItsOwnMemory) {
  // Nothing listens there any more: the replica stays on its own.
  std::string url;
  {
    std::unique_ptr<RedisServer> gone = RedisServer::Start();
    ASSERT_NE(gone, nullptr);
    url = gone->url();
  }
  Replica& replica = NewMemory(url);
  ASSERT_EQ(replicas_[0]->mode(), SharedState::Mode::kLocal);
  EXPECT_EQ(Recall(*replica.fleet, "acct-1"), std::nullopt);
  EXPECT_TRUE(replica.fleet->Learn("acct-1", 1000));
  EXPECT_EQ(Recall(*replica.fleet, "acct-1"), 1000);
}

}  // namespace
}  // namespace contacts::gateway
