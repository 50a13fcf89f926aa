#ifndef CONTACTS_GATEWAY_SERVER_CORE_CANCELLATION_H_
#define CONTACTS_GATEWAY_SERVER_CORE_CANCELLATION_H_

#include <cstdint>
#include <functional>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"

namespace contacts::gateway {

// Lets a stream stop the work it started (upstream requests, budget waits, page waits). Cancel()
// runs the registered callbacks once, on the calling thread; a callback registered after Cancel()
// runs at once, on the registering thread. Thread-safe. Shared (std::shared_ptr) by the stream and
// everything working for it.
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

}  // namespace contacts::gateway

#endif  // CONTACTS_GATEWAY_SERVER_CORE_CANCELLATION_H_
