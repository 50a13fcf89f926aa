#ifndef CONTACTS_GATEWAY_SERVER_STREAM_BUDGETED_PAGE_SOURCE_H_
#define CONTACTS_GATEWAY_SERVER_STREAM_BUDGETED_PAGE_SOURCE_H_

#include <memory>

#include "server/core/page_source.h"
#include "server/core/rate_budget.h"

namespace contacts::gateway {

// A PageSource that spends the account's RateBudget: each request (each attempt, when retries sit
// above it) waits for a grant before it goes to `inner`, and every answer is reported back to the
// budget (429, Retry-After, RateLimit-Remaining/-Reset). Requests of unbudgeted accounts pass
// straight through. A refused or cancelled wait ends the fetch with the budget's status
// (kDeadlineExceeded with RateLimitFacts::retry_after saying when a request is free, kCancelled).
// `budget` and `inner` must outlive this object and its fetches. Thread-safe.
class BudgetedPageSource final : public PageSource {
 public:
  BudgetedPageSource(RateBudget& budget, PageSource& inner) : budget_(budget), inner_(inner) {}

  void Fetch(PageRequest request, std::shared_ptr<Cancellation> cancel, Callback done) override;

 private:
  RateBudget& budget_;
  PageSource& inner_;
};

}  // namespace contacts::gateway

#endif  // CONTACTS_GATEWAY_SERVER_STREAM_BUDGETED_PAGE_SOURCE_H_
