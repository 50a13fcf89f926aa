#ifndef CONTACTS_GATEWAY_SERVER_STREAM_PAGE_CACHE_H_
#define CONTACTS_GATEWAY_SERVER_STREAM_PAGE_CACHE_H_

#include <boost/asio/io_context.hpp>
#include <cstdint>
#include <list>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "server/core/page_source.h"
#include "server/core/page_store.h"

namespace contacts::gateway {

// Which requests may share an answer: same stream id, list, account, app id, skip and limit
// (one cache per upstream, so the base URL is implied). With minted credentials every caller asks
// with the gateway's own app credentials, so the minted JWT itself is left out (it changes on
// every re-mint, or every request with jti). With the caller's own JWT (pass-through) the key
// holds a SHA-256 of that JWT: a caller never reads a page fetched with credentials it did not
// present itself, since the upstream might refuse its own (expired, revoked, other scope).
std::string PageKey(const PageRequest& request);

// A PageSource in front of another that asks the upstream once for identical requests (PageKey):
// in this process, a request equal to one in flight waits for that one's answer (coalescing);
// beyond it, the PageStore finds a page already stored, or lets one fetcher (of every process
// sharing the store) fetch while the others wait. Fetched pages go to the store; errors are given
// to every waiter but never stored. A waiter that is cancelled gets kCancelled at once; the fetch
// is cancelled when its last waiter is gone. Answers are delivered on `io`'s threads, never inside
// Fetch. `io`, `store` and `inner` must outlive this object and its fetches. Thread-safe.
class CachingPageSource final : public PageSource {
 public:
  CachingPageSource(boost::asio::io_context& io, PageStore& store, PageSource& inner);

  void Fetch(PageRequest request, std::shared_ptr<Cancellation> cancel, Callback done) override;

  // For tests: pages found in the store, requests that joined one in flight, and claims that
  // fetched upstream.
  int64_t hits() const;
  int64_t coalesced() const;
  int64_t misses() const;

 private:
  struct Waiter {
    uint64_t id;
    std::shared_ptr<Cancellation> cancel;
    Cancellation::Handle handle;
    Callback done;
    absl::Time deadline;
  };
  struct Flight {
    uint64_t id;
    absl::Time deadline;  // of the request that started it: the one the fetch runs with
    std::shared_ptr<Cancellation> cancel = std::make_shared<Cancellation>();
    std::vector<Waiter> waiters;
  };

  void Claimed(const std::string& key, uint64_t flight, PageRequest request,
               std::shared_ptr<Cancellation> cancel, absl::StatusOr<PageStore::Claimed> claim);
  void Land(const std::string& key, uint64_t flight, PageResult result);
  void Leave(const std::string& key, uint64_t waiter);

  boost::asio::io_context& io_;
  PageStore& store_;
  PageSource& inner_;
  mutable absl::Mutex mu_;
  uint64_t last_id_ ABSL_GUARDED_BY(mu_) = 0;  // of waiters and flights
  absl::flat_hash_map<std::string, Flight> flights_ ABSL_GUARDED_BY(mu_);
  int64_t hits_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t coalesced_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t misses_ ABSL_GUARDED_BY(mu_) = 0;
};

struct PageCacheOptions {
  size_t max_bytes = 16 << 20;  // 0 = no cache (requests in flight are still shared)
  absl::Duration ttl = absl::Seconds(30);
};

// The PageStore of one process: answers stay for `ttl`, at most `max_bytes` (estimated), oldest
// evicted first. No other fetcher can hold a lease here (CachingPageSource coalesces this
// process's requests), so Claim answers at once, inside the call: the page, or a lease.
// Thread-safe.
class LocalPageStore final : public PageStore {
 public:
  explicit LocalPageStore(PageCacheOptions options);

  void Claim(const std::string& key, absl::Time deadline, std::shared_ptr<Cancellation> cancel,
             Callback done) override;
  void Publish(const std::string& key, const std::string& lease, const Page& page) override;
  void Abandon(const std::string& key, const std::string& lease) override {}

  size_t bytes() const;  // for tests: the estimated size of what is stored

 private:
  struct Entry {
    std::string key;
    std::shared_ptr<const Page> page;
    size_t bytes;
    absl::Time expires;
  };
  void Evict(absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const PageCacheOptions options_;
  mutable absl::Mutex mu_;
  std::list<Entry> entries_ ABSL_GUARDED_BY(mu_);  // oldest first
  absl::flat_hash_map<std::string, std::list<Entry>::iterator> index_ ABSL_GUARDED_BY(mu_);
  size_t bytes_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace contacts::gateway

#endif  // CONTACTS_GATEWAY_SERVER_STREAM_PAGE_CACHE_H_
