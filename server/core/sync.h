#ifndef CONTACTS_GATEWAY_SERVER_CORE_SYNC_H_
#define CONTACTS_GATEWAY_SERVER_CORE_SYNC_H_

// Happens-before edges that ThreadSanitizer cannot see by itself.
//
// Debian's libgrpc is not built with -fsanitize=thread. Mutex hand-overs are covered by the
// preloaded absl shim of TSan runs (tests/sanitizers/README.md), but some orderings go through
// gRPC's lock-free transport code: every reactor's OnDone happens before grpc::Server::Wait
// returns, what a reactor set before a read started before its OnReadDone (or OnCancel) on another
// thread, and all that a StartWrite does on one thread before its OnWriteDone on another.
// HappensBefore(tag) before such a hand-over and HappensAfter(tag) after it tell TSan; a hand-over
// that happens inside a call into gRPC takes a HandOver. Outside TSan builds all compile to
// nothing.

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

#include <mutex>
#endif

namespace contacts {

inline void HappensBefore(const void* tag) {
#ifdef CONTACTS_TSAN
  __tsan_release(const_cast<void*>(tag));
#else
  (void)tag;
#endif
}

inline void HappensAfter(const void* tag) {
#ifdef CONTACTS_TSAN
  __tsan_acquire(const_cast<void*>(tag));
#else
  (void)tag;
#endif
}

// A hand-over inside a call into gRPC: everything the calling thread does until Across(call)
// returns (StartWrite reads the message while it runs) happens before what the thread of the
// call's completion does after Received(). No release placed before the call could cover the call
// itself, and one after it may come too late. In TSan builds a mutex held across the call, so a
// completion that comes early waits until the call returns (gRPC never runs a write's completion
// inside StartWrite); otherwise nothing.
class HandOver {
 public:
  template <typename Call>
  void Across(Call&& call) {
#ifdef CONTACTS_TSAN
    std::lock_guard<std::mutex> lock(mu_);
#endif
    call();
  }

  void Received() {
#ifdef CONTACTS_TSAN
    std::lock_guard<std::mutex> lock(mu_);
#endif
  }

 private:
#ifdef CONTACTS_TSAN
  std::mutex mu_;
#endif
};

}  // namespace contacts

#endif  // CONTACTS_GATEWAY_SERVER_CORE_SYNC_H_
