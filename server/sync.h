#ifndef CONTACTS_GATEWAY_SERVER_SYNC_H_
#define CONTACTS_GATEWAY_SERVER_SYNC_H_

// Mutex guards that ThreadSanitizer understands.
//
// Debian's libabsl is not built with -fsanitize=thread, so TSan does not see absl::Mutex lock and
// unlock and reports a false race on every field an absl::Mutex guards. contacts::MutexLock locks
// the same absl::Mutex as absl::MutexLock does and, in a TSan build only, tells TSan about it:
// __tsan_acquire(mu) right after Lock(), __tsan_release(mu) right before Unlock(). Outside TSan it
// compiles to exactly absl::MutexLock. Use it everywhere instead of absl::MutexLock:
//
//   contacts::MutexLock lock(&mu_);
//   lock.Await(absl::Condition(...));   // instead of mu_.Await(...), which TSan would not see
//
// Thread-safety annotations (ABSL_GUARDED_BY, ABSL_EXCLUSIVE_LOCKS_REQUIRED) work as with
// absl::MutexLock. Header-only; include it as "server/sync.h" (the project root is on every
// target's include path).

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

#if defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define CONTACTS_TSAN 1
#endif
#endif
#if !defined(CONTACTS_TSAN) && defined(__SANITIZE_THREAD__)
#define CONTACTS_TSAN 1
#endif

#ifdef CONTACTS_TSAN
#include <sanitizer/tsan_interface.h>
#endif

namespace contacts {

namespace sync_internal {
// What happens-before edges a lock and an unlock of `mu` create, told to TSan by hand.
inline void Acquired(absl::Mutex* mu) {
#ifdef CONTACTS_TSAN
  __tsan_acquire(mu);
#else
  (void)mu;
#endif
}
inline void Releasing(absl::Mutex* mu) {
#ifdef CONTACTS_TSAN
  __tsan_release(mu);
#else
  (void)mu;
#endif
}
}  // namespace sync_internal

// Holds an absl::Mutex exclusively for its scope (RAII), like absl::MutexLock.
class ABSL_SCOPED_LOCKABLE MutexLock {
 public:
  explicit MutexLock(absl::Mutex* mu) ABSL_EXCLUSIVE_LOCK_FUNCTION(mu) : mu_(mu) {
    mu_->Lock();
    sync_internal::Acquired(mu_);
  }
  // Locks once `cond` holds, like absl::MutexLock(mu, cond).
  MutexLock(absl::Mutex* mu, const absl::Condition& cond) ABSL_EXCLUSIVE_LOCK_FUNCTION(mu) : mu_(mu) {
    mu_->LockWhen(cond);
    sync_internal::Acquired(mu_);
  }
  MutexLock(const MutexLock&) = delete;
  MutexLock& operator=(const MutexLock&) = delete;
  ~MutexLock() ABSL_UNLOCK_FUNCTION() {
    sync_internal::Releasing(mu_);
    mu_->Unlock();
  }

  // mu->Await(cond): unlocks while cond is false, returns with the lock held and cond true.
  void Await(const absl::Condition& cond) {
    sync_internal::Releasing(mu_);
    mu_->Await(cond);
    sync_internal::Acquired(mu_);
  }
  // mu->AwaitWithTimeout(cond, timeout): as Await; false when the timeout expired first (the lock
  // is held either way).
  bool AwaitWithTimeout(const absl::Condition& cond, absl::Duration timeout) {
    sync_internal::Releasing(mu_);
    const bool met = mu_->AwaitWithTimeout(cond, timeout);
    sync_internal::Acquired(mu_);
    return met;
  }
  // cv->Wait(mu) / cv->WaitWithTimeout(mu, timeout) for a CondVar used with this lock's mutex;
  // WaitWithTimeout returns true when it timed out.
  void Wait(absl::CondVar* cv) {
    sync_internal::Releasing(mu_);
    cv->Wait(mu_);
    sync_internal::Acquired(mu_);
  }
  bool WaitWithTimeout(absl::CondVar* cv, absl::Duration timeout) {
    sync_internal::Releasing(mu_);
    const bool timed_out = cv->WaitWithTimeout(mu_, timeout);
    sync_internal::Acquired(mu_);
    return timed_out;
  }

 private:
  absl::Mutex* const mu_;
};

}  // namespace contacts

#endif  // CONTACTS_GATEWAY_SERVER_SYNC_H_
