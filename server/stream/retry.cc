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

std::optional<absl::Duration> ParseRetryAfter(std::string_view value, absl::Time now) {
  absl::string_view text = absl::StripAsciiWhitespace(AsAbsl(value));
  int64_t seconds = 0;
  if (absl::SimpleAtoi(text, &seconds)) {
    if (seconds < 0) return std::nullopt;
    return absl::Seconds(seconds);
  }
  // IMF-fixdate ("Sun, 06 Nov 1994 08:49:37 GMT"), then the obsolete RFC 850 and asctime forms.
  for (const char* format :
       {"%a, %d %b %Y %H:%M:%S GMT", "%A, %d-%b-%y %H:%M:%S GMT", "%a %b %e %H:%M:%S %Y"}) {
    absl::Time when;
    std::string error;
    if (absl::ParseTime(format, text, absl::UTCTimeZone(), &when, &error)) {
      return std::max(absl::ZeroDuration(), when - now);
    }
  }
  return std::nullopt;
}

absl::Duration RetryDelay(const RetryOptions& options, int retry, const absl::Status& failure,
                          absl::Time now, double random01) {
  if (absl::optional<absl::Cord> header = failure.GetPayload(kRetryAfterPayload)) {
    if (std::optional<absl::Duration> wait = ParseRetryAfter(std::string(*header), now)) {
      return std::min(*wait, options.max_retry_after);
    }
  }
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
  inner_.Fetch(std::move(request), std::move(cancel),
               [this, call](absl::StatusOr<Page> page) mutable {
                 OnResult(std::move(call), std::move(page));
               });
}

void RetryingPageSource::OnResult(std::shared_ptr<Call> call, absl::StatusOr<Page> page) {
  if (page.ok() || !IsRetryable(page.status()) || call->cancel->cancelled()) {
    std::move(call->done)(std::move(page));
    return;
  }
  const absl::Status& failure = page.status();
  if (call->attempts >= options_.max_attempts) {
    std::move(call->done)(absl::Status(
        failure.code(),
        absl::StrCat(failure.message(), " (gave up after ", call->attempts, " attempts)")));
    return;
  }
  thread_local std::minstd_rand random(std::random_device{}());
  const absl::Time now = absl::Now();
  absl::Duration wait = RetryDelay(options_, call->attempts, failure, now,
                                   std::uniform_real_distribution<double>(0, 1)(random));
  if (now + wait >= call->request.deadline) {
    std::move(call->done)(absl::Status(
        failure.code(),
        absl::StrCat(failure.message(), " (not retried: the call's deadline comes first)")));
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
                 .account_id = call->request.account_id});
  asio::post(call->timer.get_executor(), [this, call, wait] {
    call->timer.expires_after(absl::ToChronoNanoseconds(wait));
    Cancellation::Handle handle = call->cancel->OnCancel(
        [call] { asio::post(call->timer.get_executor(), [call] { call->timer.cancel(); }); });
    call->timer.async_wait([this, call, handle](const boost::system::error_code&) {
      call->cancel->Forget(handle);
      if (call->cancel->cancelled()) {
        std::move(call->done)(absl::CancelledError("the call was cancelled"));
        return;
      }
      Attempt(call);
    });
  });
}

}  // namespace contacts::gateway
