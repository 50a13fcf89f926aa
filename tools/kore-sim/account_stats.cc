#include "tools/kore-sim/account_stats.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "tools/kore-sim/text.h"

namespace contacts::kore_sim {

void AccountStats::Record(std::string_view account, unsigned status) {
  absl::MutexLock lock(&mu_);
  // Read under the lock, so that each account's arrivals are recorded in time order.
  const Clock::time_point now = Clock::now();
  auto it = accounts_.find(account);
  if (it == accounts_.end()) it = accounts_.emplace(std::string(account), Account()).first;
  Account& entry = it->second;
  ++entry.requests;
  if (status == 429) ++entry.rate_limited;
  // The busiest window ends at some arrival: the count of (now - window, now] is checked at each.
  while (!entry.recent.empty() && entry.recent.front() + window_ <= now) entry.recent.pop_front();
  entry.recent.push_back(now);
  entry.max_in_window = std::max(entry.max_in_window, static_cast<int64_t>(entry.recent.size()));
}

std::string AccountStats::ToJson() const {
  absl::MutexLock lock(&mu_);
  std::string out = "{";
  for (const auto& [name, entry] : accounts_) {
    if (out.size() > 1) out += ',';
    AppendJsonString(out, name);
    absl::StrAppend(&out, R"(:{"requests":)", entry.requests, R"(,"rate_limited":)",
                    entry.rate_limited, R"(,"max_in_window":)", entry.max_in_window, "}");
  }
  out += "}";
  return out;
}

void AccountStats::Reset() {
  absl::MutexLock lock(&mu_);
  accounts_.clear();
}

}  // namespace contacts::kore_sim
