#include "tools/kore-sim/rate_limiter.h"

#include <algorithm>

namespace contacts::kore_sim {

RateLimiter::RateLimiter(int64_t limit, Clock::duration window) : limit_(limit), window_(window) {}

RateLimiter::Decision RateLimiter::Admit(std::string_view account, Clock::time_point now) {
  if (limit_ <= 0) return {};
  absl::MutexLock lock(&mu_);
  auto it = admitted_.find(account);
  if (it == admitted_.end()) {
    it = admitted_.emplace(std::string(account), std::deque<Clock::time_point>()).first;
  }
  std::deque<Clock::time_point>& times = it->second;
  while (!times.empty() && times.front() + window_ <= now) times.pop_front();
  if (static_cast<int64_t>(times.size()) < limit_) {
    times.push_back(now);
    return {};
  }
  const Clock::duration wait = times.front() + window_ - now;
  const auto seconds = std::chrono::ceil<std::chrono::seconds>(wait).count();
  return {.admitted = false, .retry_after_seconds = std::max<int64_t>(1, seconds)};
}

void RateLimiter::Reset() {
  absl::MutexLock lock(&mu_);
  admitted_.clear();
}

}  // namespace contacts::kore_sim
