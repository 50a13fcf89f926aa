#include "server/service/later_lane.h"

#include <algorithm>
#include <boost/asio/post.hpp>
#include <chrono>
#include <utility>

#include "server/core/metrics.h"

namespace contacts::gateway {

int64_t LaterLane::SteadyNanos() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

LaterLane::LaterLane(boost::asio::io_context& io, Options options, Clock clock)
    : io_(io), options_(options), clock_(clock) {}

bool LaterLane::Completed(int64_t& mark) {
  const int64_t now = clock_() / 1000000;
  if (mark != now) {  // else counted in this millisecond already
    mark = now;
    int64_t bucket = bucket_ms_.load(std::memory_order_relaxed);
    if (bucket != now &&
        bucket_ms_.compare_exchange_strong(bucket, now, std::memory_order_relaxed)) {
      const int ended = writers_.exchange(0, std::memory_order_relaxed);
      writers_before_.store(bucket == now - 1 ? ended : 0, std::memory_order_relaxed);
    }
    writers_.fetch_add(1, std::memory_order_relaxed);
  }
  return BusyAt(now);
}

bool LaterLane::Busy() const { return BusyAt(clock_() / 1000000); }

bool LaterLane::BusyAt(int64_t now_ms) const {
  const int64_t since = now_ms - bucket_ms_.load(std::memory_order_relaxed);
  if (since > 1) return false;  // no write completed in the last two milliseconds
  const int before = since == 0 ? writers_before_.load(std::memory_order_relaxed) : 0;
  return std::max(writers_.load(std::memory_order_relaxed), before) > options_.busy_above;
}

void LaterLane::Defer(uint64_t stream, absl::AnyInvocable<void() &&> work) {
  bool post = false;
  {
    absl::MutexLock lock(&mu_);
    const uint64_t seq = seq_++;
    const Key key{~stream, seq};
    by_stream_.emplace(key, Work{clock_(), std::move(work)});
    by_age_.emplace(seq, key);
    if (running_ < options_.parallel) {
      ++running_;
      post = true;
    }
  }
  Metrics().deferred_reactions.Increment();
  if (post) boost::asio::post(io_, [this] { RunOne(); });
}

size_t LaterLane::waiting() const {
  absl::MutexLock lock(&mu_);
  return by_stream_.size();
}

// One piece of work per turn: the handler posts itself again behind whatever the io_context
// queued meanwhile, and ends when nothing is left.
void LaterLane::RunOne() {
  absl::AnyInvocable<void() &&> work;
  {
    absl::MutexLock lock(&mu_);
    if (by_stream_.empty()) {
      --running_;
      return;
    }
    auto next = by_stream_.begin();
    auto oldest = by_stream_.find(by_age_.begin()->second);
    if (clock_() - oldest->second.deferred_at >= absl::ToInt64Nanoseconds(options_.age_bound) &&
        ++turns_ % 2 == 0) {
      next = oldest;
    }
    by_age_.erase(next->first.second);
    work = std::move(next->second.run);
    by_stream_.erase(next);
  }
  std::move(work)();
  boost::asio::post(io_, [this] { RunOne(); });
}

}  // namespace contacts::gateway
