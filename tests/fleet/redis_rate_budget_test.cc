// The shared budget against a real redis-server: the grant, pause and quota scripts' decisions
// on Redis's clock, and RedisRateBudget across replicas (each a SharedState and a budget in this
// process, as separate pods would be): the fleet never goes faster than the rate, one stream on
// one replica gets its turn as often as each of eight on another, refusals reserve nothing, a
// cancelled request's slot goes to the next, a 429 on one replica pauses the others, and without
// Redis each replica keeps to its share until Redis is back. Scaled rates: each case ~1-3 s.
#include "server/fleet/redis_rate_budget.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <deque>

#include "absl/strings/str_cat.h"
#include "server/core/metrics.h"
#include "server/fleet/scripts.h"
#include "tests/fleet/fleet_test_support.h"
#include "tests/integration/test_support.h"

namespace contacts::gateway {
namespace {

using ::contacts::testing::RedisServer;

constexpr char kAccount[] = "acct-1";

int64_t Micros(const RedisReply& reply, size_t i) { return reply.elements.at(i).integer; }

class FleetBudgetTest : public ReplicasTest {
 protected:
  RedisRateBudget& NewBudget(SharedState& shared, int64_t per_minute, int32_t burst = 1) {
    return *budgets_.emplace_back(std::make_unique<RedisRateBudget>(
        io_.io(), shared, FleetBudgetOptions{.per_minute = per_minute, .burst = burst}));
  }
  // Acquire, waited for.
  RateBudget::Decision AcquireNow(RateBudget& budget, uint64_t owner,
                                  absl::Time deadline = absl::InfiniteFuture(),
                                  std::shared_ptr<Cancellation> cancel = nullptr) {
    std::promise<RateBudget::Decision> promise;
    auto future = promise.get_future();
    budget.Acquire({.account = kAccount, .owner = owner, .deadline = deadline},
                   cancel ? cancel : std::make_shared<Cancellation>(),
                   [&promise](RateBudget::Decision d) { promise.set_value(std::move(d)); });
    return future.get();
  }

  // Streams that ask again as soon as they are granted, until `total` grants in all; returns
  // each grant's (stream, time), in grant order.
  struct Grant {
    int stream;
    absl::Time at;
  };
  // `callers`, if given, names each stream's caller.
  std::vector<Grant> Race(const std::vector<std::pair<RateBudget*, uint64_t>>& streams, int total,
                          const std::vector<std::string>& callers = {}) {
    absl::Mutex mu;
    std::vector<Grant> grants;
    int outstanding = static_cast<int>(streams.size());
    std::function<void(int)> ask = [&](int stream) {
      streams[stream].first->Acquire({.account = kAccount,
                                      .caller = callers.empty() ? "" : callers[stream],
                                      .owner = streams[stream].second},
                                     std::make_shared<Cancellation>(),
                                     [&, stream](RateBudget::Decision decision) {
                                       EXPECT_TRUE(decision.status.ok()) << decision.status;
                                       absl::MutexLock lock(&mu);
                                       if (static_cast<int>(grants.size()) < total) {
                                         grants.push_back({stream, absl::Now()});
                                         ask(stream);
                                       } else {
                                         --outstanding;
                                       }
                                     });
    };
    for (size_t i = 0; i < streams.size(); ++i) ask(static_cast<int>(i));
    Eventually(
        [&] {
          absl::MutexLock lock(&mu);
          return outstanding == 0;
        },
        absl::Seconds(60));
    absl::MutexLock lock(&mu);
    return grants;
  }

  std::vector<std::unique_ptr<RedisRateBudget>> budgets_;
};

TEST_F(FleetBudgetTest, GrantScriptReservesSpacedSlotsAndRefusesPastTheLongestWait) {
  SharedState& shared = NewReplica();
  StartAll();
  const RedisScript grant(kGrantScript);
  const std::vector<std::string> key = {BudgetKey("test:", kAccount)};
  auto ask = [&](const std::string& max_wait) {
    absl::StatusOr<RedisReply> reply =
        CallEval(shared.redis(), grant, key, {"100000", "0", max_wait, "0"});  // 100 ms apart
    EXPECT_TRUE(reply.ok()) << reply.status();
    return *reply;
  };
  const absl::Time start = absl::Now();
  RedisReply first = ask("-1");
  RedisReply second = ask("-1");
  RedisReply refused = ask("50000");
  RedisReply third = ask("-1");
  const int64_t elapsed = absl::ToInt64Microseconds(absl::Now() - start);
  EXPECT_EQ(Micros(first, 0), 1);
  EXPECT_EQ(Micros(first, 1), 0);
  EXPECT_EQ(Micros(first, 2), 100000);  // the schedule is free again in one interval
  EXPECT_EQ(Micros(second, 0), 1);
  EXPECT_LE(Micros(second, 1), 100000);
  EXPECT_GE(Micros(second, 1), 100000 - elapsed);
  ASSERT_EQ(refused.elements.size(), 2u);  // nothing reserved: the next ask gets that same slot
  EXPECT_EQ(Micros(refused, 0), 0);
  EXPECT_GE(Micros(refused, 1), 200000 - elapsed);
  EXPECT_EQ(Micros(third, 0), 1);
  EXPECT_LE(Micros(third, 1), 200000);
  EXPECT_GE(Micros(third, 1), 200000 - elapsed);
  // Hash-tagged by account, and gone when its schedule is: a TTL up to the horizon and a second.
  const int64_t ttl = std::stoll(redis_->Cli({"PTTL", "test:budget:{acct-1}"}));
  EXPECT_GT(ttl, 1000);
  EXPECT_LE(ttl, 1300);
}

TEST_F(FleetBudgetTest, GrantScriptAllowsABurstThenPaces) {
  SharedState& shared = NewReplica();
  StartAll();
  const RedisScript grant(kGrantScript);
  const std::vector<std::string> key = {BudgetKey("test:", kAccount)};
  std::vector<int64_t> waits;
  for (int i = 0; i < 4; ++i) {  // 1 s apart, burst 3: three at once, then one a second later
    waits.push_back(
        Micros(*CallEval(shared.redis(), grant, key, {"1000000", "2000000", "-1", "0"}), 1));
  }
  EXPECT_THAT(waits, ::testing::ElementsAre(0, 0, 0, ::testing::Gt(900000)));
}

TEST_F(FleetBudgetTest, PauseAndQuotaScriptsHoldGrantsBack) {
  SharedState& shared = NewReplica();
  StartAll();
  const RedisScript grant(kGrantScript), pause(kPauseScript), quota(kQuotaScript);
  const std::vector<std::string> key = {BudgetKey("test:", kAccount)};
  // A 429: no slot in the next 2 s.
  absl::StatusOr<RedisReply> paused =
      CallEval(shared.redis(), pause, key, {"2000000", EventsChannel("test:"), kAccount});
  ASSERT_TRUE(paused.ok());
  EXPECT_EQ(paused->integer, 2000000);
  EXPECT_GT(Micros(*CallEval(shared.redis(), grant, key, {"1000", "0", "-1", "0"}), 1), 1900000);

  // A quota of 5 until a reset in 10 s, with the 2 slots reserved (1 s apart) already counted
  // against it: 3 more, then the next at the reset.
  redis_->Cli({"DEL", key[0]});
  for (int i = 0; i < 2; ++i) {
    ASSERT_TRUE(CallEval(shared.redis(), grant, key, {"1000000", "0", "-1", "0"}).ok());
  }
  absl::StatusOr<RedisReply> kept =
      CallEval(shared.redis(), quota, key, {"5", "10000000", "1000000"});
  ASSERT_TRUE(kept.ok());
  EXPECT_EQ(kept->integer, 3);
  std::vector<int64_t> waits;
  for (int i = 0; i < 4; ++i) {
    waits.push_back(Micros(*CallEval(shared.redis(), grant, key, {"1000", "0", "-1", "0"}), 1));
  }
  EXPECT_LT(waits[2], 2100000);
  EXPECT_GT(waits[3], 9000000);  // the quota is spent: nothing before the reset
}

TEST_F(FleetBudgetTest, ReplicasTogetherNeverGoFasterThanTheRate) {
  RedisRateBudget& a = NewBudget(NewReplica(), 3000);  // 20 ms apart
  RedisRateBudget& b = NewBudget(NewReplica(), 3000);
  StartAll();
  std::vector<Grant> grants = Race({{&a, 1}, {&a, 2}, {&a, 3}, {&b, 1}, {&b, 2}, {&b, 3}}, 60);
  ASSERT_EQ(grants.size(), 60u);
  // Timers may fire late on a loaded machine, never early: the whole run takes at least 59 slots
  // (one of slack), whatever the load.
  EXPECT_GE(grants.back().at - grants.front().at, absl::Milliseconds(20) * 58);
  // Every slot reserved in Redis went to a request (60, and the last ask of each stream), or was
  // left over by a stream whose last request another stream's slot served while its own was still
  // being reserved (rare; at most one each).
  EXPECT_TRUE(Eventually([&] {
    return a.shared_grants() + b.shared_grants() == 60 + 6 + a.unused_slots() + b.unused_slots();
  }));
  EXPECT_LE(a.unused_slots() + b.unused_slots(), 6);
  EXPECT_EQ(a.local_grants() + b.local_grants(), 0);
}

TEST_F(FleetBudgetTest, OneStreamOnOneReplicaGetsItsTurnAgainstEightOnAnother) {
  RedisRateBudget& one = NewBudget(NewReplica(), 3000);
  RedisRateBudget& eight = NewBudget(NewReplica(), 3000);
  StartAll();
  std::vector<std::pair<RateBudget*, uint64_t>> streams = {{&one, 1}};
  for (uint64_t owner = 1; owner <= 8; ++owner) streams.push_back({&eight, owner});
  std::vector<Grant> grants = Race(streams, 90);
  const auto alone =
      std::count_if(grants.begin(), grants.end(), [](const Grant& g) { return g.stream == 0; });
  // Each stream holds one reserved slot at a time, so slots go round all nine streams: 10 each.
  EXPECT_GE(alone, 8) << "of 90";
  EXPECT_LE(alone, 12) << "of 90";
}

TEST_F(FleetBudgetTest, OnOneReplicaCallersTakeTurnsAsInProcess) {
  RedisRateBudget& budget = NewBudget(NewReplica(), 3000);
  StartAll();
  // One caller with four streams, another with one: the slots the five streams reserve go to the
  // callers in turn, so the lone caller gets every other one.
  std::vector<Grant> grants =
      Race({{&budget, 1}, {&budget, 2}, {&budget, 3}, {&budget, 4}, {&budget, 5}}, 60,
           {"many", "many", "many", "many", "one"});
  ASSERT_EQ(grants.size(), 60u);
  const auto lone =
      std::count_if(grants.begin(), grants.end(), [](const Grant& g) { return g.stream == 4; });
  EXPECT_GE(lone, 25) << "of 60 (a fifth, 12, if streams took turns regardless of callers)";
  EXPECT_LE(lone, 31) << "of 60";
}

TEST_F(FleetBudgetTest, ARefusalReservesNothing) {
  RedisRateBudget& budget = NewBudget(NewReplica(), 120);  // 500 ms apart
  StartAll();
  ASSERT_TRUE(AcquireNow(budget, 1).status.ok());
  const absl::Time asked = absl::Now();
  RateBudget::Decision refused = AcquireNow(budget, 2, absl::Now() + absl::Milliseconds(20));
  EXPECT_EQ(refused.status.code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_GT(refused.retry_after, absl::Milliseconds(300));
  EXPECT_LE(refused.retry_after, absl::Milliseconds(500));
  EXPECT_THAT(refused.status.message(),
              ::testing::HasSubstr("no request free before the call's deadline"));
  EXPECT_EQ(budget.refused(), 1);
  // The refused request took no slot: the next one goes in the first free slot, not the second.
  ASSERT_TRUE(AcquireNow(budget, 2).status.ok());
  EXPECT_LT(absl::Now() - asked, absl::Milliseconds(900));
}

TEST_F(FleetBudgetTest, ACancelledRequestsSlotGoesToTheNextStream) {
  RedisRateBudget& budget = NewBudget(NewReplica(), 60);  // 1 s apart
  StartAll();
  ASSERT_TRUE(AcquireNow(budget, 1).status.ok());
  const absl::Time first = absl::Now();
  auto cancel = std::make_shared<Cancellation>();
  std::promise<RateBudget::Decision> cancelled;
  budget.Acquire({.account = kAccount, .owner = 2}, cancel,
                 [&](RateBudget::Decision d) { cancelled.set_value(std::move(d)); });
  absl::SleepFor(absl::Milliseconds(100));  // let it reserve its slot
  cancel->Cancel();
  EXPECT_EQ(cancelled.get_future().get().status.code(), absl::StatusCode::kCancelled);
  EXPECT_LT(absl::Now() - first, absl::Milliseconds(800));
  // Stream 3 comes after, but takes the slot stream 2 left, 1 s after the first grant (not 2 s).
  ASSERT_TRUE(AcquireNow(budget, 3).status.ok());
  EXPECT_LT(absl::Now() - first, absl::Milliseconds(1700));
  EXPECT_EQ(budget.unused_slots(), 0);
}

TEST_F(FleetBudgetTest, A429OnOneReplicaPausesTheAccountOnEveryReplica) {
  RedisRateBudget& seen = NewBudget(NewReplica(), 60);  // 1 s apart
  RedisRateBudget& other = NewBudget(NewReplica(), 60);
  StartAll();
  ASSERT_TRUE(AcquireNow(other, 1).status.ok());
  std::promise<absl::Time> granted;
  other.Acquire({.account = kAccount, .owner = 1}, std::make_shared<Cancellation>(),
                [&](RateBudget::Decision d) {
                  EXPECT_TRUE(d.status.ok());
                  granted.set_value(absl::Now());
                });
  absl::SleepFor(absl::Milliseconds(100));  // `other` holds a slot 1 s after its first grant
  const absl::Time throttled = absl::Now();
  seen.Answered(kAccount, {.throttled = true, .retry_after = absl::Seconds(2)});
  // The slot reserved before the pause is given back; the request goes after the pause.
  EXPECT_GE(granted.get_future().get() - throttled, absl::Milliseconds(1900));
}

TEST_F(FleetBudgetTest, WithoutRedisEachReplicaKeepsToItsShareAndSharesAgainWhenItIsBack) {
  auto own = RedisServer::Start();
  ASSERT_NE(own, nullptr);
  redis_ = own.get();
  SharedState& a_state = NewReplica(absl::Milliseconds(200));
  NewReplica(absl::Milliseconds(200));
  RedisRateBudget& a = NewBudget(a_state, 3000);  // 20 ms apart; 40 ms each for two replicas
  StartAll();
  ASSERT_TRUE(Eventually([&] { return a_state.fleet_size() == 2; }));
  const int64_t up_before = Metrics().shared_state_up.With({}).value();

  own->Kill();
  ASSERT_TRUE(Eventually([&] { return a_state.mode() == SharedState::Mode::kLocal; }));
  EXPECT_TRUE(
      Eventually([&] { return Metrics().shared_state_up.With({}).value() == up_before - 2; }));
  const absl::Time start = absl::Now();
  for (int i = 0; i < 20; ++i) ASSERT_TRUE(AcquireNow(a, 1).status.ok());
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(40) * 19);  // its share, not the whole rate
  EXPECT_EQ(a.local_grants(), 20);
  EXPECT_EQ(a_state.fleet_size(), 2);  // the last known size

  ASSERT_TRUE(own->Restart());
  for (auto& replica : replicas_) {
    EXPECT_TRUE(Eventually([&] { return replica->mode() == SharedState::Mode::kShared; },
                           absl::Seconds(5)));
  }
  EXPECT_EQ(Metrics().shared_state_up.With({}).value(), up_before);
  ASSERT_TRUE(AcquireNow(a, 1).status.ok());
  EXPECT_EQ(a.shared_grants(), 1);
}

TEST_F(FleetBudgetTest, HeartbeatsCountTheFleetAndALeavingReplicaAtOnce) {
  SharedState& a = NewReplica(absl::Milliseconds(200));
  NewReplica(absl::Milliseconds(200));
  SharedState& c = NewReplica(absl::Milliseconds(200));
  StartAll();
  EXPECT_TRUE(Eventually([&] { return a.fleet_size() == 3; }));
  const int64_t ttl = std::stoll(redis_->Cli({"PTTL", "test:replicas"}));
  EXPECT_GT(ttl, 0);
  EXPECT_LE(ttl, 1200);
  EXPECT_EQ(redis_->Cli({"ZCARD", "test:replicas"}), "3");
  c.Stop();  // leaves at once, rather than when its heartbeat expires
  ASSERT_TRUE(Eventually([&] { return !c.redis().up(); }));
  EXPECT_EQ(redis_->Cli({"ZSCORE", "test:replicas", c.replica_id()}), "");
  EXPECT_TRUE(Eventually([&] { return a.fleet_size() == 2; }));
}

TEST_F(FleetBudgetTest, AfterAnOutageAReplicaKeepsToItsShareUntilTheOthersAreBack) {
  auto own = RedisServer::Start();
  ASSERT_NE(own, nullptr);
  redis_ = own.get();
  SharedState& stays = NewReplica(absl::Milliseconds(200));
  SharedState& leaves = NewReplica(absl::Milliseconds(200));
  static absl::Mutex mu;  // outlive the replica's last callback
  static std::vector<std::pair<SharedState::Mode, absl::Time>> modes;
  stays.OnMode([&](SharedState::Mode mode) {
    absl::MutexLock lock(&mu);
    modes.emplace_back(mode, absl::Now());
  });
  StartAll();
  ASSERT_TRUE(Eventually([&] { return stays.fleet_size() == 2; }));
  own->Kill();
  ASSERT_TRUE(Eventually([&] { return stays.mode() == SharedState::Mode::kLocal; }));
  leaves.Stop();  // gone while Redis was away: it never comes back
  ASSERT_TRUE(own->Restart());
  // The listener hears of a mode after mode() has it: wait for what it recorded.
  auto recorded_shared_again = [&] {
    absl::MutexLock lock(&mu);
    return modes.size() >= 4 && modes.back().first == SharedState::Mode::kShared;
  };
  ASSERT_TRUE(Eventually(recorded_shared_again));
  absl::MutexLock lock(&mu);
  ASSERT_GE(modes.size(), 4u);  // rejoining, shared, local, rejoining, shared
  const auto& rejoined = modes[modes.size() - 2];
  const auto& shared = modes.back();
  EXPECT_EQ(rejoined.first, SharedState::Mode::kRejoining);
  // One replica of two heartbeats: it waits for the other as long as that one could take to be
  // back (a 200 ms backoff, a 2 s connect timeout, 3 heartbeats of 200 ms).
  EXPECT_GE(shared.second - rejoined.second, absl::Milliseconds(2700));
  EXPECT_EQ(stays.fleet_size(), 1);
}

}  // namespace
}  // namespace contacts::gateway
