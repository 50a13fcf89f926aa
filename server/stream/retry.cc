#include "server/stream/retry.h"

#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <cmath>
#include <random>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "server/core/encoding.h"
#include "server/core/error_reason.h"
#include "server/core/log.h"
#include "server/core/metrics.h"

namespace contacts::gateway {

namespace asio = boost::asio;

bool IsRetryable(const absl::Status& status) {
  switch (status.code()) {
    case absl::StatusCode::kUnavailable:
    case absl::StatusCode::kResourceExhausted:
    case absl::StatusCode::kInternal:
      return true;
    default:
      return false;
  }
}

absl::Duration RetryDelay(const RetryOptions& options, int retry, const RateLimitFacts& answer,
                          double random01) {
  if (answer.retry_after) return std::min(*answer.retry_after, options.max_retry_after);
  absl::Duration ceiling = options.initial_backoff * std::pow(2.0, std::min(retry - 1, 30));
  return std::min(options.max_backoff, ceiling) * random01;
}

// One Fetch through all its attempts. The timer lives on its own strand; every use of it is
// posted there.
struct RetryingPageSource::Call {
  Call(asio::io_context& io, PageRequest r, std::shared_ptr<Cancellation> c, Callback d)
      : request(std::move(r)),
        cancel(std::move(c)),
        done(std::move(d)),
        timer(asio::make_strand(io)) {}
  PageRequest request;
  std::shared_ptr<Cancellation> cancel;
  Callback done;
  asio::steady_timer timer;
  int attempts = 0;
};

RetryingPageSource::RetryingPageSource(asio::io_context& io, PageSource& inner,
                                       RetryOptions options)
    : io_(io), inner_(inner), options_(options) {}

void RetryingPageSource::Fetch(PageRequest request, std::shared_ptr<Cancellation> cancel,
                               Callback done) {
  Attempt(std::make_shared<Call>(io_, std::move(request), std::move(cancel), std::move(done)));
}

void RetryingPageSource::Attempt(std::shared_ptr<Call> call) {
  ++call->attempts;
  PageRequest request = call->request;
  std::shared_ptr<Cancellation> cancel = call->cancel;
  inner_.Fetch(std::move(request), std::move(cancel), [this, call](PageResult result) mutable {
    OnResult(std::move(call), std::move(result));
  });
}

void RetryingPageSource::OnResult(std::shared_ptr<Call> call, PageResult result) {
  if (result.page.ok() || !IsRetryable(result.page.status()) || call->cancel->cancelled()) {
    std::move(call->done)(std::move(result));
    return;
  }
  const absl::Status failure = result.page.status();
  // The last answer's facts go with the final failure (its Retry-After tells the caller when).
  auto give_up = [&](std::string_view why) {
    result.page =
        absl::Status(failure.code(), absl::StrCat(failure.message(), " (", AsAbsl(why), ")"));
    std::move(call->done)(std::move(result));
  };
  if (call->attempts >= options_.max_attempts) {
    give_up(absl::StrCat("gave up after ", call->attempts, " attempts"));
    return;
  }
  thread_local std::minstd_rand random(std::random_device{}());
  absl::Duration wait = RetryDelay(options_, call->attempts, result.rate_limit,
                                   std::uniform_real_distribution<double>(0, 1)(random));
  if (absl::Now() + wait >= call->request.deadline) {
    give_up("not retried: the call's deadline comes first");
    return;
  }
  Metrics().upstream_retries.With({absl::StatusCodeToString(failure.code())}).Increment();
  Log(Severity::kInfo,
      absl::StrCat("retrying skip=", call->request.skip, " in ", absl::FormatDuration(wait),
                   " (attempt ", call->attempts + 1, " of ", options_.max_attempts,
                   "): ", failure.message()),
      LogContext{.request_id = "",
                 .stream_id = call->request.stream_id,
                 .list_id = call->request.list_id,
                 .account_id = call->request.account_id,
                 .trace_id = call->request.trace.trace_id,
                 .span_id = call->request.trace.span_id});
  asio::post(call->timer.get_executor(), [this, call, wait] {
    call->timer.expires_after(absl::ToChronoNanoseconds(wait));
    Cancellation::Handle handle = call->cancel->OnCancel(
        [call] { asio::post(call->timer.get_executor(), [call] { call->timer.cancel(); }); });
    call->timer.async_wait([this, call, handle](const boost::system::error_code&) {
      call->cancel->Forget(handle);
      if (call->cancel->cancelled()) {
        std::move(call->done)(PageResult{absl::CancelledError("the call was cancelled"), {}});
        return;
      }
      Attempt(call);
    });
  });
}

}  // namespace contacts::gateway
