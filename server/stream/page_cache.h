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

namespace contacts::gateway {

struct PageCacheOptions {
  size_t max_bytes = 16 << 20;  // 0 = no cache (requests in flight are still shared)
  absl::Duration ttl = absl::Seconds(30);
};

// Which requests may share an answer: same stream id, list, account, app id, skip and limit
// (one cache per upstream, so the base URL is implied). With minted credentials every caller asks
// with the gateway's own app credentials, so the minted JWT itself is left out (it changes on
// every re-mint, or every request with jti). With the caller's own JWT (pass-through) the key
// holds a SHA-256 of that JWT: a caller never reads a page fetched with credentials it did not
// present itself, since the upstream might refuse its own (expired, revoked, other scope).
std::string PageKey(const PageRequest& request);

// A PageSource in front of another that asks the upstream once for identical requests: a request
// equal (PageKey) to one in flight waits for that one's answer (coalescing), and answers stay
// in a small cache for `ttl`, at most `max_bytes` (estimated), oldest evicted first. Errors are
// given to every waiter but not cached. A waiter that is cancelled gets kCancelled at once; the
// upstream request is cancelled when its last waiter is gone. Cached answers are delivered on
// `io`'s threads, never inside Fetch. `io` and `inner` must outlive this object and its fetches.
// Thread-safe.
class CachingPageSource final : public PageSource {
 public:
  CachingPageSource(boost::asio::io_context& io, PageSource& inner, PageCacheOptions options);

  void Fetch(PageRequest request, std::shared_ptr<Cancellation> cancel, Callback done) override;

  // For metrics: answers served from the cache, requests that joined one in flight, requests
  // sent upstream, and the cache's estimated size.
  int64_t hits() const;
  int64_t coalesced() const;
  int64_t misses() const;
  size_t bytes() const;

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
    std::shared_ptr<Cancellation> cancel = std::make_shared<Cancellation>();
    std::vector<Waiter> waiters;
  };
  struct Entry {
    std::string key;
    std::shared_ptr<const Page> page;
    size_t bytes;
    absl::Time expires;
  };

  void Land(const std::string& key, uint64_t flight, absl::StatusOr<Page> page);
  void Leave(const std::string& key, uint64_t waiter);
  void Store(const std::string& key, std::shared_ptr<const Page> page)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Evict(absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  boost::asio::io_context& io_;
  PageSource& inner_;
  const PageCacheOptions options_;
  mutable absl::Mutex mu_;
  uint64_t last_id_ ABSL_GUARDED_BY(mu_) = 0;  // of waiters and flights
  absl::flat_hash_map<std::string, Flight> flights_ ABSL_GUARDED_BY(mu_);
  std::list<Entry> entries_ ABSL_GUARDED_BY(mu_);  // oldest first
  absl::flat_hash_map<std::string, std::list<Entry>::iterator> index_ ABSL_GUARDED_BY(mu_);
  size_t bytes_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t hits_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t coalesced_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t misses_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace contacts::gateway

#endif  // CONTACTS_GATEWAY_SERVER_STREAM_PAGE_CACHE_H_
