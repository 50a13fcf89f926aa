#ifndef CONTACTS_GATEWAY_SERVER_STREAM_LOCAL_RATE_BUDGET_H_
#define CONTACTS_GATEWAY_SERVER_STREAM_LOCAL_RATE_BUDGET_H_

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <cstdint>
#include <deque>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "server/core/budget_turns.h"
#include "server/core/rate_budget.h"

namespace contacts::gateway {

struct RateBudgetOptions {
  int64_t per_minute = 60;  // upstream requests per minute per account; 0 = no budget
  int32_t burst = 1;        // bucket size: requests that may go at once after a quiet spell
  // Per-account overrides of per_minute (0 = no budget for that account).
  absl::flat_hash_map<std::string, int64_t> per_account;

  int64_t PerMinute(std::string_view account) const;
};

// A token bucket, pure arithmetic on the times it is given (tests use a fake clock). Starts full.
// With burst 1 no 60-second window ever holds more than `per_minute` grants, whatever the phase.
// The upstream can narrow it: a pause (429) admits nothing before its end and restarts the
// bucket with one token; a quota (RateLimit-Remaining/-Reset) admits at most that many grants
// before its reset.
class TokenBucket {
 public:
  TokenBucket(int64_t per_minute, int32_t burst, absl::Time now);

  // When the `n`-th grant from now may happen at the earliest (n ≥ 1).
  absl::Time Ready(absl::Time now, int64_t n = 1) const;
  // Takes one token; only when Ready(now) <= now.
  void Take(absl::Time now);
  void PauseUntil(absl::Time until);
  void Limit(int64_t remaining, absl::Time reset);

  absl::Duration interval() const { return interval_; }
  // Full, and neither paused nor limited: the same as a new bucket.
  bool Idle(absl::Time now) const;

 private:
  double TokensAt(absl::Time now) const;

  const absl::Duration interval_;  // one token per interval
  const double burst_;
  double tokens_;
  absl::Time updated_;  // when tokens_ was true
  absl::Time paused_until_ = absl::InfinitePast();
  int64_t quota_ = 0;
  absl::Time quota_until_ = absl::InfinitePast();
};

// The books of all accounts' budgets, pure logic (no I/O, no clock of its own, not thread-safe):
// which waiting request may go when. Waiters of one account are served in BudgetTurns' order
// (round-robin between callers, then between each caller's streams; first pages first among their
// caller's streams).
class BudgetBooks {
 public:
  using Ticket = uint64_t;

  explicit BudgetBooks(RateBudgetOptions options);

  bool Limited(std::string_view account) const { return options_.PerMinute(account) > 0; }
  // Accounts tracked. Idle ones (nothing waiting or in flight, bucket Idle) are forgotten once
  // their number has doubled, so that a gateway serving many accounts over time stays bounded.
  size_t accounts() const { return accounts_.size(); }

  // Queues a request (ask.account must be Limited) and returns when it would go at the earliest
  // (an estimate: the callers and owners ahead in the turns are each served first).
  absl::Time Enqueue(Ticket ticket, const RateBudget::Ask& ask, absl::Time now);
  // Removes a waiting ticket; false when it is not waiting.
  bool Remove(Ticket ticket);
  // The tickets that may go at `now`, in grant order; *wake is when the next waiting ticket may
  // go (InfiniteFuture when none waits).
  std::vector<Ticket> Grant(absl::Time now, absl::Time* wake);
  // The upstream answered a granted request of `account`. Adapts the account's bucket so that
  // every stream of the account waits: a 429 pauses it (Retry-After, else the reset, else a
  // second), RateLimit-Remaining/-Reset limit it until the reset.
  void Answered(const std::string& account, const RateLimitFacts& facts, absl::Time now);

 private:
  struct Account {
    explicit Account(TokenBucket b) : bucket(b) {}
    TokenBucket bucket;
    BudgetTurns turns;
    int64_t in_flight = 0;  // granted, not answered yet
  };
  Account& Get(const std::string& account, absl::Time now);

  const RateBudgetOptions options_;
  absl::flat_hash_map<std::string, Account> accounts_;
  size_t sweep_at_ = 64;  // accounts_ size at which idle accounts are forgotten
  absl::flat_hash_map<Ticket, std::string> waiting_;  // the account of each waiting ticket
};

// RateBudget of one process: BudgetBooks with a timer. A wait costs no thread: grants come from
// the timer (on `io`'s threads) or from the Acquire or Answered call that frees one, through
// io_context posts, never inside Acquire. `io` must outlive this object and its waits. Thread-safe.
class LocalRateBudget final : public RateBudget {
 public:
  LocalRateBudget(boost::asio::io_context& io, RateBudgetOptions options);

  bool Limited(std::string_view account) const override;
  void Acquire(Ask ask, std::shared_ptr<Cancellation> cancel, Callback done) override;
  void Answered(std::string_view account, const RateLimitFacts& facts) override;

  // For tests: grants that were queued (no request was free when asked).
  int64_t queued() const;

 private:
  struct Pending {
    Ask ask;
    std::shared_ptr<Cancellation> cancel;
    Cancellation::Handle handle = 0;
    Callback done;
    absl::Time since;
    bool queued = false;  // no request was free when it was asked
  };
  // Grants what may go, refuses what waited past its deadline, and arms the timer for what is next.
  void Tick();
  void Arm();  // sets the timer to armed_, on strand_
  void CancelWait(BudgetBooks::Ticket ticket);
  void Post(Callback done, Decision decision);

  boost::asio::io_context& io_;
  boost::asio::strand<boost::asio::io_context::executor_type> strand_;
  boost::asio::steady_timer timer_;  // used on strand_ only
  mutable absl::Mutex mu_;
  BudgetBooks books_ ABSL_GUARDED_BY(mu_);
  BudgetBooks::Ticket last_ticket_ ABSL_GUARDED_BY(mu_) = 0;
  absl::flat_hash_map<BudgetBooks::Ticket, Pending> pending_ ABSL_GUARDED_BY(mu_);
  std::set<std::pair<absl::Time, BudgetBooks::Ticket>> deadlines_ ABSL_GUARDED_BY(mu_);
  absl::Time armed_ ABSL_GUARDED_BY(mu_) = absl::InfiniteFuture();
  int64_t queued_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace contacts::gateway

#endif  // CONTACTS_GATEWAY_SERVER_STREAM_LOCAL_RATE_BUDGET_H_
