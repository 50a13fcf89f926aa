#ifndef CONTACTS_GATEWAY_SERVER_CORE_RATE_BUDGET_H_
#define CONTACTS_GATEWAY_SERVER_CORE_RATE_BUDGET_H_

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/time/time.h"
#include "server/core/cancellation.h"
#include "server/core/page_source.h"

namespace contacts::gateway {

// The upstream's request budget per account (Kore.ai: 60 requests a minute per account), shared by
// every stream of the account, and with a shared store by every replica. Asked once before every
// upstream request, retries included; told what the upstream answered. In the manner of Envoy's
// RateLimit::Client: asynchronous, a grant arrives through a callback, no thread ever blocks.
//
// Implementations: LocalRateBudget (stream/, one process) and RedisRateBudget (fleet/, every
// replica through Redis).
class RateBudget {
 public:
  struct Ask {
    std::string account;
    // Who asks: the caller's verified identity, or a hash of its own JWT (pass-through), "" for
    // callers the gateway does not tell apart. An account's callers take turns first, one request
    // each, so that one caller's many streams cannot take the whole budget.
    std::string caller{};
    uint64_t owner = 0;  // the stream asking: then a caller's streams take turns, one request each
    absl::Time deadline = absl::InfiniteFuture();  // refuse at once if nothing is free before it
    bool first_page = false;  // a stream's first page goes before later pages of running streams
  };
  // OK: send the request now. kDeadlineExceeded: no request is free before ask.deadline (nothing
  // was reserved; `retry_after` says when one will be, as far as known). kCancelled: cancelled
  // while waiting.
  struct Decision {
    absl::Status status;
    absl::Duration retry_after = absl::ZeroDuration();
  };
  using Callback = absl::AnyInvocable<void(Decision) &&>;

  virtual ~RateBudget() = default;

  // Whether requests of `account` are budgeted at all; an unbudgeted account's requests go
  // without Acquire.
  virtual bool Limited(std::string_view account) const = 0;

  // Calls `done` exactly once, when a request of ask.account may go (or with the refusal above):
  // never inside Acquire, on a thread of the budget's. Waiting costs no thread.
  virtual void Acquire(Ask ask, std::shared_ptr<Cancellation> cancel, Callback done) = 0;

  // What the upstream answered to a granted request of `account` (every answer, errors included):
  // a 429 pauses the whole account for its Retry-After (else its reset, else a second);
  // RateLimit-Remaining/-Reset cap what is granted until the reset.
  virtual void Answered(std::string_view account, const RateLimitFacts& facts) = 0;
};

}  // namespace contacts::gateway

#endif  // CONTACTS_GATEWAY_SERVER_CORE_RATE_BUDGET_H_
