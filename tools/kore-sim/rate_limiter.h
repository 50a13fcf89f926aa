#ifndef CONTACTS_GATEWAY_TOOLS_KORE_SIM_RATE_LIMITER_H_
#define CONTACTS_GATEWAY_TOOLS_KORE_SIM_RATE_LIMITER_H_

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <string>
#include <string_view>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace contacts::kore_sim {

// Kore.ai's "N requests per minute per account" as a sliding window: a request is admitted when
// fewer than N requests of the same account were admitted in the last `window` (a minute, unless
// --rate-window scales it down for tests). Rejected requests do not count. Thread-safe.
class RateLimiter {
 public:
  using Clock = std::chrono::steady_clock;

  // `limit` ≤ 0 admits everything.
  RateLimiter(int64_t limit, Clock::duration window);

  struct Decision {
    bool admitted = true;
    int64_t retry_after_seconds = 0;  // when rejected: whole seconds until a slot frees, ≥ 1
  };
  Decision Admit(std::string_view account, Clock::time_point now);

  void Reset();

 private:
  const int64_t limit_;
  const Clock::duration window_;
  absl::Mutex mu_;
  // Admission times of each account within the window, oldest first.
  std::map<std::string, std::deque<Clock::time_point>, std::less<>> admitted_ ABSL_GUARDED_BY(mu_);
};

}  // namespace contacts::kore_sim

#endif  // CONTACTS_GATEWAY_TOOLS_KORE_SIM_RATE_LIMITER_H_
