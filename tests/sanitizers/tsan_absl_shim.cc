// LD_PRELOAD shim for ThreadSanitizer runs (scripts/sanitize.sh tsan; see README.md here).
//
// Debian's libabsl is not built with -fsanitize=thread, so TSan sees neither absl::Mutex nor
// absl::CondVar, and libgrpc does all its locking with them (grpc_core::Mutex, gpr_mu). Without
// this shim TSan reports a "race" at every hand-over that gRPC or a not yet converted
// absl::MutexLock orders: reactor callbacks on gRPC threads, the gateway's guarded fields, ...
//
// The shim defines the out-of-line absl::Mutex and absl::CondVar members itself. Preloaded, it
// interposes them in every module (our code, libgrpc, libgpr, libabsl's own cross-file calls);
// each forwards to the real function (dlsym RTLD_NEXT) and tells TSan about the happens-before
// edge: __tsan_acquire(mu) once the mutex is held, __tsan_release(mu) before it is let go (also
// around Await and CondVar waits, which let go of it for a while).
//
// It is not instrumented itself and links nothing but libc; in a process without TSan (python3,
// bash, openssl started by the tests) __tsan_acquire/__tsan_release are absent (weak, null) and
// the shim only forwards.
#include <dlfcn.h>

#include <cstdio>
#include <cstdlib>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

extern "C" {
void __tsan_acquire(void* addr) __attribute__((weak));
void __tsan_release(void* addr) __attribute__((weak));
}

namespace {

inline void Acquired(const void* mu) {
  if (__tsan_acquire != nullptr) __tsan_acquire(const_cast<void*>(mu));
}
inline void Releasing(const void* mu) {
  if (__tsan_release != nullptr) __tsan_release(const_cast<void*>(mu));
}

// The next definition of `symbol` (the real one in libabsl_synchronization), as type F.
template <typename F>
F Real(const char* symbol) {
  void* f = dlsym(RTLD_NEXT, symbol);
  if (f == nullptr) {
    std::fprintf(stderr, "tsan_absl_shim: %s not found: %s\n", symbol, dlerror());
    std::abort();
  }
  return reinterpret_cast<F>(f);
}

// Member functions called as free functions with `this` first (Itanium C++ ABI).
#define CONTACTS_REAL(ret, mangled, ...) \
  static const auto real = Real<ret (*)(__VA_ARGS__)>(mangled)

}  // namespace

namespace absl {
ABSL_NAMESPACE_BEGIN

void Mutex::Lock() {
  CONTACTS_REAL(void, "_ZN4absl7debian35Mutex4LockEv", Mutex*);
  real(this);
  Acquired(this);
}

void Mutex::ReaderLock() {
  CONTACTS_REAL(void, "_ZN4absl7debian35Mutex10ReaderLockEv", Mutex*);
  real(this);
  Acquired(this);
}

bool Mutex::TryLock() {
  CONTACTS_REAL(bool, "_ZN4absl7debian35Mutex7TryLockEv", Mutex*);
  const bool locked = real(this);
  if (locked) Acquired(this);
  return locked;
}

bool Mutex::ReaderTryLock() {
  CONTACTS_REAL(bool, "_ZN4absl7debian35Mutex13ReaderTryLockEv", Mutex*);
  const bool locked = real(this);
  if (locked) Acquired(this);
  return locked;
}

void Mutex::Unlock() {
  CONTACTS_REAL(void, "_ZN4absl7debian35Mutex6UnlockEv", Mutex*);
  Releasing(this);
  real(this);
}

void Mutex::ReaderUnlock() {
  CONTACTS_REAL(void, "_ZN4absl7debian35Mutex12ReaderUnlockEv", Mutex*);
  Releasing(this);
  real(this);
}

void Mutex::LockWhen(const Condition& cond) {
  CONTACTS_REAL(void, "_ZN4absl7debian35Mutex8LockWhenERKNS0_9ConditionE", Mutex*,
                const Condition&);
  real(this, cond);
  Acquired(this);
}

void Mutex::ReaderLockWhen(const Condition& cond) {
  CONTACTS_REAL(void, "_ZN4absl7debian35Mutex14ReaderLockWhenERKNS0_9ConditionE", Mutex*,
                const Condition&);
  real(this, cond);
  Acquired(this);
}

bool Mutex::LockWhenWithTimeout(const Condition& cond, absl::Duration timeout) {
  CONTACTS_REAL(bool, "_ZN4absl7debian35Mutex19LockWhenWithTimeoutERKNS0_9ConditionENS0_8DurationE",
                Mutex*, const Condition&, absl::Duration);
  const bool met = real(this, cond, timeout);
  Acquired(this);  // held either way
  return met;
}

bool Mutex::LockWhenWithDeadline(const Condition& cond, absl::Time deadline) {
  CONTACTS_REAL(bool, "_ZN4absl7debian35Mutex20LockWhenWithDeadlineERKNS0_9ConditionENS0_4TimeE",
                Mutex*, const Condition&, absl::Time);
  const bool met = real(this, cond, deadline);
  Acquired(this);
  return met;
}

bool Mutex::ReaderLockWhenWithTimeout(const Condition& cond, absl::Duration timeout) {
  CONTACTS_REAL(bool,
                "_ZN4absl7debian35Mutex25ReaderLockWhenWithTimeoutERKNS0_9ConditionENS0_8DurationE",
                Mutex*, const Condition&, absl::Duration);
  const bool met = real(this, cond, timeout);
  Acquired(this);
  return met;
}

bool Mutex::ReaderLockWhenWithDeadline(const Condition& cond, absl::Time deadline) {
  CONTACTS_REAL(bool,
                "_ZN4absl7debian35Mutex26ReaderLockWhenWithDeadlineERKNS0_9ConditionENS0_4TimeE",
                Mutex*, const Condition&, absl::Time);
  const bool met = real(this, cond, deadline);
  Acquired(this);
  return met;
}

void Mutex::Await(const Condition& cond) {
  CONTACTS_REAL(void, "_ZN4absl7debian35Mutex5AwaitERKNS0_9ConditionE", Mutex*, const Condition&);
  Releasing(this);
  real(this, cond);
  Acquired(this);
}

bool Mutex::AwaitWithTimeout(const Condition& cond, absl::Duration timeout) {
  CONTACTS_REAL(bool, "_ZN4absl7debian35Mutex16AwaitWithTimeoutERKNS0_9ConditionENS0_8DurationE",
                Mutex*, const Condition&, absl::Duration);
  Releasing(this);
  const bool met = real(this, cond, timeout);
  Acquired(this);
  return met;
}

bool Mutex::AwaitWithDeadline(const Condition& cond, absl::Time deadline) {
  CONTACTS_REAL(bool, "_ZN4absl7debian35Mutex17AwaitWithDeadlineERKNS0_9ConditionENS0_4TimeE",
                Mutex*, const Condition&, absl::Time);
  Releasing(this);
  const bool met = real(this, cond, deadline);
  Acquired(this);
  return met;
}

void CondVar::Wait(Mutex* mu) {
  CONTACTS_REAL(void, "_ZN4absl7debian37CondVar4WaitEPNS0_5MutexE", CondVar*, Mutex*);
  Releasing(mu);
  real(this, mu);
  Acquired(mu);
}

bool CondVar::WaitWithTimeout(Mutex* mu, absl::Duration timeout) {
  CONTACTS_REAL(bool, "_ZN4absl7debian37CondVar15WaitWithTimeoutEPNS0_5MutexENS0_8DurationE",
                CondVar*, Mutex*, absl::Duration);
  Releasing(mu);
  const bool timed_out = real(this, mu, timeout);
  Acquired(mu);
  return timed_out;
}

bool CondVar::WaitWithDeadline(Mutex* mu, absl::Time deadline) {
  CONTACTS_REAL(bool, "_ZN4absl7debian37CondVar16WaitWithDeadlineEPNS0_5MutexENS0_4TimeE", CondVar*,
                Mutex*, absl::Time);
  Releasing(mu);
  const bool timed_out = real(this, mu, deadline);
  Acquired(mu);
  return timed_out;
}

ABSL_NAMESPACE_END
}  // namespace absl
