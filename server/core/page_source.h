#ifndef CONTACTS_GATEWAY_SERVER_CORE_PAGE_SOURCE_H_
#define CONTACTS_GATEWAY_SERVER_CORE_PAGE_SOURCE_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "server/core/page.h"

namespace contacts::gateway {

// Upstream credentials for one request: headers `auth` (the JWT) and `iid` (the app id).
struct UpstreamCredentials {
  std::string jwt;
  std::string app_id;
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
  uint64_t owner = 0;               // the stream asking, for fairness between streams
  absl::Time deadline = absl::InfiniteFuture();  // the caller's; bounds every wait
};

// Lets a stream stop the upstream work it started. Cancel() runs the registered callbacks once, on
// the calling thread; a callback registered after Cancel() runs at once. Thread-safe.
class Cancellation {
 public:
  using Handle = uint64_t;

  void Cancel() {
    absl::flat_hash_map<Handle, std::function<void()>> callbacks;
    {
      absl::MutexLock lock(&mu_);
      if (cancelled_) return;
      cancelled_ = true;
      callbacks.swap(callbacks_);
    }
    for (auto& [handle, callback] : callbacks) callback();
  }
  // Returns a handle for Forget(), so finished work does not pile up callbacks.
  Handle OnCancel(std::function<void()> callback) {
    {
      absl::MutexLock lock(&mu_);
      if (!cancelled_) {
        callbacks_.emplace(++last_handle_, std::move(callback));
        return last_handle_;
      }
    }
    callback();
    return 0;
  }
  void Forget(Handle handle) {
    absl::MutexLock lock(&mu_);
    callbacks_.erase(handle);
  }
  bool cancelled() const {
    absl::MutexLock lock(&mu_);
    return cancelled_;
  }

 private:
  mutable absl::Mutex mu_;
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
  Handle last_handle_ ABSL_GUARDED_BY(mu_) = 0;
  absl::flat_hash_map<Handle, std::function<void()>> callbacks_ ABSL_GUARDED_BY(mu_);
};

// Where pages come from: the real KoreClient, or a scripted fake in tests.
class PageSource {
 public:
  using Callback = absl::AnyInvocable<void(absl::StatusOr<Page>) &&>;
  virtual ~PageSource() = default;

  // Fetches one page and calls `done` exactly once, on a thread of the source's choosing (never
  // inline in a way that re-enters the caller's lock: callers must not hold locks around Fetch).
  // Errors carry the codes of http_status.h; kCancelled after `cancel` fired;
  // kDeadlineExceeded when the request's deadline passed.
  virtual void Fetch(PageRequest request, std::shared_ptr<Cancellation> cancel, Callback done) = 0;
};

}  // namespace contacts::gateway

#endif  // CONTACTS_GATEWAY_SERVER_CORE_PAGE_SOURCE_H_
