#ifndef CONTACTS_GATEWAY_SERVER_CORE_PAGE_SOURCE_H_
#define CONTACTS_GATEWAY_SERVER_CORE_PAGE_SOURCE_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "server/core/cancellation.h"
#include "server/core/page.h"
#include "server/core/trace.h"

namespace contacts::gateway {

// Upstream credentials for one request: headers `auth` (the JWT) and `iid` (the app id).
struct UpstreamCredentials {
  std::string jwt;
  std::string app_id;
};

// What an upstream answer said about the account's request budget (any answer, errors included);
// empty for answers that did not come from the upstream just now (cached pages, local errors).
// Every member has an initializer, so that designated initializers may leave any out.
struct RateLimitFacts {
  bool throttled = false;  // 429, or the upstream's rate-limit message
  std::optional<absl::Duration>
      retry_after{};                      // its Retry-After (seconds or HTTP-date), as a delay
  std::optional<int64_t> remaining{};     // RateLimit-Remaining / X-RateLimit-Remaining
  std::optional<absl::Duration> reset{};  // RateLimit-Reset, from the answer until refill
};

// One page of one contact list, as the upstream is asked for it.
struct PageRequest {
  std::string stream_id;
  std::string list_id;
  std::string account_id;
  int64_t skip = 0;
  int32_t limit = 0;
  UpstreamCredentials credentials;
  bool caller_credentials = false;  // `credentials` are the caller's own (pass-through), not minted
  std::string caller;               // who asks, for fairness between callers (RateBudget::Ask)
  uint64_t owner = 0;               // the stream asking, for fairness between streams
  bool first_page = false;          // the stream's first: goes before running streams' later pages
  TraceContext trace;               // the stream's span: each upstream request is a child of it
  absl::Time deadline = absl::InfiniteFuture();  // the caller's; bounds every wait
};

// The answer to one Fetch: the page or why there is none, and what the upstream's answer said
// about the account's budget.
struct PageResult {
  absl::StatusOr<Page> page;
  RateLimitFacts rate_limit;
};

// Where pages come from. The gateway stacks decorators (stream/: page cache, retries, rate budget)
// on the Kore.ai adapter (upstream/kore_client.h); tests use a scripted fake
// (tests/unit/fake_page_source.h).
class PageSource {
 public:
  using Callback = absl::AnyInvocable<void(PageResult) &&>;
  virtual ~PageSource() = default;

  // Fetches one page and calls `done` exactly once, never inside Fetch, on a thread of the
  // source's choosing. Errors carry the codes of upstream/http_status.h; kCancelled after `cancel`
  // fired; kDeadlineExceeded when the request's deadline passed (or a wait could not end before
  // it).
  virtual void Fetch(PageRequest request, std::shared_ptr<Cancellation> cancel, Callback done) = 0;
};

}  // namespace contacts::gateway

#endif  // CONTACTS_GATEWAY_SERVER_CORE_PAGE_SOURCE_H_
