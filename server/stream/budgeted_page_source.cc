#include "server/stream/budgeted_page_source.h"

#include <string>
#include <utility>

#include "server/core/error_reason.h"

namespace contacts::gateway {

void BudgetedPageSource::Fetch(PageRequest request, std::shared_ptr<Cancellation> cancel,
                               Callback done) {
  if (!budget_.Limited(request.account_id)) {
    inner_.Fetch(std::move(request), std::move(cancel), std::move(done));
    return;
  }
  RateBudget::Ask ask{request.account_id, request.caller, request.owner, request.deadline,
                      request.first_page};
  budget_.Acquire(
      std::move(ask), cancel,
      [this, request = std::move(request), cancel,
       done = std::move(done)](RateBudget::Decision decision) mutable {
        if (!decision.status.ok()) {
          RateLimitFacts facts;
          if (decision.retry_after > absl::ZeroDuration()) facts.retry_after = decision.retry_after;
          const char* why = decision.status.code() == absl::StatusCode::kCancelled
                                ? reason::kCancelled
                                : reason::kRateBudgetExhausted;
          std::move(done)(PageResult{WithReason(std::move(decision.status), why), facts});
          return;
        }
        std::string account = request.account_id;
        inner_.Fetch(std::move(request), std::move(cancel),
                     [this, account = std::move(account),
                      done = std::move(done)](PageResult result) mutable {
                       budget_.Answered(account, result.rate_limit);
                       std::move(done)(std::move(result));
                     });
      });
}

}  // namespace contacts::gateway
