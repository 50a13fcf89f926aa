#ifndef CONTACTS_GATEWAY_SERVER_FLEET_REDIS_RATE_BUDGET_H_
#define CONTACTS_GATEWAY_SERVER_FLEET_REDIS_RATE_BUDGET_H_

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <cstdint>
#include <deque>
#include <memory>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/time/time.h"
#include "server/core/budget_turns.h"
#include "server/core/rate_budget.h"
#include "server/fleet/shared_state.h"

namespace contacts::gateway {

struct FleetBudgetOptions {
  int64_t per_minute = 60;  // upstream requests per minute per account, fleet-wide; 0 = no budget
  int32_t burst = 1;        // requests an account may send at once after a quiet spell
  absl::flat_hash_map<std::string, int64_t> per_account{};  // overrides of per_minute
};

// The upstream's budget per account, spent by every replica together through Redis (GCRA on
// Redis's clock, one atomic script per grant: kGrantScript). A request that may not go at once
// gets a reserved slot and waits for it on a timer; it is sent then without asking again.
// Fairness: each replica reserves at most one slot per waiting stream (Ask::owner) at a time, so
// reservations interleave streams fleet-wide and a replica with one stream of an account gets a
// slot as often as each stream of a replica with eight; a slot goes, when it comes, to the
// replica's request whose turn it is (BudgetTurns: callers in turn, then each caller's streams,
// a first page first among its caller's), as in the in-process budget. A 429 seen by
// any replica pauses the account on all of them (kPauseScript and its message: slots reserved
// before the pause are given back and asked again); RateLimit-Remaining/-Reset cap the whole
// fleet until the reset (kQuotaScript).
// When Redis is unusable (SharedState::Mode::kLocal) each replica grants from its own schedule at
// its share of the rate (the fleet's last known size), continuing after the last slot it knew to
// be reserved; while the replicas rejoin, a slot must suit both Redis and that schedule.
// Callbacks run on the budget's strand, never inside Acquire. Thread-safe; `io` and `shared` must
// outlive it, and it must outlive the io_context's threads.
class RedisRateBudget final : public RateBudget {
 public:
  RedisRateBudget(boost::asio::io_context& io, SharedState& shared, FleetBudgetOptions options);
  ~RedisRateBudget() override;

  bool Limited(std::string_view account) const override;
  void Acquire(Ask ask, std::shared_ptr<Cancellation> cancel, Callback done) override;
  void Answered(std::string_view account, const RateLimitFacts& facts) override;

  // For tests and logs: slots granted through Redis and by the replica's own schedule, requests
  // refused at once (deadline), and reserved slots nobody was left to use.
  int64_t shared_grants() const { return shared_grants_.load(); }
  int64_t local_grants() const { return local_grants_.load(); }
  int64_t refused() const { return refused_.load(); }
  int64_t unused_slots() const { return unused_slots_.load(); }

 private:
  struct Waiter;
  struct Slot;
  struct Account;
  using Strand = boost::asio::strand<boost::asio::io_context::executor_type>;

  // All on strand_.
  Account& Get(const std::string& account);
  void Pump(const std::string& name, Account& account);
  void Reserve(const std::string& name, Account& account, uint64_t owner, uint64_t waiter);
  void Reserved(const std::string& name, uint64_t owner, uint64_t waiter, bool rejoining,
                absl::StatusOr<RedisReply> reply);
  void ReserveLocally(const std::string& name, Account& account, uint64_t owner, uint64_t waiter);
  void Refuse(Account& account, uint64_t waiter, absl::Duration retry_after);
  void AddSlot(const std::string& name, Account& account, uint64_t owner, uint64_t waiter,
               absl::Time at, bool later);
  void Fire(const std::string& name, uint64_t slot);
  // `waited`: granted after waiting for the budget (metrics).
  void Finish(uint64_t waiter, Decision decision, bool waited = false);
  void Pause(const std::string& name, absl::Time until);
  void ModeChanged(SharedState::Mode mode);
  absl::Duration Share(const Account& account) const;

  SharedState& shared_;
  const FleetBudgetOptions options_;
  const RedisScript grant_, pause_, quota_;
  Strand strand_;

  // On strand_ only.
  absl::flat_hash_map<std::string, std::unique_ptr<Account>> accounts_;
  absl::flat_hash_map<uint64_t, std::unique_ptr<Waiter>> waiters_;
  uint64_t last_id_ = 0;
  size_t sweep_at_ = 64;

  std::atomic<int64_t> shared_grants_{0}, local_grants_{0}, refused_{0}, unused_slots_{0};
};

}  // namespace contacts::gateway

#endif  // CONTACTS_GATEWAY_SERVER_FLEET_REDIS_RATE_BUDGET_H_
