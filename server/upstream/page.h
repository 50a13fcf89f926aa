#ifndef CONTACTS_GATEWAY_SERVER_UPSTREAM_PAGE_H_
#define CONTACTS_GATEWAY_SERVER_UPSTREAM_PAGE_H_

#include <cstdint>
#include <optional>
#include <vector>

#include "absl/time/time.h"
#include "contacts/v1/contacts.pb.h"

namespace contacts::gateway {

// What an upstream answer's headers said about the account's rate limit (RateLimit-Remaining /
// RateLimit-Reset, or their X-RateLimit-* twins); nullopt where it said nothing.
struct RateLimitHint {
  std::optional<int64_t> remaining;     // requests left before `reset`
  std::optional<absl::Duration> reset;  // from the answer until the quota refills
};

// On an error status the same facts travel as payloads: the raw Retry-After header value, and
// RateLimitHint as decimal numbers (reset in whole seconds).
inline constexpr char kRetryAfterPayload[] = "retry-after";
inline constexpr char kRateLimitRemainingPayload[] = "ratelimit-remaining";
inline constexpr char kRateLimitResetPayload[] = "ratelimit-reset";

// One answer of the upstream's getAllContacts endpoint, as parsed: the contacts in upstream order
// and the paging facts the upstream reported. A fact the upstream left out (or sent as null) is
// std::nullopt; the Pager decides what a missing fact means.
struct Page {
  std::vector<contacts::v1::Contact> contacts;
  std::optional<int64_t> skip;           // echoed offset of the first contact
  std::optional<int64_t> limit;          // echoed page size
  std::optional<bool> has_more;          // more contacts after this page
  std::optional<int64_t> total_results;  // size of the whole list
  std::optional<int64_t> total_pages;
  RateLimitHint rate_limit;              // from the HTTP headers
};

}  // namespace contacts::gateway

#endif  // CONTACTS_GATEWAY_SERVER_UPSTREAM_PAGE_H_
