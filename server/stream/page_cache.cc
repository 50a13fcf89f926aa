#include "server/stream/page_cache.h"

#include <openssl/sha.h>

#include <algorithm>
#include <boost/asio/post.hpp>

#include "absl/functional/any_invocable.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
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

CachingPageSource::CachingPageSource(asio::io_context& io, PageSource& inner,
                                     PageCacheOptions options)
    : io_(io), inner_(inner), options_(options) {}

void CachingPageSource::Fetch(PageRequest request, std::shared_ptr<Cancellation> cancel,
                              Callback done) {
  std::string key = PageKey(request);
  const absl::Time now = absl::Now();
  std::shared_ptr<const Page> cached;
  uint64_t waiter = 0, flight = 0;
  std::shared_ptr<Cancellation> flight_cancel;
  {
    absl::MutexLock lock(&mu_);
    Evict(now);
    if (auto hit = index_.find(key); hit != index_.end()) {
      ++hits_;
      Metrics().page_cache_hits.Increment();
      cached = hit->second->page;
    } else {
      waiter = ++last_id_;
      auto [it, fresh] = flights_.try_emplace(key);
      if (fresh) {
        ++misses_;
        it->second.id = flight = ++last_id_;
        flight_cancel = it->second.cancel;
      } else {
        ++coalesced_;
        Metrics().coalesced_pages.Increment();
      }
      it->second.waiters.push_back(Waiter{waiter, cancel, 0, std::move(done), request.deadline});
    }
  }
  if (cached) {
    asio::post(io_, [cached, done = std::move(done)]() mutable { std::move(done)(Page(*cached)); });
    return;
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
  if (flight != 0) {
    inner_.Fetch(std::move(request), std::move(flight_cancel),
                 [this, key = std::move(key), flight](absl::StatusOr<Page> page) {
                   Land(key, flight, std::move(page));
                 });
  }
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
    std::move(done)(absl::CancelledError("the call was cancelled"));
  });
}

void CachingPageSource::Land(const std::string& key, uint64_t flight, absl::StatusOr<Page> page) {
  std::vector<Waiter> waiters;
  std::shared_ptr<const Page> shared;
  {
    absl::MutexLock lock(&mu_);
    auto it = flights_.find(key);
    if (it != flights_.end() && it->second.id == flight) {
      waiters = std::move(it->second.waiters);
      flights_.erase(it);
    }
    if (page.ok() && options_.max_bytes > 0 && options_.ttl > absl::ZeroDuration()) {
      shared = std::make_shared<const Page>(*std::move(page));
      Store(key, shared);
    }
  }
  const absl::Time now = absl::Now();
  absl::AnyInvocable<void() &&> first;
  for (size_t i = 0; i < waiters.size(); ++i) {
    Waiter& w = waiters[i];
    w.cancel->Forget(w.handle);
    absl::StatusOr<Page> result;
    if (shared) {
      result = *shared;
    } else if (i + 1 == waiters.size()) {
      result = std::move(page);
    } else {
      result = page;
    }
    if (result.status().code() == absl::StatusCode::kDeadlineExceeded && now < w.deadline) {
      // Another caller's deadline ended the shared request: this caller may try again.
      result = absl::UnavailableError(
          absl::StrCat(result.status().message(), " (a request shared with another call)"));
    }
    if (i == 0) {
      first = [done = std::move(w.done), result = std::move(result)]() mutable {
        std::move(done)(std::move(result));
      };
    } else {
      // The other waiters through the I/O threads: streams that waited for one page get it in
      // parallel rather than one after the other on this thread (B5: first-message fairness).
      asio::post(io_, [done = std::move(w.done), result = std::move(result)]() mutable {
        std::move(done)(std::move(result));
      });
    }
  }
  if (first) std::move(first)();
}

void CachingPageSource::Store(const std::string& key, std::shared_ptr<const Page> page) {
  const size_t bytes = Bytes(*page);
  if (bytes > options_.max_bytes) return;
  if (auto old = index_.find(key); old != index_.end()) {
    bytes_ -= old->second->bytes;
    entries_.erase(old->second);
    index_.erase(old);
  }
  const absl::Time now = absl::Now();
  entries_.push_back(Entry{key, std::move(page), bytes, now + options_.ttl});
  index_[key] = std::prev(entries_.end());
  bytes_ += bytes;
  Evict(now);
}

void CachingPageSource::Evict(absl::Time now) {
  while (!entries_.empty() && (bytes_ > options_.max_bytes || entries_.front().expires <= now)) {
    bytes_ -= entries_.front().bytes;
    index_.erase(entries_.front().key);
    entries_.pop_front();
  }
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

size_t CachingPageSource::bytes() const {
  absl::MutexLock lock(&mu_);
  return bytes_;
}

}  // namespace contacts::gateway
