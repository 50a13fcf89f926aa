#include "server/stream/credential_memory.h"

#include <openssl/sha.h>

#include <boost/asio/post.hpp>
#include <optional>

#include "absl/strings/str_cat.h"
#include "server/core/encoding.h"
#include "server/core/log.h"
#include "server/core/metrics.h"

namespace contacts::gateway {
namespace {

namespace asio = boost::asio;

// SHA-256 over (app id, JWT, account), each prefixed with its length.
std::string Key(const PageRequest& request) {
  std::string text;
  for (const std::string* part :
       {&request.credentials.app_id, &request.credentials.jwt, &request.account_id}) {
    AppendVarint(&text, part->size());
    text.append(*part);
  }
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(text.data()), text.size(), digest);
  return std::string(reinterpret_cast<const char*>(digest), sizeof digest);
}

bool IsRefusal(const absl::Status& status) {
  return status.code() == absl::StatusCode::kUnauthenticated ||
         status.code() == absl::StatusCode::kPermissionDenied;
}

}  // namespace

CredentialMemoryPageSource::CredentialMemoryPageSource(asio::io_context& io, PageSource& inner,
                                                       CredentialMemoryOptions options)
    : io_(io), inner_(inner), options_(options) {}

void CredentialMemoryPageSource::Fetch(PageRequest request, std::shared_ptr<Cancellation> cancel,
                                       Callback done) {
  if (!request.caller_credentials || options_.ttl <= absl::ZeroDuration()) {
    inner_.Fetch(std::move(request), std::move(cancel), std::move(done));
    return;
  }
  std::string key = Key(request);
  std::optional<absl::Status> refusal;
  bool probe = false;
  uint64_t waiter = 0;
  {
    absl::MutexLock lock(&mu_);
    auto it = entries_.find(key);
    if (it != entries_.end() && it->second.state != Entry::State::kProbing &&
        it->second.expires <= absl::Now()) {
      entries_.erase(it);
      it = entries_.end();
    }
    if (it == entries_.end()) {
      entries_.try_emplace(key);  // kProbing: this request asks
      probe = true;
    } else if (it->second.state == Entry::State::kRefused) {
      refusal = it->second.refusal;
    } else if (it->second.state == Entry::State::kProbing) {
      waiter = ++last_waiter_;
      it->second.queue.push_back(Waiter{waiter, std::move(request), cancel, 0, std::move(done)});
    }
  }
  if (refusal) {
    Refuse(std::move(done), *std::move(refusal));
    return;
  }
  if (waiter == 0) {
    Forward(key, probe, std::move(request), std::move(cancel), std::move(done));
    return;
  }
  // Waiting: a cancelled call leaves the queue at once.
  Cancellation::Handle handle = cancel->OnCancel([this, key, waiter] { Leave(key, waiter); });
  {
    absl::MutexLock lock(&mu_);
    if (auto it = entries_.find(key); it != entries_.end()) {
      for (Waiter& w : it->second.queue) {
        if (w.id == waiter) {
          w.handle = handle;
          return;
        }
      }
    }
  }
  cancel->Forget(handle);  // already on its way, or gone
}

void CredentialMemoryPageSource::Forward(const std::string& key, bool probe, PageRequest request,
                                         std::shared_ptr<Cancellation> cancel, Callback done) {
  std::string account = request.account_id;
  inner_.Fetch(std::move(request), std::move(cancel),
               [this, key, account = std::move(account), probe,
                done = std::move(done)](PageResult result) mutable {
                 Answered(key, account, probe, result);
                 std::move(done)(std::move(result));
               });
}

void CredentialMemoryPageSource::Answered(const std::string& key, const std::string& account,
                                          bool probe, const PageResult& result) {
  const absl::Status status = result.page.status();
  const bool accepted = status.ok();
  const bool refused = IsRefusal(status);
  std::deque<Waiter> released;  // go on (accepted) or are refused
  std::optional<Waiter> next_probe;
  bool newly_refused = false;
  {
    absl::MutexLock lock(&mu_);
    const absl::Time now = absl::Now();
    auto it = entries_.find(key);
    if (accepted || refused) {
      if (it == entries_.end()) it = entries_.try_emplace(key).first;
      Entry& entry = it->second;
      released.swap(entry.queue);
      // An accepted verdict is refreshed only when it is half gone, so that a busy stream does
      // not add an element to decided_ per page.
      const bool refresh = refused || entry.state != Entry::State::kAccepted ||
                           entry.expires - now < options_.ttl / 2;
      if (refresh) {
        newly_refused = refused && entry.state != Entry::State::kRefused;
        entry.state = refused ? Entry::State::kRefused : Entry::State::kAccepted;
        entry.refusal = status;
        entry.expires = now + options_.ttl;
        decided_.emplace_back(entry.expires, key);
      }
      Evict(now);
    } else if (probe && it != entries_.end() && it->second.state == Entry::State::kProbing) {
      // No verdict: the next waiting request asks in turn, or the next request to come.
      if (it->second.queue.empty()) {
        entries_.erase(it);
      } else {
        next_probe = std::move(it->second.queue.front());
        it->second.queue.pop_front();
      }
    }
  }
  if (newly_refused) {
    Log(Severity::kInfo,
        absl::StrCat("the upstream refused a caller's JWT (",
                     absl::StatusCodeToString(status.code()),
                     "): the gateway refuses it for this account for the next ",
                     absl::FormatDuration(options_.ttl), ", ", released.size(),
                     " waiting request(s) included"),
        LogContext{.request_id = "", .stream_id = "", .list_id = "", .account_id = account});
  }
  for (Waiter& w : released) {
    w.cancel->Forget(w.handle);
    if (refused) {
      Refuse(std::move(w.done), status);
    } else {
      Forward(key, /*probe=*/false, std::move(w.request), std::move(w.cancel), std::move(w.done));
    }
  }
  if (next_probe) {
    next_probe->cancel->Forget(next_probe->handle);
    Forward(key, /*probe=*/true, std::move(next_probe->request), std::move(next_probe->cancel),
            std::move(next_probe->done));
  }
}

void CredentialMemoryPageSource::Leave(const std::string& key, uint64_t waiter) {
  std::optional<Waiter> gone;
  {
    absl::MutexLock lock(&mu_);
    auto it = entries_.find(key);
    if (it == entries_.end()) return;
    std::deque<Waiter>& queue = it->second.queue;
    for (auto w = queue.begin(); w != queue.end(); ++w) {
      if (w->id == waiter) {
        gone = std::move(*w);
        queue.erase(w);
        break;
      }
    }
  }
  if (!gone) return;
  asio::post(io_, [done = std::move(gone->done)]() mutable {
    std::move(done)(PageResult{absl::CancelledError("the call was cancelled"), {}});
  });
}

void CredentialMemoryPageSource::Refuse(Callback done, absl::Status refusal) {
  {
    absl::MutexLock lock(&mu_);
    ++refused_;
  }
  Metrics().refused_caller_jwt_requests.Increment();
  asio::post(io_, [done = std::move(done), refusal = std::move(refusal)]() mutable {
    std::move(done)(PageResult{std::move(refusal), {}});
  });
}

void CredentialMemoryPageSource::Evict(absl::Time now) {
  while (!decided_.empty() &&
         (decided_.front().first <= now || entries_.size() > options_.max_entries)) {
    auto [expires, key] = std::move(decided_.front());
    decided_.pop_front();
    auto it = entries_.find(key);
    if (it != entries_.end() && it->second.state != Entry::State::kProbing &&
        it->second.expires == expires) {
      entries_.erase(it);
    }
  }
}

size_t CredentialMemoryPageSource::entries() const {
  absl::MutexLock lock(&mu_);
  return entries_.size();
}

int64_t CredentialMemoryPageSource::refused() const {
  absl::MutexLock lock(&mu_);
  return refused_;
}

}  // namespace contacts::gateway
