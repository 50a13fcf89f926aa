#include "server/stream/page_cache.h"

#include <openssl/sha.h>

#include <algorithm>
#include <boost/asio/post.hpp>

#include "absl/functional/any_invocable.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "server/core/error_reason.h"
#include "server/core/metrics.h"

namespace contacts::gateway {
namespace {

namespace asio = boost::asio;

// What a page costs in memory.
size_t Bytes(const Page& page) { return sizeof(Page) + page.contacts.footprint(); }

}  // namespace

std::string PageKey(const PageRequest& request) {
  // Ids are validated ([A-Za-z0-9._-]), so '/' cannot occur in them.
  std::string key =
      absl::StrCat(request.stream_id, "/", request.list_id, "/", request.account_id, "/",
                   request.credentials.app_id, "/", request.skip, "/", request.limit);
  if (request.caller_credentials) {
    unsigned char digest[SHA256_DIGEST_LENGTH];
    SHA256(reinterpret_cast<const unsigned char*>(request.credentials.jwt.data()),
           request.credentials.jwt.size(), digest);
    absl::StrAppend(&key, "/",
                    absl::BytesToHexString(absl::string_view(reinterpret_cast<char*>(digest), 16)));
  }
  return key;
}

CachingPageSource::CachingPageSource(asio::io_context& io, PageStore& store, PageSource& inner)
    : io_(io), store_(store), inner_(inner) {}

void CachingPageSource::Fetch(PageRequest request, std::shared_ptr<Cancellation> cancel,
                              Callback done) {
  std::string key = PageKey(request);
  uint64_t waiter = 0, flight = 0;
  std::shared_ptr<Cancellation> flight_cancel;
  {
    absl::MutexLock lock(&mu_);
    waiter = ++last_id_;
    auto [it, fresh] = flights_.try_emplace(key);
    if (fresh) {
      it->second.id = flight = ++last_id_;
      it->second.deadline = request.deadline;
      flight_cancel = it->second.cancel;
    } else {
      ++coalesced_;
      Metrics().coalesced_pages.Increment();
    }
    it->second.waiters.push_back(Waiter{waiter, cancel, 0, std::move(done), request.deadline});
  }
  Cancellation::Handle handle = cancel->OnCancel([this, key, waiter] { Leave(key, waiter); });
  bool kept = false;
  {
    absl::MutexLock lock(&mu_);
    if (auto it = flights_.find(key); it != flights_.end()) {
      for (Waiter& w : it->second.waiters) {
        if (w.id == waiter) {
          w.handle = handle;
          kept = true;
        }
      }
    }
  }
  if (!kept) cancel->Forget(handle);  // already answered or gone
  if (flight == 0) return;
  const absl::Time deadline = request.deadline;
  store_.Claim(key, deadline, flight_cancel,
               [this, key, flight, request = std::move(request),
                flight_cancel](absl::StatusOr<PageStore::Claimed> claim) mutable {
                 Claimed(key, flight, std::move(request), std::move(flight_cancel),
                         std::move(claim));
               });
}

void CachingPageSource::Claimed(const std::string& key, uint64_t flight, PageRequest request,
                                std::shared_ptr<Cancellation> cancel,
                                absl::StatusOr<PageStore::Claimed> claim) {
  // A store may answer inside Claim, i.e. inside Fetch: answers without a fetch go through `io`.
  auto land_later = [this, key, flight](PageResult result) {
    asio::post(io_, [this, key, flight, result = std::move(result)]() mutable {
      Land(key, flight, std::move(result));
    });
  };
  if (!claim.ok()) {
    land_later(PageResult{claim.status(), {}});
    return;
  }
  if (claim->page) {
    {
      absl::MutexLock lock(&mu_);
      ++hits_;
    }
    Metrics().page_cache_hits.Increment();
    land_later(PageResult{*std::move(claim->page), {}});
    return;
  }
  {
    absl::MutexLock lock(&mu_);
    ++misses_;
  }
  inner_.Fetch(std::move(request), std::move(cancel),
               [this, key, flight, lease = std::move(claim->lease)](PageResult result) {
                 if (!lease.empty()) {
                   if (result.page.ok()) {
                     store_.Publish(key, lease, *result.page);
                   } else {
                     store_.Abandon(key, lease);
                   }
                 }
                 Land(key, flight, std::move(result));
               });
}

void CachingPageSource::Leave(const std::string& key, uint64_t waiter) {
  Callback done;
  std::shared_ptr<Cancellation> abandoned;
  {
    absl::MutexLock lock(&mu_);
    auto it = flights_.find(key);
    if (it == flights_.end()) return;
    std::vector<Waiter>& waiters = it->second.waiters;
    auto w = std::find_if(waiters.begin(), waiters.end(),
                          [&](const Waiter& w) { return w.id == waiter; });
    if (w == waiters.end()) return;
    done = std::move(w->done);
    waiters.erase(w);
    if (waiters.empty()) {
      abandoned = std::move(it->second.cancel);
      flights_.erase(it);
    }
  }
  if (abandoned) abandoned->Cancel();
  asio::post(io_, [done = std::move(done)]() mutable {
    std::move(done)(PageResult{absl::CancelledError("the call was cancelled"), {}});
  });
}

void CachingPageSource::Land(const std::string& key, uint64_t flight, PageResult result) {
  std::vector<Waiter> waiters;
  absl::Time deadline;
  {
    absl::MutexLock lock(&mu_);
    auto it = flights_.find(key);
    if (it == flights_.end() || it->second.id != flight) return;  // every waiter left
    waiters = std::move(it->second.waiters);
    deadline = it->second.deadline;
    flights_.erase(it);
  }
  // The first waiter on this thread, the others through the I/O threads: streams that waited for
  // one page get it in parallel rather than one after the other (time to first message).
  absl::AnyInvocable<void() &&> first;
  for (size_t i = 0; i < waiters.size(); ++i) {
    Waiter& w = waiters[i];
    w.cancel->Forget(w.handle);
    PageResult mine = i + 1 == waiters.size() ? std::move(result) : result;
    if (mine.page.status().code() == absl::StatusCode::kDeadlineExceeded && w.deadline > deadline) {
      // The deadline that ran out was the fetching call's, not this caller's: it may try again.
      mine.page =
          WithReason(absl::UnavailableError(absl::StrCat(
                         mine.page.status().message(),
                         " (the request was shared with a call whose deadline came first)")),
                     reason::kUpstreamUnavailable);
    }
    auto deliver = [done = std::move(w.done), mine = std::move(mine)]() mutable {
      std::move(done)(std::move(mine));
    };
    if (i == 0) {
      first = std::move(deliver);
    } else {
      asio::post(io_, std::move(deliver));
    }
  }
  if (first) std::move(first)();
}

int64_t CachingPageSource::hits() const {
  absl::MutexLock lock(&mu_);
  return hits_;
}

int64_t CachingPageSource::coalesced() const {
  absl::MutexLock lock(&mu_);
  return coalesced_;
}

int64_t CachingPageSource::misses() const {
  absl::MutexLock lock(&mu_);
  return misses_;
}

LocalPageStore::LocalPageStore(PageCacheOptions options) : options_(options) {}

void LocalPageStore::Claim(const std::string& key, absl::Time deadline,
                           std::shared_ptr<Cancellation> cancel, Callback done) {
  Claimed claimed;
  {
    absl::MutexLock lock(&mu_);
    Evict(absl::Now());
    if (auto hit = index_.find(key); hit != index_.end()) {
      claimed.page = *hit->second->page;
    } else {
      claimed.lease = "local";
    }
  }
  std::move(done)(std::move(claimed));
}

void LocalPageStore::Publish(const std::string& key, const std::string& lease, const Page& page) {
  if (options_.max_bytes == 0 || options_.ttl <= absl::ZeroDuration()) return;
  auto shared = std::make_shared<const Page>(page);
  const size_t bytes = Bytes(*shared);
  if (bytes > options_.max_bytes) return;
  const absl::Time now = absl::Now();
  absl::MutexLock lock(&mu_);
  if (auto old = index_.find(key); old != index_.end()) {
    bytes_ -= old->second->bytes;
    entries_.erase(old->second);
    index_.erase(old);
  }
  entries_.push_back(Entry{key, std::move(shared), bytes, now + options_.ttl});
  index_[key] = std::prev(entries_.end());
  bytes_ += bytes;
  Evict(now);
}

void LocalPageStore::Evict(absl::Time now) {
  while (!entries_.empty() && (bytes_ > options_.max_bytes || entries_.front().expires <= now)) {
    bytes_ -= entries_.front().bytes;
    index_.erase(entries_.front().key);
    entries_.pop_front();
  }
}

size_t LocalPageStore::bytes() const {
  absl::MutexLock lock(&mu_);
  return bytes_;
}

}  // namespace contacts::gateway
