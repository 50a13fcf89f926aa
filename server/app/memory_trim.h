#ifndef CONTACTS_GATEWAY_SERVER_APP_MEMORY_TRIM_H_
#define CONTACTS_GATEWAY_SERVER_APP_MEMORY_TRIM_H_

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <cstddef>
#include <memory>

#include "absl/time/time.h"

namespace contacts::gateway {

// Free memory malloc may keep without being asked to give it back.
inline constexpr size_t kMemoryTrimThreshold = size_t{16} << 20;

// Gives memory back to the system after a burst. glibc's malloc keeps what a burst freed in its
// arenas (a gateway at 20 MiB stayed at 136-172 MiB after 1,000 streams; bench/REPORT.md, B9), and
// only malloc_trim returns it. Every `interval`, on a thread of `io`, this asks malloc how much it
// holds free and trims when that is more than `threshold`: under steady load little is free, so it
// rarely runs. `io` must outlive it; stopping `io` stops it.
class MemoryTrimmer {
 public:
  MemoryTrimmer(boost::asio::io_context& io, absl::Duration interval, size_t threshold);
  ~MemoryTrimmer();

 private:
  struct State;
  static void Schedule(const std::shared_ptr<State>& state);
  static void Check(const std::shared_ptr<State>& state);
  std::shared_ptr<State> state_;
};

}  // namespace contacts::gateway

#endif  // CONTACTS_GATEWAY_SERVER_APP_MEMORY_TRIM_H_
