#include "server/fleet/redis_rate_budget.h"

#include <algorithm>
#include <boost/asio/post.hpp>
#include <vector>

#include "absl/strings/str_cat.h"
#include "server/core/log.h"
#include "server/core/metrics.h"

namespace contacts::gateway {
namespace {

namespace asio = boost::asio;

std::string Micros(absl::Duration d) { return absl::StrCat(absl::ToInt64Microseconds(d)); }

}  // namespace

// A request waiting for its slot.
struct RedisRateBudget::Waiter {
  explicit Waiter(Strand& strand) : deadline(strand) {}
  Ask ask;
  std::shared_ptr<Cancellation> cancel;
  Cancellation::Handle handle = 0;
  Callback done;
  absl::Time since;
  boost::asio::steady_timer deadline;
};

// A slot reserved for an owner: when its timer fires, one request goes.
struct RedisRateBudget::Slot {
  explicit Slot(Strand& strand) : timer(strand) {}
  uint64_t owner = 0;
  uint64_t waiter = 0;  // the request it was reserved for
  absl::Time at;
  bool later = false;  // not free at once when reserved
  boost::asio::steady_timer timer;
};

struct RedisRateBudget::Account {
  struct Owner {
    std::deque<uint64_t> waiters;  // oldest first
    bool reserving = false;        // a slot asked for or held: no second one
  };
  int64_t per_minute = 1;
  absl::Duration interval;  // between grants at the account's full rate
  // Who gets the next slot that comes: the same order as the in-process budget's.
  BudgetTurns turns;
  // Each owner reserves one slot at a time, for its oldest request.
  absl::flat_hash_map<uint64_t, Owner> owners;
  absl::flat_hash_map<uint64_t, std::unique_ptr<Slot>> slots;
  // The replica's own schedule (at its share of the rate), used without Redis and while
  // rejoining; and the end of the fleet's schedule as Redis last told it.
  absl::Time local_next = absl::InfinitePast();
  absl::Time horizon = absl::InfinitePast();
  absl::Time paused_until = absl::InfinitePast();
  int64_t quota = 0;
  absl::Time quota_until = absl::InfinitePast();
};

RedisRateBudget::RedisRateBudget(asio::io_context& io, SharedState& shared,
                                 FleetBudgetOptions options)
    : shared_(shared),
      options_(std::move(options)),
      grant_(kGrantScript),
      pause_(kPauseScript),
      quota_(kQuotaScript),
      strand_(asio::make_strand(io)) {
  shared_.OnEvent([this](const FleetEvent& event) {
    if (event.kind != FleetEvent::Kind::kPause) return;
    asio::post(strand_, [this, account = event.subject, pause = event.pause] {
      if (accounts_.contains(account)) Pause(account, absl::Now() + pause);
    });
  });
  shared_.OnMode(
      [this](SharedState::Mode mode) { asio::post(strand_, [this, mode] { ModeChanged(mode); }); });
}

RedisRateBudget::~RedisRateBudget() {
  for (auto& [id, waiter] : waiters_) waiter->cancel->Forget(waiter->handle);
}

bool RedisRateBudget::Limited(std::string_view account) const {
  auto it = options_.per_account.find(std::string(account));
  return (it == options_.per_account.end() ? options_.per_minute : it->second) > 0;
}

absl::Duration RedisRateBudget::Share(const Account& account) const {
  // Whole requests per minute each, rounded down: N replicas spaced 60 s / (per_minute / N) apart
  // never hold more than per_minute requests in any minute together, whatever their phases
  // (spaced N intervals apart, each could hold one more whenever N does not divide per_minute).
  const int64_t replicas = shared_.fleet_size();
  const int64_t each = account.per_minute / replicas;
  return each >= 1 ? absl::Minutes(1) / each : account.interval * replicas;
}

RedisRateBudget::Account& RedisRateBudget::Get(const std::string& name) {
  auto it = accounts_.find(name);
  if (it != accounts_.end()) return *it->second;
  const absl::Time now = absl::Now();
  if (accounts_.size() >= sweep_at_) {
    // Forget idle accounts: nothing waiting or reserved, every schedule in the past.
    for (auto idle = accounts_.begin(); idle != accounts_.end();) {
      const Account& a = *idle->second;
      if (a.owners.empty() && a.slots.empty() && a.local_next < now && a.horizon < now &&
          a.paused_until < now && a.quota_until < now) {
        accounts_.erase(idle++);
      } else {
        ++idle;
      }
    }
    sweep_at_ = std::max<size_t>(64, 2 * accounts_.size());
  }
  auto limit = options_.per_account.find(name);
  const int64_t per_minute =
      limit == options_.per_account.end() ? options_.per_minute : limit->second;
  auto account = std::make_unique<Account>();
  account->per_minute = std::max<int64_t>(1, per_minute);
  account->interval = absl::Minutes(1) / account->per_minute;
  return *accounts_.emplace(name, std::move(account)).first->second;
}

void RedisRateBudget::Acquire(Ask ask, std::shared_ptr<Cancellation> cancel, Callback done) {
  asio::post(strand_, [this, ask = std::move(ask), cancel = std::move(cancel),
                       done = std::move(done)]() mutable {
    const uint64_t id = ++last_id_;
    auto waiter = std::make_unique<Waiter>(strand_);
    Waiter& w = *waiter;
    w.ask = std::move(ask);
    w.cancel = std::move(cancel);
    w.done = std::move(done);
    w.since = absl::Now();
    waiters_.emplace(id, std::move(waiter));
    const std::string name = w.ask.account;
    Account& account = Get(name);
    account.owners[w.ask.owner].waiters.push_back(id);
    account.turns.Add(id, w.ask);
    if (w.ask.deadline != absl::InfiniteFuture()) {
      w.deadline.expires_after(
          absl::ToChronoNanoseconds(std::max(absl::ZeroDuration(), w.ask.deadline - w.since)));
      w.deadline.async_wait([this, id, name](boost::system::error_code ec) {
        if (ec) return;
        Finish(id, {absl::DeadlineExceededError(absl::StrCat(
                        "the call's deadline passed while waiting for the upstream rate budget "
                        "of account ",
                        name)),
                    absl::ZeroDuration()});
      });
    }
    // Runs at once when cancelled already: it only posts.
    w.handle = w.cancel->OnCancel([this, id] {
      asio::post(strand_, [this, id] {
        Finish(id, {absl::CancelledError("the call was cancelled"), absl::ZeroDuration()});
      });
    });
    Pump(name, account);
  });
}

void RedisRateBudget::Pump(const std::string& name, Account& account) {
  // Owners without a slot ask for one, for their oldest request, the longest waiting first.
  // Asking may end a request at once (refused), which lets its owner ask again.
  for (bool asked = true; asked;) {
    asked = false;
    std::vector<std::pair<uint64_t, uint64_t>> asking;  // (oldest request, owner)
    for (const auto& [owner, o] : account.owners) {
      if (!o.reserving && !o.waiters.empty()) asking.emplace_back(o.waiters.front(), owner);
    }
    std::sort(asking.begin(), asking.end());
    for (const auto& [waiter, owner] : asking) {
      auto it = account.owners.find(owner);
      if (it == account.owners.end() || it->second.reserving || it->second.waiters.empty()) {
        continue;
      }
      it->second.reserving = true;
      asked = true;
      Reserve(name, account, owner, it->second.waiters.front());
    }
  }
}

void RedisRateBudget::Reserve(const std::string& name, Account& account, uint64_t owner,
                              uint64_t waiter) {
  const SharedState::Mode mode = shared_.mode();
  if (mode == SharedState::Mode::kLocal) {
    ReserveLocally(name, account, owner, waiter);
    return;
  }
  const absl::Time now = absl::Now();
  const absl::Time deadline = waiters_.at(waiter)->ask.deadline;
  // Not before the replica's own schedule: while replicas rejoin, those still on their own keep to
  // their share, and so does this one (its slot on that schedule is taken now); just after, the
  // fleet's schedule in Redis may not know the slots it took on its own.
  const absl::Time start = std::max(now, account.local_next);
  if (mode == SharedState::Mode::kRejoining) account.local_next = start + Share(account);
  const absl::Duration not_before = start - now;
  const absl::Duration tau = account.interval * (std::max(1, options_.burst) - 1);
  shared_.redis().Eval(
      grant_, {BudgetKey(shared_.prefix(), name)},
      {Micros(account.interval), Micros(tau),
       deadline == absl::InfiniteFuture() ? "-1"
                                          : Micros(std::max(absl::ZeroDuration(), deadline - now)),
       Micros(not_before)},
      [this, name, owner, waiter, rejoining = mode == SharedState::Mode::kRejoining](
          absl::StatusOr<RedisReply> reply) mutable {
        asio::post(strand_, [this, name = std::move(name), owner, waiter, rejoining,
                             reply = std::move(reply)]() mutable {
          Reserved(name, owner, waiter, rejoining, std::move(reply));
        });
      });
}

void RedisRateBudget::Reserved(const std::string& name, uint64_t owner, uint64_t waiter,
                               bool rejoining, absl::StatusOr<RedisReply> reply) {
  Account& account = Get(name);  // kept while an owner is reserving
  absl::StatusOr<GrantReply> grant =
      !reply.ok()         ? absl::StatusOr<GrantReply>(reply.status())
      : reply->is_error() ? absl::StatusOr<GrantReply>(absl::UnavailableError(reply->text))
                          : ParseGrantReply(*reply);
  if (!grant.ok()) {
    // Redis failed this once (the state change, if any, is logged by SharedState): this slot
    // comes from the replica's own schedule.
    Log(Severity::kDebug,
        absl::StrCat("shared budget of account ", name,
                     " unavailable, granting locally: ", grant.status().message()));
    if (shared_.mode() != SharedState::Mode::kLocal) {
      account.local_next = std::max(account.local_next, account.horizon + Share(account));
    }
    ReserveLocally(name, account, owner, waiter);
    Pump(name, account);
    return;
  }
  const absl::Time now = absl::Now();
  if (!grant->granted) {
    account.owners[owner].reserving = false;
    Refuse(account, waiter, grant->wait);
    Pump(name, account);
    return;
  }
  shared_grants_.fetch_add(1, std::memory_order_relaxed);
  const absl::Time at = now + grant->wait;
  account.horizon = std::max(account.horizon, now + grant->horizon);
  // Redis may have put the slot after the one taken on the replica's own schedule: that
  // schedule goes on from the slot, so the replica never sends faster than its share.
  if (rejoining) account.local_next = std::max(account.local_next, at + Share(account));
  AddSlot(name, account, owner, waiter, at, grant->wait > absl::ZeroDuration());
  Pump(name, account);
}

void RedisRateBudget::ReserveLocally(const std::string& name, Account& account, uint64_t owner,
                                     uint64_t waiter) {
  const absl::Time now = absl::Now();
  absl::Time start = std::max({now, account.local_next, account.paused_until});
  const bool quota = account.quota_until > start;
  if (quota && account.quota <= 0) start = account.quota_until;
  auto it = waiters_.find(waiter);
  if (it != waiters_.end() && it->second->ask.deadline < start) {
    account.owners[owner].reserving = false;
    Refuse(account, waiter, start - now);
    return;
  }
  if (quota && account.quota > 0) --account.quota;
  account.local_next = start + Share(account);
  local_grants_.fetch_add(1, std::memory_order_relaxed);
  AddSlot(name, account, owner, waiter, start, start > now);
}

void RedisRateBudget::Refuse(Account& account, uint64_t waiter, absl::Duration retry_after) {
  auto it = waiters_.find(waiter);
  if (it == waiters_.end()) return;
  refused_.fetch_add(1, std::memory_order_relaxed);
  Finish(waiter,
         {absl::DeadlineExceededError(absl::StrCat(
              "the upstream rate budget of account ", it->second->ask.account,
              " has no request free before the call's deadline (",
              absl::FormatDuration(retry_after), " away); retry later or with a longer deadline")),
          retry_after});
}

void RedisRateBudget::AddSlot(const std::string& name, Account& account, uint64_t owner,
                              uint64_t waiter, absl::Time at, bool later) {
  const uint64_t id = ++last_id_;
  auto slot = std::make_unique<Slot>(strand_);
  slot->owner = owner;
  slot->waiter = waiter;
  slot->at = at;
  slot->later = later;
  slot->timer.expires_after(
      absl::ToChronoNanoseconds(std::max(absl::ZeroDuration(), at - absl::Now())));
  slot->timer.async_wait([this, name, id](boost::system::error_code ec) {
    if (!ec) Fire(name, id);
  });
  account.slots.emplace(id, std::move(slot));
}

void RedisRateBudget::Fire(const std::string& name, uint64_t slot_id) {
  auto found = accounts_.find(name);
  if (found == accounts_.end()) return;
  Account& account = *found->second;
  auto slot = account.slots.find(slot_id);
  if (slot == account.slots.end()) return;
  const uint64_t owner = slot->second->owner;
  const uint64_t reserved_for = slot->second->waiter;
  const bool later = slot->second->later;
  account.slots.erase(slot);
  // The slot goes to whoever's turn it is among the replica's waiting requests (callers in turn,
  // then their streams, a first page first among its caller's): the number of slots a replica
  // holds follows its streams, the order they are used in follows the in-process budget's.
  if (auto it = account.owners.find(owner); it != account.owners.end()) {
    it->second.reserving = false;
  }
  const uint64_t chosen = account.turns.empty() ? 0 : account.turns.Next();
  if (chosen != 0) {
    // It served another stream's request: this stream, still waiting, takes over that stream's
    // reserved slot, so that neither is left holding a slot it no longer needs.
    const uint64_t served = waiters_.at(chosen)->ask.owner;
    auto own = account.owners.find(owner);
    auto other = account.owners.find(served);
    if (served != owner && own != account.owners.end() && !own->second.waiters.empty() &&
        other != account.owners.end() && other->second.reserving) {
      for (auto& [id, held] : account.slots) {
        if (held->owner != served) continue;
        held->owner = owner;
        held->waiter = own->second.waiters.front();
        own->second.reserving = true;
        other->second.reserving = false;
        break;
      }
    }
  }
  if (chosen == 0) {
    unused_slots_.fetch_add(1, std::memory_order_relaxed);
  } else {
    // It waited for the budget if its slot was not free at once, or it queued behind another.
    Finish(chosen, {absl::OkStatus(), absl::ZeroDuration()}, later || chosen != reserved_for);
  }
  if (auto it = account.owners.find(owner);
      it != account.owners.end() && it->second.waiters.empty() && !it->second.reserving) {
    account.owners.erase(it);
  }
  Pump(name, account);
}

void RedisRateBudget::Finish(uint64_t id, Decision decision, bool waited) {
  auto it = waiters_.find(id);
  if (it == waiters_.end()) return;
  std::unique_ptr<Waiter> waiter = std::move(it->second);
  waiters_.erase(it);
  const std::string& name = waiter->ask.account;
  Account& account = Get(name);
  const uint64_t owner = waiter->ask.owner;
  account.turns.Remove(id);  // unless it was taken out in turn
  Account::Owner& queue = account.owners[owner];
  queue.waiters.erase(std::find(queue.waiters.begin(), queue.waiters.end(), id));
  if (queue.waiters.empty() && !queue.reserving) account.owners.erase(owner);
  waiter->deadline.cancel();
  waiter->cancel->Forget(waiter->handle);
  if (decision.status.ok() && waited) {
    Metrics().rate_budget_wait_seconds.Observe(absl::ToDoubleSeconds(absl::Now() - waiter->since));
    Metrics().AccountBudgetWait(name);
  }
  const bool left = !decision.status.ok() && decision.retry_after == absl::ZeroDuration();
  std::move(waiter->done)(std::move(decision));
  if (left) Pump(name, account);
}

void RedisRateBudget::Pause(const std::string& name, absl::Time until) {
  Account& account = Get(name);
  if (until <= account.paused_until) return;
  account.paused_until = until;
  account.local_next = std::max(account.local_next, until);
  // Slots reserved before the pause are given back: their owners ask again, and get slots
  // after it.
  for (auto it = account.slots.begin(); it != account.slots.end();) {
    if (it->second->at < until) {
      it->second->timer.cancel();
      if (auto owner = account.owners.find(it->second->owner); owner != account.owners.end()) {
        owner->second.reserving = false;
        if (owner->second.waiters.empty()) account.owners.erase(owner);
      }
      account.slots.erase(it++);
    } else {
      ++it;
    }
  }
  Pump(name, account);
}

void RedisRateBudget::ModeChanged(SharedState::Mode mode) {
  if (mode != SharedState::Mode::kLocal) return;
  // On its own, a replica continues after the last slot it knew the fleet to have reserved, and
  // a share further, for what the others reserved after that.
  for (auto& [name, account] : accounts_) {
    account->local_next = std::max(account->local_next, account->horizon + Share(*account));
  }
}

void RedisRateBudget::Answered(std::string_view account_name, const RateLimitFacts& facts) {
  if (!Limited(account_name) || (!facts.throttled && !(facts.remaining && facts.reset))) return;
  asio::post(strand_, [this, name = std::string(account_name), facts] {
    Account& account = Get(name);
    const absl::Time now = absl::Now();
    const bool shared = shared_.mode() != SharedState::Mode::kLocal;
    if (facts.throttled) {
      const absl::Duration pause = facts.retry_after ? *facts.retry_after
                                   : facts.reset     ? *facts.reset
                                                     : std::max(absl::Seconds(1), account.interval);
      if (shared) {
        shared_.redis().Eval(pause_, {BudgetKey(shared_.prefix(), name)},
                             {Micros(pause), EventsChannel(shared_.prefix()), name},
                             [](absl::StatusOr<RedisReply>) {});
      }
      Pause(name, now + pause);
    }
    if (facts.remaining && facts.reset) {
      account.quota = std::max<int64_t>(0, *facts.remaining);
      account.quota_until = now + *facts.reset;
      if (shared) {
        shared_.redis().Eval(
            quota_, {BudgetKey(shared_.prefix(), name)},
            {absl::StrCat(account.quota), Micros(*facts.reset), Micros(account.interval)},
            [](absl::StatusOr<RedisReply>) {});
      }
    }
  });
}

}  // namespace contacts::gateway
