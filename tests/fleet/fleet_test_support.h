// What the fleet tests share: I/O threads like the gateway's, and waiting for callbacks.
#ifndef CONTACTS_GATEWAY_TESTS_FLEET_FLEET_TEST_SUPPORT_H_
#define CONTACTS_GATEWAY_TESTS_FLEET_FLEET_TEST_SUPPORT_H_

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

}  // namespace contacts::gateway

#endif  // CONTACTS_GATEWAY_TESTS_FLEET_FLEET_TEST_SUPPORT_H_
