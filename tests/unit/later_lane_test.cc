// LaterLane: when it counts as busy, in which order it runs what waits, and how many at once.
#include "server/service/later_lane.h"

#include <gtest/gtest.h>

#include <atomic>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"

namespace contacts::gateway {
namespace {

constexpr int64_t kMs = 1000000;
std::atomic<int64_t> fake_now{1000 * kMs};
int64_t FakeNow() { return fake_now.load(); }

class LaterLaneTest : public ::testing::Test {
 protected:
  void SetUp() override { fake_now = 1000 * kMs; }

  // Defers `name` for `stream`; running it appends the name to ran_.
  void DeferNamed(LaterLane& lane, uint64_t stream, std::string name) {
    lane.Defer(stream, [this, name] { ran_.push_back(name); });
  }

  boost::asio::io_context io_;
  std::vector<std::string> ran_;
};

TEST_F(LaterLaneTest, BusyWhileMoreStreamsThanTheThresholdCompleteWritesEachMillisecond) {
  LaterLane lane(io_, {.busy_above = 2, .parallel = 1}, FakeNow);
  int64_t a = 0, b = 0, c = 0;
  EXPECT_FALSE(lane.Busy());
  lane.Completed(a);
  lane.Completed(b);
  lane.Completed(a);  // one stream counts once per millisecond
  lane.Completed(b);
  EXPECT_FALSE(lane.Busy());
  lane.Completed(c);
  EXPECT_TRUE(lane.Busy());
  fake_now += kMs;  // the millisecond before still counts
  EXPECT_TRUE(lane.Busy());
  lane.Completed(a);
  EXPECT_TRUE(lane.Busy());
  fake_now += kMs;  // only a's write in the millisecond before
  EXPECT_FALSE(lane.Busy());
  lane.Completed(a);
  lane.Completed(b);
  lane.Completed(c);
  EXPECT_TRUE(lane.Busy());
  fake_now += 2 * kMs;  // nothing completed for two milliseconds
  EXPECT_FALSE(lane.Busy());
}

TEST_F(LaterLaneTest, RunsTheNewestStreamsWorkFirstAndEachStreamsInOrder) {
  LaterLane lane(io_, {.parallel = 1}, FakeNow);
  DeferNamed(lane, 1, "1a");
  DeferNamed(lane, 3, "3a");
  DeferNamed(lane, 1, "1b");
  DeferNamed(lane, 2, "2a");
  DeferNamed(lane, 3, "3b");
  EXPECT_EQ(lane.waiting(), 5u);
  EXPECT_TRUE(ran_.empty());  // nothing runs inside Defer
  io_.run();
  EXPECT_EQ(ran_, (std::vector<std::string>{"3a", "3b", "2a", "1a", "1b"}));
  EXPECT_EQ(lane.waiting(), 0u);
}

TEST_F(LaterLaneTest, WorkWaitingLongerThanTheBoundGetsEverySecondTurnOldestFirst) {
  LaterLane lane(io_, {.parallel = 1, .age_bound = absl::Milliseconds(100)}, FakeNow);
  DeferNamed(lane, 1, "old1");
  DeferNamed(lane, 2, "old2");
  DeferNamed(lane, 1, "old3");
  fake_now += 100 * kMs;
  for (const char* name : {"new1", "new2", "new3", "new4"}) DeferNamed(lane, 9, name);
  io_.run();
  EXPECT_EQ(ran_,
            (std::vector<std::string>{"new1", "old1", "new2", "old2", "new3", "old3", "new4"}));
}

TEST_F(LaterLaneTest, WorkDeferredWhileTheLaneRunsTakesItsTurn) {
  LaterLane lane(io_, {.parallel = 1}, FakeNow);
  lane.Defer(1, [&] {
    ran_.push_back("1a");
    DeferNamed(lane, 1, "1b");  // a stream's next reaction, deferred by its previous one
    DeferNamed(lane, 2, "2a");
  });
  io_.run();
  EXPECT_EQ(ran_, (std::vector<std::string>{"1a", "2a", "1b"}));
}

TEST_F(LaterLaneTest, RunsAtMostParallelPiecesAtOnceAndEveryPieceOnce) {
  constexpr int kPieces = 200;
  LaterLane lane(io_, {.parallel = 2});
  auto guard = boost::asio::make_work_guard(io_);
  std::vector<std::thread> threads;
  for (int i = 0; i < 4; ++i) threads.emplace_back([this] { io_.run(); });
  std::atomic<int> running{0}, most{0}, done{0};
  std::vector<std::atomic<int>> runs(kPieces);
  absl::Notification all_done;
  for (int i = 0; i < kPieces; ++i) {
    lane.Defer(i % 7, [&, i] {
      const int now = running.fetch_add(1) + 1;
      int seen = most.load();
      while (now > seen && !most.compare_exchange_weak(seen, now)) {
      }
      absl::SleepFor(absl::Microseconds(200));
      running.fetch_sub(1);
      runs[i].fetch_add(1);
      if (done.fetch_add(1) + 1 == kPieces) all_done.Notify();
    });
  }
  ASSERT_TRUE(all_done.WaitForNotificationWithTimeout(absl::Seconds(30)));
  guard.reset();
  for (std::thread& thread : threads) thread.join();
  EXPECT_LE(most.load(), 2);
  for (int i = 0; i < kPieces; ++i) EXPECT_EQ(runs[i].load(), 1) << "piece " << i;
  EXPECT_EQ(lane.waiting(), 0u);
}

}  // namespace
}  // namespace contacts::gateway
