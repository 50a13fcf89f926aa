#ifndef CONTACTS_GATEWAY_SERVER_STREAM_RETRY_H_
#define CONTACTS_GATEWAY_SERVER_STREAM_RETRY_H_

#include <boost/asio/io_context.hpp>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "server/core/page_source.h"

namespace contacts::gateway {

struct RetryOptions {
  int max_attempts = 6;  // per page, the first included; 1 = no retries
  absl::Duration initial_backoff = absl::Milliseconds(250);
  absl::Duration max_backoff = absl::Seconds(10);
  absl::Duration max_retry_after = absl::Seconds(60);  // longer Retry-After values are capped
};

// Failures worth another attempt: kUnavailable (5xx, timeouts, resets), kResourceExhausted (429)
// and kInternal from a page source (a truncated or garbled body).
bool IsRetryable(const absl::Status& status);

// The wait before retry number `retry` (1 for the first retry): the upstream's Retry-After
// (capped) when its answer had one, else full-jitter exponential backoff,
// `random01` * min(max_backoff, initial_backoff * 2^(retry-1)).
absl::Duration RetryDelay(const RetryOptions& options, int retry, const RateLimitFacts& answer,
                          double random01);

// A PageSource that retries another one: retryable failures are tried again after RetryDelay,
// up to max_attempts, never waiting past the request's deadline, and stopping at once when the
// stream is cancelled. The final failure keeps its code, with the attempts named in its message.
// Timers run on `io`, which must outlive this object and the fetches it started.
class RetryingPageSource final : public PageSource {
 public:
  RetryingPageSource(boost::asio::io_context& io, PageSource& inner, RetryOptions options);

  void Fetch(PageRequest request, std::shared_ptr<Cancellation> cancel, Callback done) override;

 private:
  struct Call;
  void Attempt(std::shared_ptr<Call> call);
  void OnResult(std::shared_ptr<Call> call, PageResult result);

  boost::asio::io_context& io_;
  PageSource& inner_;
  const RetryOptions options_;
};

}  // namespace contacts::gateway

#endif  // CONTACTS_GATEWAY_SERVER_STREAM_RETRY_H_
