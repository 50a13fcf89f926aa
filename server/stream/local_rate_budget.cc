#include "server/stream/local_rate_budget.h"

#include <algorithm>
#include <boost/asio/post.hpp>

#include "absl/strings/str_cat.h"
#include "server/core/encoding.h"
#include "server/core/metrics.h"

namespace contacts::gateway {

namespace asio = boost::asio;

int64_t RateBudgetOptions::PerMinute(std::string_view account) const {
  auto it = per_account.find(AsAbsl(account));
  return it == per_account.end() ? per_minute : it->second;
}

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

BudgetBooks::BudgetBooks(RateBudgetOptions options) : options_(std::move(options)) {}

BudgetBooks::Account& BudgetBooks::Get(const std::string& account, absl::Time now) {
  auto it = accounts_.find(account);
  if (it == accounts_.end()) {
    if (accounts_.size() >= sweep_at_) {
      for (auto idle = accounts_.begin(); idle != accounts_.end();) {
        const Account& a = idle->second;
        if (a.turns.empty() && a.in_flight == 0 && a.bucket.Idle(now)) {
          accounts_.erase(idle++);
        } else {
          ++idle;
        }
      }
      sweep_at_ = std::max<size_t>(64, 2 * accounts_.size());
    }
    TokenBucket bucket(options_.PerMinute(account), options_.burst, now);
    it = accounts_.emplace(account, Account(bucket)).first;
  }
  return it->second;
}

absl::Time BudgetBooks::Enqueue(Ticket ticket, const RateBudget::Ask& ask, absl::Time now) {
  Account& a = Get(ask.account, now);
  const int64_t ahead = a.turns.Add(ticket, ask);
  waiting_.emplace(ticket, ask.account);
  return a.bucket.Ready(now, ahead + 1);
}

bool BudgetBooks::Remove(Ticket ticket) {
  auto it = waiting_.find(ticket);
  if (it == waiting_.end()) return false;
  accounts_.at(it->second).turns.Remove(ticket);
  waiting_.erase(it);
  return true;
}

std::vector<BudgetBooks::Ticket> BudgetBooks::Grant(absl::Time now, absl::Time* wake) {
  std::vector<Ticket> granted;
  *wake = absl::InfiniteFuture();
  for (auto& [name, a] : accounts_) {
    while (!a.turns.empty() && a.bucket.Ready(now) <= now) {
      const Ticket ticket = a.turns.Next();
      granted.push_back(ticket);
      waiting_.erase(ticket);
      a.bucket.Take(now);
      ++a.in_flight;
    }
    if (!a.turns.empty()) *wake = std::min(*wake, a.bucket.Ready(now));
  }
  return granted;
}

void BudgetBooks::Answered(const std::string& account, const RateLimitFacts& facts,
                           absl::Time now) {
  auto it = accounts_.find(account);
  if (it == accounts_.end()) return;
  Account& a = it->second;
  a.in_flight = std::max<int64_t>(0, a.in_flight - 1);
  if (facts.throttled) {
    absl::Duration pause = facts.retry_after ? *facts.retry_after
                           : facts.reset     ? *facts.reset
                                             : std::max(absl::Seconds(1), a.bucket.interval());
    a.bucket.PauseUntil(now + pause);
  }
  if (facts.remaining && facts.reset) {
    // Requests still in flight will spend the upstream's remaining quota too.
    a.bucket.Limit(std::max<int64_t>(0, *facts.remaining - a.in_flight), now + *facts.reset);
  }
}

LocalRateBudget::LocalRateBudget(asio::io_context& io, RateBudgetOptions options)
    : io_(io), strand_(asio::make_strand(io)), timer_(strand_), books_(std::move(options)) {}

bool LocalRateBudget::Limited(std::string_view account) const {
  absl::MutexLock lock(&mu_);
  return books_.Limited(account);
}

void LocalRateBudget::Post(Callback done, Decision decision) {
  asio::post(io_, [done = std::move(done), decision = std::move(decision)]() mutable {
    std::move(done)(std::move(decision));
  });
}

void LocalRateBudget::Acquire(Ask ask, std::shared_ptr<Cancellation> cancel, Callback done) {
  BudgetBooks::Ticket ticket;
  {
    absl::MutexLock lock(&mu_);
    ticket = ++last_ticket_;
  }
  Cancellation::Handle handle = cancel->OnCancel([this, ticket] { CancelWait(ticket); });
  const absl::Time now = absl::Now();
  std::optional<Decision> refused;
  {
    absl::MutexLock lock(&mu_);
    absl::Time ready = books_.Enqueue(ticket, ask, now);
    if (ready > ask.deadline) {
      books_.Remove(ticket);
      refused = Decision{absl::DeadlineExceededError(absl::StrCat(
                             "the upstream rate budget of account ", ask.account,
                             " has no request free before the call's deadline (the next is ",
                             absl::FormatDuration(absl::Trunc(ready - now, absl::Milliseconds(1))),
                             " away); retry then, or with a longer deadline")),
                         ready - now};
    } else {
      if (ask.deadline != absl::InfiniteFuture()) deadlines_.emplace(ask.deadline, ticket);
      const bool queued = ready > now;
      pending_.emplace(ticket,
                       Pending{std::move(ask), cancel, handle, std::move(done), now, queued});
    }
  }
  if (refused) {
    cancel->Forget(handle);
    Post(std::move(done), *std::move(refused));
    return;
  }
  if (cancel->cancelled()) CancelWait(ticket);  // cancelled before the wait was registered
  Tick();
}

void LocalRateBudget::Answered(std::string_view account, const RateLimitFacts& facts) {
  absl::MutexLock lock(&mu_);
  books_.Answered(std::string(account), facts, absl::Now());
}

void LocalRateBudget::CancelWait(BudgetBooks::Ticket ticket) {
  Pending pending;
  {
    absl::MutexLock lock(&mu_);
    auto it = pending_.find(ticket);
    if (it == pending_.end()) return;
    books_.Remove(ticket);
    deadlines_.erase({it->second.ask.deadline, ticket});
    pending = std::move(it->second);
    pending_.erase(it);
  }
  Post(std::move(pending.done), Decision{absl::CancelledError("the call was cancelled")});
}

void LocalRateBudget::Tick() {
  std::vector<Pending> go, expired;
  bool arm = false;
  {
    absl::MutexLock lock(&mu_);
    const absl::Time now = absl::Now();
    absl::Time wake;
    for (BudgetBooks::Ticket ticket : books_.Grant(now, &wake)) {
      auto it = pending_.find(ticket);
      deadlines_.erase({it->second.ask.deadline, ticket});
      if (it->second.queued) {
        ++queued_;
        Metrics().rate_budget_wait_seconds.Observe(absl::ToDoubleSeconds(now - it->second.since));
        Metrics().AccountBudgetWait(it->second.ask.account);
      }
      go.push_back(std::move(it->second));
      pending_.erase(it);
    }
    while (!deadlines_.empty() && deadlines_.begin()->first <= now) {
      BudgetBooks::Ticket ticket = deadlines_.begin()->second;
      deadlines_.erase(deadlines_.begin());
      books_.Remove(ticket);
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
    Post(std::move(pending.done),
         Decision{absl::DeadlineExceededError(absl::StrCat(
             "the call's deadline passed while waiting for the upstream rate budget of account ",
             pending.ask.account))});
  }
  for (Pending& pending : go) {
    pending.cancel->Forget(pending.handle);
    Post(std::move(pending.done), Decision{absl::OkStatus()});
  }
  if (arm) Arm();
}

void LocalRateBudget::Arm() {
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

int64_t LocalRateBudget::queued() const {
  absl::MutexLock lock(&mu_);
  return queued_;
}

}  // namespace contacts::gateway
