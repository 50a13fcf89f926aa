#ifndef CONTACTS_GATEWAY_SERVER_SERVICE_LATER_LANE_H_
#define CONTACTS_GATEWAY_SERVER_SERVICE_LATER_LANE_H_

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <cstdint>
#include <map>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/functional/any_invocable.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace contacts::gateway {

// Where running streams' later work waits while many streams write, so that new calls and their
// first messages come first (an adaptive LIFO).
//
// gRPC 1.51's callback API runs every reaction of every call, a new call's included, from one
// completion queue served in order. A stream that builds and starts its next message inside
// OnWriteDone puts that write's completion behind everyone else's: with hundreds of streams
// writing, a new call waits behind hundreds of messages before its reactor exists. While more
// than `busy_above` streams complete a write per millisecond, streams hand their next message,
// and their later pages as they arrive, to Defer instead; the completion queue then only passes
// completions along. The io_context's threads run the deferred work one piece per turn (at most
// `parallel` pieces at once), between the handlers that fetch and deliver first pages: the newest
// stream's first, so that a stream that just started gets its first messages out before older
// streams' later ones. Work waiting longer than `age_bound` gets every second turn, oldest first:
// old streams are slowed, never stopped. Streams whose callers do not read (their writes wait for
// flow control) complete no writes, so they do not count.
//
// Thread-safe. Deferred work runs on the io_context's threads; the owner keeps them running until
// every call has ended (work that never ran would hold its call open).
class LaterLane {
 public:
  struct Options {
    // Below it a new call waits behind at most this many messages on the completion queue (tens
    // of microseconds each), and a stream's next message starts at once, without the hand-over
    // to an I/O thread that one stream of one contact per message would pay on every message.
    int busy_above = 16;
    int parallel = 2;  // the io_context's threads
    absl::Duration age_bound = absl::Milliseconds(100);
  };
  // A monotonic clock in nanoseconds; tests pass their own.
  using Clock = int64_t (*)();
  static int64_t SteadyNanos();

  LaterLane(boost::asio::io_context& io, Options options, Clock clock = SteadyNanos);

  // A stream's write completed; returns Busy(). `mark` is the stream's own (0 at first), kept by
  // the lane: a stream counts once per millisecond. Called from the stream's OnWriteDone, one at a
  // time.
  bool Completed(int64_t& mark);
  // More than `busy_above` streams completed a write in this millisecond or the one before.
  bool Busy() const;
  // Runs `work` on the io_context when its turn comes. `stream` orders streams: a higher number
  // is a newer stream, whose work goes first. A stream's own work runs in the order deferred.
  void Defer(uint64_t stream, absl::AnyInvocable<void() &&> work);
  size_t waiting() const;

 private:
  void RunOne();
  bool BusyAt(int64_t now_ms) const;

  boost::asio::io_context& io_;
  const Options options_;
  const Clock clock_;
  // Streams that completed a write in millisecond bucket_ms_, and in the one before it (counts
  // are approximate when threads race at a bucket's turn; that moves the threshold by one).
  std::atomic<int64_t> bucket_ms_{0};
  std::atomic<int> writers_{0};
  std::atomic<int> writers_before_{0};

  struct Work {
    int64_t deferred_at;  // clock_
    absl::AnyInvocable<void() &&> run;
  };
  using Key = std::pair<uint64_t, uint64_t>;  // (~stream, seq): newest stream first, then FIFO
  mutable absl::Mutex mu_;
  uint64_t seq_ ABSL_GUARDED_BY(mu_) = 0;
  std::map<Key, Work> by_stream_ ABSL_GUARDED_BY(mu_);
  std::map<uint64_t, Key> by_age_ ABSL_GUARDED_BY(mu_);  // seq -> key: the oldest first
  uint64_t turns_ ABSL_GUARDED_BY(mu_) = 0;
  int running_ ABSL_GUARDED_BY(mu_) = 0;  // RunOne handlers posted and not yet finished
};

}  // namespace contacts::gateway

#endif  // CONTACTS_GATEWAY_SERVER_SERVICE_LATER_LANE_H_
