// What the fleet tests share: I/O threads like the gateway's, and waiting for callbacks.
#ifndef CONTACTS_GATEWAY_TESTS_FLEET_FLEET_TEST_SUPPORT_H_
#define CONTACTS_GATEWAY_TESTS_FLEET_FLEET_TEST_SUPPORT_H_

#include <gtest/gtest.h>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <functional>
#include <future>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "server/fleet/redis_connection.h"
#include "server/fleet/shared_state.h"
#include "tests/integration/test_support.h"

namespace contacts::gateway {

// An io_context run by two threads until Join().
class IoThreads {
 public:
  IoThreads() {
    for (int i = 0; i < 2; ++i) threads_.emplace_back([this] { io_.run(); });
  }
  ~IoThreads() { Join(); }
  boost::asio::io_context& io() { return io_; }
  void Join() {
    work_.reset();
    io_.stop();
    for (std::thread& thread : threads_) thread.join();
    threads_.clear();
  }

 private:
  boost::asio::io_context io_;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work_{
      io_.get_executor()};
  std::vector<std::thread> threads_;
};

// Polls `condition` every 10 ms until it holds or `timeout` passed; returns whether it held.
inline bool Eventually(const std::function<bool()>& condition,
                       absl::Duration timeout = absl::Seconds(10)) {
  const absl::Time give_up = absl::Now() + timeout;
  while (!condition()) {
    if (absl::Now() > give_up) return false;
    absl::SleepFor(absl::Milliseconds(10));
  }
  return true;
}

// One command, waited for.
inline absl::StatusOr<RedisReply> Call(RedisConnection& redis, std::vector<std::string> args) {
  std::promise<absl::StatusOr<RedisReply>> promise;
  auto future = promise.get_future();
  redis.Command(std::move(args), [&promise](absl::StatusOr<RedisReply> reply) {
    promise.set_value(std::move(reply));
  });
  return future.get();
}

inline absl::StatusOr<RedisReply> CallEval(RedisConnection& redis, const RedisScript& script,
                                           std::vector<std::string> keys,
                                           std::vector<std::string> args) {
  std::promise<absl::StatusOr<RedisReply>> promise;
  auto future = promise.get_future();
  redis.Eval(script, std::move(keys), std::move(args),
             [&promise](absl::StatusOr<RedisReply> reply) { promise.set_value(std::move(reply)); });
  return future.get();
}

// The states a connection reported, in order.
class StateLog {
 public:
  RedisConnection::StateCallback Callback() {
    return [this](bool up, const absl::Status& why) {
      absl::MutexLock lock(&mu_);
      states_.emplace_back(up, std::string(why.message()));
    };
  }
  std::vector<std::pair<bool, std::string>> states() const {
    absl::MutexLock lock(&mu_);
    return states_;
  }
  // Whether the last state told was `up`.
  bool Last(bool up) const {
    absl::MutexLock lock(&mu_);
    return !states_.empty() && states_.back().first == up;
  }

 private:
  mutable absl::Mutex mu_;
  std::vector<std::pair<bool, std::string>> states_;
};

// Replicas of a fleet in one process, over one redis-server per suite (emptied before each
// test): NewReplica makes a SharedState (prefix "test:", reconnecting within 200 ms); every
// replica is stopped and the I/O threads joined after the test, before a derived fixture's
// members (budgets, stores) go.
class ReplicasTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { shared_redis_ = ::contacts::testing::RedisServer::Start(); }
  static void TearDownTestSuite() { shared_redis_.reset(); }
  void SetUp() override {
    ASSERT_NE(shared_redis_, nullptr);
    shared_redis_->Cli({"FLUSHALL"});
    redis_ = shared_redis_.get();
  }
  void TearDown() override {
    for (auto& replica : replicas_) replica->Stop();
    for (auto& replica : replicas_) Eventually([&] { return !replica->redis().up(); });
    io_.Join();
  }

  // A replica sharing through `url` (redis_ when empty), not yet started.
  SharedState& NewReplica(absl::Duration heartbeat = absl::Seconds(1), std::string url = "") {
    SharedStateOptions options;
    options.redis.url = url.empty() ? redis_->url() : std::move(url);
    options.redis.reconnect_max = absl::Milliseconds(200);
    options.prefix = "test:";
    options.heartbeat_interval = heartbeat;
    absl::StatusOr<std::unique_ptr<SharedState>> shared = SharedState::Create(io_.io(), options);
    EXPECT_TRUE(shared.ok()) << shared.status();
    return *replicas_.emplace_back(*std::move(shared));
  }
  // Starts every replica made so far and waits until they share.
  void StartAll() {
    for (auto& replica : replicas_) replica->Start();
    for (auto& replica : replicas_) {
      ASSERT_TRUE(Eventually([&] { return replica->mode() == SharedState::Mode::kShared; }));
    }
  }

  static inline std::unique_ptr<::contacts::testing::RedisServer> shared_redis_;
  ::contacts::testing::RedisServer* redis_ = nullptr;  // the suite's, or a test's own
  IoThreads io_;
  std::vector<std::unique_ptr<SharedState>> replicas_;
};

}  // namespace contacts::gateway

#endif  // CONTACTS_GATEWAY_TESTS_FLEET_FLEET_TEST_SUPPORT_H_
