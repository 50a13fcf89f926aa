#ifndef CONTACTS_GATEWAY_SERVER_CORE_BUDGET_TURNS_H_
#define CONTACTS_GATEWAY_SERVER_CORE_BUDGET_TURNS_H_

#include <cstdint>
#include <deque>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "server/core/rate_budget.h"

namespace contacts::gateway {

// The order in which one account's waiting requests get the budget, for every RateBudget:
// round-robin between callers (RateBudget::Ask::caller), one request per caller per turn, and
// within a caller round-robin between its owners (streams), one request per owner per turn; an
// owner's requests in the order asked. A caller with many streams gets no more than one with a
// single stream, and a stream with many pages in flight no more than its caller's other streams.
// An owner asking for its first page goes first among its caller's owners; a new caller joins the
// end of the turn, so that opening streams never jumps the queue. Pure logic, not thread-safe.
class BudgetTurns {
 public:
  using Ticket = uint64_t;

  bool empty() const { return rotation_.empty(); }
  // Queues `ticket` (a new one) of ask.caller and ask.owner, and returns how many tickets go
  // before it (an estimate: each other caller is served once per turn of this one, as long as it
  // has tickets waiting).
  int64_t Add(Ticket ticket, const RateBudget::Ask& ask);
  // Takes a waiting ticket out; false when it is not waiting.
  bool Remove(Ticket ticket);
  // Takes out and returns the next ticket in turn (not empty()); its caller and owner go to the
  // end of their turns.
  Ticket Next();

 private:
  // One caller's waiting tickets, by owner. A caller is here only while it has some.
  struct Caller {
    std::deque<uint64_t> rotation;  // owners with waiting tickets, next to serve first
    absl::flat_hash_map<uint64_t, std::deque<Ticket>> queues;
    size_t waiting = 0;  // tickets in queues
  };
  struct Where {
    std::string caller;
    uint64_t owner;
  };
  // Takes `ticket` out of its caller's books, and the owner and the caller out of their turns
  // when they have nothing else waiting.
  void Drop(const std::string& caller, uint64_t owner, Ticket ticket);

  std::deque<std::string> rotation_;  // callers with waiting tickets, next to serve first
  absl::flat_hash_map<std::string, Caller> callers_;
  absl::flat_hash_map<Ticket, Where> where_;
};

}  // namespace contacts::gateway

#endif  // CONTACTS_GATEWAY_SERVER_CORE_BUDGET_TURNS_H_
