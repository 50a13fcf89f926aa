#ifndef CONTACTS_GATEWAY_SERVER_SYNC_H_
#define CONTACTS_GATEWAY_SERVER_SYNC_H_

// Happens-before edges that ThreadSanitizer cannot see by itself.
//
// Debian's libgrpc is not built with -fsanitize=thread. Mutex hand-overs are covered by the
// preloaded absl shim of TSan runs (tests/sanitizers/README.md), but some orderings go through
// gRPC's lock-free transport code: a StartWrite on one thread happens before its OnWriteDone on
// another, and every reactor's OnDone before grpc::Server::Wait returns. HappensBefore(tag) before such a hand-over and HappensAfter(tag) after it tell TSan;
// outside TSan builds both compile to nothing.

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

}  // namespace contacts

#endif  // CONTACTS_GATEWAY_SERVER_SYNC_H_
