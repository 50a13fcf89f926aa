#include "server/core/budget_turns.h"

#include <algorithm>

namespace contacts::gateway {

int64_t BudgetTurns::Add(Ticket ticket, const RateBudget::Ask& ask) {
  Caller& c = callers_[ask.caller];
  if (c.waiting == 0) rotation_.push_back(ask.caller);
  std::deque<Ticket>& queue = c.queues[ask.owner];
  // This caller's grants before this ticket's. A new owner joins the end of its caller's turn (the
  // front for a stream's first page); an owner already waiting is served after its own.
  int64_t turns = 0;
  if (!queue.empty()) {
    turns = static_cast<int64_t>(queue.size());
  } else if (ask.first_page) {
    c.rotation.push_front(ask.owner);
  } else {
    turns = static_cast<int64_t>(c.rotation.size());
    c.rotation.push_back(ask.owner);
  }
  queue.push_back(ticket);
  ++c.waiting;
  where_.emplace(ticket, Where{ask.caller, ask.owner});
  // Each other caller is served once before each of those turns (and once more before this one
  // when it comes first in the rotation), as long as it has tickets waiting.
  int64_t ahead = turns;
  bool before = true;
  for (const std::string& other : rotation_) {
    if (other == ask.caller) {
      before = false;
      continue;
    }
    ahead += std::min(static_cast<int64_t>(callers_.at(other).waiting), turns + (before ? 1 : 0));
  }
  return ahead;
}

void BudgetTurns::Drop(const std::string& caller, uint64_t owner, Ticket ticket) {
  auto it = callers_.find(caller);
  Caller& c = it->second;
  std::deque<Ticket>& queue = c.queues[owner];
  queue.erase(std::find(queue.begin(), queue.end(), ticket));
  --c.waiting;
  if (queue.empty()) {
    c.queues.erase(owner);
    c.rotation.erase(std::find(c.rotation.begin(), c.rotation.end(), owner));
  }
  if (c.waiting == 0) {
    callers_.erase(it);
    rotation_.erase(std::find(rotation_.begin(), rotation_.end(), caller));
  }
}

bool BudgetTurns::Remove(Ticket ticket) {
  auto it = where_.find(ticket);
  if (it == where_.end()) return false;
  const Where where = std::move(it->second);
  where_.erase(it);
  Drop(where.caller, where.owner, ticket);
  return true;
}

BudgetTurns::Ticket BudgetTurns::Next() {
  // The next caller's next owner's oldest ticket; both go to the end of their turns (Drop takes
  // them out when that was their last).
  const std::string caller = rotation_.front();
  rotation_.pop_front();
  rotation_.push_back(caller);
  Caller& c = callers_.at(caller);
  const uint64_t owner = c.rotation.front();
  c.rotation.pop_front();
  c.rotation.push_back(owner);
  const Ticket ticket = c.queues.at(owner).front();
  where_.erase(ticket);
  Drop(caller, owner, ticket);
  return ticket;
}

}  // namespace contacts::gateway
