#include "server/stream/rate_budget.h"

#include <algorithm>
#include <boost/asio/post.hpp>

#include "absl/strings/cord.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "server/core/metrics.h"
#include "server/stream/retry.h"

namespace contacts::gateway {
namespace {

namespace asio = boost::asio;

std::optional<int64_t> IntPayload(const absl::Status& status, const char* name) {
  int64_t value = 0;
  if (absl::optional<absl::Cord> text = status.GetPayload(name);
      text && absl::SimpleAtoi(std::string(*text), &value)) {
    return value;
  }
  return std::nullopt;
}

}  // namespace

TokenBucket::TokenBucket(int64_t per_minute, int32_t burst, absl::Time now)
    : interval_(absl::Minutes(1) / std::max<int64_t>(1, per_minute)),
      burst_(std::max(1, burst)),
      tokens_(burst_),
      updated_(now) {}

double TokenBucket::TokensAt(absl::Time now) const {
  if (now <= updated_) return tokens_;
  return std::min(burst_, tokens_ + absl::FDivDuration(now - updated_, interval_));
}

absl::Time TokenBucket::Ready(absl::Time now, int64_t n) const {
  const absl::Time from = std::max(now, paused_until_);
  const double have = TokensAt(from);
  absl::Time at =
      have >= static_cast<double>(n) ? from : from + interval_ * (static_cast<double>(n) - have);
  if (quota_until_ > at && quota_ < n) at = quota_until_;
  return at;
}

void TokenBucket::Take(absl::Time now) {
  tokens_ = TokensAt(now) - 1;
  updated_ = std::max(updated_, now);
  if (now < quota_until_) --quota_;
}

bool TokenBucket::Idle(absl::Time now) const {
  return TokensAt(now) >= burst_ && now >= paused_until_ && now >= quota_until_;
}

void TokenBucket::PauseUntil(absl::Time until) {
  if (until <= paused_until_) return;
  paused_until_ = until;
  tokens_ = 1;  // paced again from `until`, no burst
  updated_ = until;
}

void TokenBucket::Limit(int64_t remaining, absl::Time reset) {
  quota_ = remaining;
  quota_until_ = reset;
}

RateBudget::RateBudget(RateBudgetOptions options) : options_(std::move(options)) {}

bool RateBudget::Limited(const std::string& account) const {
  auto it = options_.per_account.find(account);
  return (it == options_.per_account.end() ? options_.per_minute : it->second) > 0;
}

RateBudget::Account& RateBudget::Get(const std::string& account, absl::Time now) {
  auto it = accounts_.find(account);
  if (it == accounts_.end()) {
    if (accounts_.size() >= sweep_at_) {
      for (auto idle = accounts_.begin(); idle != accounts_.end();) {
        const Account& a = idle->second;
        if (a.rotation.empty() && a.in_flight == 0 && a.bucket.Idle(now)) {
          accounts_.erase(idle++);
        } else {
          ++idle;
        }
      }
      sweep_at_ = std::max<size_t>(64, 2 * accounts_.size());
    }
    auto limit = options_.per_account.find(account);
    int64_t per_minute = limit == options_.per_account.end() ? options_.per_minute : limit->second;
    it = accounts_.emplace(account, Account(TokenBucket(per_minute, options_.burst, now))).first;
  }
  return it->second;
}

absl::Time RateBudget::Enqueue(Ticket ticket, const std::string& account, uint64_t owner,
                               absl::Time now) {
  Account& a = Get(account, now);
  std::deque<Ticket>& queue = a.queues[owner];
  // A new owner joins the end of the rotation; an owner already waiting is served after its own.
  int64_t ahead =
      queue.empty() ? static_cast<int64_t>(a.rotation.size()) : static_cast<int64_t>(queue.size());
  if (queue.empty()) a.rotation.push_back(owner);
  queue.push_back(ticket);
  waiting_.emplace(ticket, Waiting{account, owner});
  return a.bucket.Ready(now, ahead + 1);
}

bool RateBudget::Remove(Ticket ticket) {
  auto it = waiting_.find(ticket);
  if (it == waiting_.end()) return false;
  Account& a = accounts_.at(it->second.account);
  const uint64_t owner = it->second.owner;
  waiting_.erase(it);
  std::deque<Ticket>& queue = a.queues[owner];
  queue.erase(std::find(queue.begin(), queue.end(), ticket));
  if (queue.empty()) {
    a.queues.erase(owner);
    a.rotation.erase(std::find(a.rotation.begin(), a.rotation.end(), owner));
  }
  return true;
}

std::vector<RateBudget::Ticket> RateBudget::Grant(absl::Time now, absl::Time* wake) {
  std::vector<Ticket> granted;
  *wake = absl::InfiniteFuture();
  for (auto& [name, a] : accounts_) {
    while (!a.rotation.empty() && a.bucket.Ready(now) <= now) {
      const uint64_t owner = a.rotation.front();
      a.rotation.pop_front();
      std::deque<Ticket>& queue = a.queues[owner];
      granted.push_back(queue.front());
      waiting_.erase(queue.front());
      queue.pop_front();
      if (queue.empty()) {
        a.queues.erase(owner);
      } else {
        a.rotation.push_back(owner);
      }
      a.bucket.Take(now);
      ++a.in_flight;
    }
    if (!a.rotation.empty()) *wake = std::min(*wake, a.bucket.Ready(now));
  }
  return granted;
}

void RateBudget::Answered(const std::string& account, bool throttled,
                          std::optional<absl::Duration> retry_after, const RateLimitHint& hint,
                          absl::Time now) {
  auto it = accounts_.find(account);
  if (it == accounts_.end()) return;
  Account& a = it->second;
  a.in_flight = std::max<int64_t>(0, a.in_flight - 1);
  if (throttled) {
    absl::Duration pause = retry_after  ? *retry_after
                           : hint.reset ? *hint.reset
                                        : std::max(absl::Seconds(1), a.bucket.interval());
    a.bucket.PauseUntil(now + pause);
  }
  if (hint.remaining && hint.reset) {
    // Requests still in flight will spend the upstream's remaining quota too.
    a.bucket.Limit(std::max<int64_t>(0, *hint.remaining - a.in_flight), now + *hint.reset);
  }
}

RateLimitedPageSource::RateLimitedPageSource(asio::io_context& io, PageSource& inner,
                                             RateBudgetOptions options)
    : io_(io),
      inner_(inner),
      strand_(asio::make_strand(io)),
      timer_(strand_),
      budget_(std::move(options)) {}

void RateLimitedPageSource::Fetch(PageRequest request, std::shared_ptr<Cancellation> cancel,
                                  Callback done) {
  RateBudget::Ticket ticket = 0;
  {
    absl::MutexLock lock(&mu_);
    if (budget_.Limited(request.account_id)) ticket = ++last_ticket_;
  }
  if (ticket == 0) {
    inner_.Fetch(std::move(request), std::move(cancel), std::move(done));
    return;
  }
  Cancellation::Handle handle = cancel->OnCancel([this, ticket] { CancelWait(ticket); });
  const absl::Time now = absl::Now();
  const absl::Time deadline = request.deadline;
  absl::Status refused;
  {
    absl::MutexLock lock(&mu_);
    const std::string account = request.account_id;
    absl::Time ready = budget_.Enqueue(ticket, account, request.owner, now);
    if (ready > deadline) {
      budget_.Remove(ticket);
      refused = absl::DeadlineExceededError(absl::StrCat(
          "the upstream rate budget of account ", account,
          " has no request free before the call's deadline (", absl::FormatDuration(ready - now),
          " away); retry later or with a longer deadline"));
    } else {
      if (deadline != absl::InfiniteFuture()) deadlines_.emplace(deadline, ticket);
      pending_.emplace(
          ticket, Pending{std::move(request), cancel, handle, std::move(done), now, ready > now});
    }
  }
  if (!refused.ok()) {
    cancel->Forget(handle);
    asio::post(io_, [done = std::move(done), refused]() mutable { std::move(done)(refused); });
    return;
  }
  if (cancel->cancelled()) CancelWait(ticket);  // cancelled before the wait was registered
  Tick();
}

void RateLimitedPageSource::CancelWait(RateBudget::Ticket ticket) {
  Pending pending;
  {
    absl::MutexLock lock(&mu_);
    auto it = pending_.find(ticket);
    if (it == pending_.end()) return;
    budget_.Remove(ticket);
    deadlines_.erase({it->second.request.deadline, ticket});
    pending = std::move(it->second);
    pending_.erase(it);
  }
  asio::post(io_, [done = std::move(pending.done)]() mutable {
    std::move(done)(absl::CancelledError("the call was cancelled"));
  });
}

void RateLimitedPageSource::Tick() {
  std::vector<Pending> go, expired;
  bool arm = false;
  {
    absl::MutexLock lock(&mu_);
    const absl::Time now = absl::Now();
    absl::Time wake;
    for (RateBudget::Ticket ticket : budget_.Grant(now, &wake)) {
      auto it = pending_.find(ticket);
      deadlines_.erase({it->second.request.deadline, ticket});
      if (it->second.queued) {
        ++waits_;
        Metrics().AccountBudgetWait(it->second.request.account_id);
        Metrics().rate_budget_wait_seconds.Observe(absl::ToDoubleSeconds(now - it->second.since));
      }
      go.push_back(std::move(it->second));
      pending_.erase(it);
    }
    while (!deadlines_.empty() && deadlines_.begin()->first <= now) {
      RateBudget::Ticket ticket = deadlines_.begin()->second;
      deadlines_.erase(deadlines_.begin());
      budget_.Remove(ticket);
      auto it = pending_.find(ticket);
      expired.push_back(std::move(it->second));
      pending_.erase(it);
    }
    if (!deadlines_.empty()) wake = std::min(wake, deadlines_.begin()->first);
    if (wake < armed_) {
      armed_ = wake;
      arm = true;
    }
  }
  for (Pending& pending : expired) {
    pending.cancel->Forget(pending.handle);
    asio::post(
        io_, [done = std::move(pending.done), account = pending.request.account_id]() mutable {
          std::move(done)(absl::DeadlineExceededError(absl::StrCat(
              "the call's deadline passed while waiting for the upstream rate budget of account ",
              account)));
        });
  }
  for (Pending& pending : go) {
    pending.cancel->Forget(pending.handle);
    Send(std::move(pending));
  }
  if (arm) Arm();
}

void RateLimitedPageSource::Arm() {
  asio::post(strand_, [this] {
    absl::Time wake;
    {
      absl::MutexLock lock(&mu_);
      wake = armed_;
    }
    if (wake == absl::InfiniteFuture()) return;
    timer_.expires_after(
        absl::ToChronoNanoseconds(std::max(absl::ZeroDuration(), wake - absl::Now())));
    timer_.async_wait([this](const boost::system::error_code& ec) {
      if (ec == asio::error::operation_aborted) return;
      {
        absl::MutexLock lock(&mu_);
        armed_ = absl::InfiniteFuture();
      }
      Tick();
    });
  });
}

void RateLimitedPageSource::Send(Pending pending) {
  std::string account = pending.request.account_id;
  inner_.Fetch(std::move(pending.request), pending.cancel,
               [this, account = std::move(account),
                done = std::move(pending.done)](absl::StatusOr<Page> page) mutable {
                 const absl::Time now = absl::Now();
                 bool throttled = page.status().code() == absl::StatusCode::kResourceExhausted;
                 std::optional<absl::Duration> retry_after;
                 RateLimitHint hint;
                 if (page.ok()) {
                   hint = page->rate_limit;
                 } else {
                   const absl::Status& status = page.status();
                   if (absl::optional<absl::Cord> value = status.GetPayload(kRetryAfterPayload)) {
                     retry_after = ParseRetryAfter(std::string(*value), now);
                   }
                   hint.remaining = IntPayload(status, kRateLimitRemainingPayload);
                   if (std::optional<int64_t> reset = IntPayload(status, kRateLimitResetPayload)) {
                     hint.reset = absl::Seconds(*reset);
                   }
                 }
                 {
                   absl::MutexLock lock(&mu_);
                   budget_.Answered(account, throttled, retry_after, hint, now);
                   if (throttled) ++throttled_;
                 }
                 std::move(done)(std::move(page));
               });
}

int64_t RateLimitedPageSource::waits() const {
  absl::MutexLock lock(&mu_);
  return waits_;
}

int64_t RateLimitedPageSource::throttled() const {
  absl::MutexLock lock(&mu_);
  return throttled_;
}

}  // namespace contacts::gateway
