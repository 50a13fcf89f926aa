#ifndef CONTACTS_GATEWAY_SERVER_CORE_PAGE_STORE_H_
#define CONTACTS_GATEWAY_SERVER_CORE_PAGE_STORE_H_

#include <memory>
#include <optional>
#include <string>

#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "server/core/cancellation.h"
#include "server/core/page.h"

namespace contacts::gateway {

// Fetched pages kept for other streams (with a shared store, for other replicas too), and single
// flight among the fetchers: Claim finds a stored page, or makes the caller the one that fetches
// it (a lease), or waits while someone else holds the lease — until that one publishes the page,
// gives the lease up, or lets it expire (a crashed fetcher), whatever comes first.
// Keys are PageKey(request) (stream/page_cache.h): requests with equal keys may share an answer.
//
// Implementations: LocalPageStore (stream/, one process, bounded memory, TTL) and RedisPageStore
// (fleet/, every replica through Redis).
class PageStore {
 public:
  struct Claimed {
    std::optional<Page> page;  // found: no fetch needed
    // Without a page: the caller fetches, then calls Publish or Abandon with this lease. Empty
    // when the store cannot take part right now (e.g. unreachable): fetch without sharing.
    std::string lease;
  };
  using Callback = absl::AnyInvocable<void(absl::StatusOr<Claimed>) &&>;

  virtual ~PageStore() = default;

  // Calls `done` exactly once: inside Claim when the store knows at once (hold no lock around
  // Claim), else later on a thread of the store's. Errors: kDeadlineExceeded when `deadline`
  // passed while waiting for another fetcher, kCancelled.
  virtual void Claim(const std::string& key, absl::Time deadline,
                     std::shared_ptr<Cancellation> cancel, Callback done) = 0;
  // Stores the page under `key` (for the store's TTL) and wakes whoever waits for it.
  virtual void Publish(const std::string& key, const std::string& lease, const Page& page) = 0;
  // The fetch failed: the next claimer (or a waiter) gets the lease. Errors are never stored.
  virtual void Abandon(const std::string& key, const std::string& lease) = 0;
};

}  // namespace contacts::gateway

#endif  // CONTACTS_GATEWAY_SERVER_CORE_PAGE_STORE_H_
