#include "server/app/memory_trim.h"

#include <malloc.h>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "server/core/log.h"

namespace contacts::gateway {

struct MemoryTrimmer::State {
  State(boost::asio::io_context& io, absl::Duration interval, size_t threshold)
      : timer(io), interval(interval), threshold(threshold) {}
  boost::asio::steady_timer timer;
  const absl::Duration interval;
  const size_t threshold;
  absl::Mutex mu;
  bool stopped ABSL_GUARDED_BY(mu) = false;
};

void MemoryTrimmer::Check(const std::shared_ptr<State>& state) {
  const struct mallinfo2 before = mallinfo2();
  if (before.fordblks > state->threshold) {
    malloc_trim(0);
    const struct mallinfo2 after = mallinfo2();
    Log(Severity::kDebug, absl::StrCat("gave ", (before.fordblks - after.fordblks) >> 20,
                                       " MiB of free memory back to the system"));
  }
  Schedule(state);
}

void MemoryTrimmer::Schedule(const std::shared_ptr<State>& state) {
  absl::MutexLock lock(&state->mu);
  if (state->stopped) return;
  state->timer.expires_after(absl::ToChronoNanoseconds(state->interval));
  state->timer.async_wait([state](const boost::system::error_code& ec) {
    if (!ec) Check(state);
  });
}

MemoryTrimmer::MemoryTrimmer(boost::asio::io_context& io, absl::Duration interval, size_t threshold)
    : state_(std::make_shared<State>(io, interval, threshold)) {
  if (interval > absl::ZeroDuration()) Schedule(state_);
}

MemoryTrimmer::~MemoryTrimmer() {
  absl::MutexLock lock(&state_->mu);
  state_->stopped = true;
  state_->timer.cancel();
}

}  // namespace contacts::gateway
