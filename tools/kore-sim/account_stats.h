#ifndef CONTACTS_GATEWAY_TOOLS_KORE_SIM_ACCOUNT_STATS_H_
#define CONTACTS_GATEWAY_TOOLS_KORE_SIM_ACCOUNT_STATS_H_

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

// What each account asked of kore-sim, for fleet tests that compare it with the rate limit:
// requests, 429 answers, and the most requests that fell into any one sliding window of the rate
// limit's length (admitted or not: what the callers sent, not what the limiter let through).
// Keeps only the arrival times within the last window per account. Thread-safe.
class AccountStats {
 public:
  using Clock = std::chrono::steady_clock;

  explicit AccountStats(Clock::duration window) : window_(window) {}

  // One request of `account` arriving now, answered with `status`.
  void Record(std::string_view account, unsigned status);

  // {"acct-1":{"requests":N,"rate_limited":N,"max_in_window":N},...}, accounts in name order.
  std::string ToJson() const;

  void Reset();

 private:
  struct Account {
    int64_t requests = 0;
    int64_t rate_limited = 0;              // answered 429
    int64_t max_in_window = 0;             // most arrivals within any window (t - window, t]
    std::deque<Clock::time_point> recent;  // arrivals within the last window, oldest first
  };

  const Clock::duration window_;
  mutable absl::Mutex mu_;
  std::map<std::string, Account, std::less<>> accounts_ ABSL_GUARDED_BY(mu_);
};

}  // namespace contacts::kore_sim

#endif  // CONTACTS_GATEWAY_TOOLS_KORE_SIM_ACCOUNT_STATS_H_
