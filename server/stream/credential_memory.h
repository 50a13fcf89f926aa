#ifndef CONTACTS_GATEWAY_SERVER_STREAM_CREDENTIAL_MEMORY_H_
#define CONTACTS_GATEWAY_SERVER_STREAM_CREDENTIAL_MEMORY_H_

#include <boost/asio/io_context.hpp>
#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "server/core/page_source.h"

namespace contacts::gateway {

struct CredentialMemoryOptions {
  absl::Duration ttl = absl::Seconds(30);  // how long a verdict is kept; 0 = off
  size_t max_entries = 10000;              // verdicts kept at most; the oldest go first
};

// A PageSource that remembers what the upstream said of callers' own JWTs (pass-through
// requests; minted credentials pass straight through), so that a JWT it refused costs the
// account's rate budget once per ttl rather than once per stream. It sits right before the budget
// in the chain (app/gateway_server.cc), so every attempt that would spend the budget is checked,
// whatever the page cache coalesced and the retries repeated.
//
// Verdicts are kept per SHA-256 of (app id, JWT, account): never the JWT itself.
//   refused   the upstream answered kUnauthenticated (401) or kPermissionDenied (403): for ttl
//             every request with the same key fails at once with that very status (code, message,
//             reason), and goes no further.
//   accepted  a page came back: for ttl requests go on freely (refreshed while they keep coming).
//   unknown   one request goes on (the probe); the others with the same key wait for its answer,
//             then go on when it was accepted, fail with it when refused, or (any other answer:
//             5xx, 429, a budget refusal, a cancellation) the next waiting one becomes the probe.
// So 30 streams started at once with one made-up JWT send one request upstream, and a new JWT is
// tried again at once. A waiting request ends with kCancelled as soon as its call is cancelled (a
// call past its deadline is cancelled by gRPC).
//
// At most max_entries verdicts are kept (then the oldest go), plus one probe per key in flight.
// Answers are delivered on `io`'s threads or the inner source's, never inside Fetch. `io` and
// `inner` must outlive this object and its fetches. Thread-safe.
class CredentialMemoryPageSource final : public PageSource {
 public:
  CredentialMemoryPageSource(boost::asio::io_context& io, PageSource& inner,
                             CredentialMemoryOptions options);

  void Fetch(PageRequest request, std::shared_ptr<Cancellation> cancel, Callback done) override;

  // For tests: verdicts and probes kept, and requests refused from memory.
  size_t entries() const;
  int64_t refused() const;

 private:
  struct Waiter {
    uint64_t id;
    PageRequest request;
    std::shared_ptr<Cancellation> cancel;
    Cancellation::Handle handle = 0;
    Callback done;
  };
  struct Entry {
    enum class State { kProbing, kAccepted, kRefused };
    State state = State::kProbing;
    absl::Status refusal;      // kRefused: what the upstream's answer produced
    absl::Time expires;        // kAccepted, kRefused
    std::deque<Waiter> queue;  // kProbing: requests waiting for the probe's answer
  };

  // Sends `request` on to the inner source; its answer updates the verdict of `key`.
  void Forward(const std::string& key, bool probe, PageRequest request,
               std::shared_ptr<Cancellation> cancel, Callback done);
  void Answered(const std::string& key, const std::string& account, bool probe,
                const PageResult& result);
  void Leave(const std::string& key, uint64_t waiter);
  void Refuse(Callback done, absl::Status refusal);
  // Forgets expired verdicts, and the oldest ones beyond max_entries.
  void Evict(absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  boost::asio::io_context& io_;
  PageSource& inner_;
  const CredentialMemoryOptions options_;
  mutable absl::Mutex mu_;
  absl::flat_hash_map<std::string, Entry> entries_ ABSL_GUARDED_BY(mu_);
  // Verdicts in the order they were decided (so by expiry), with the expiry they were given; an
  // element whose entry has since been decided again is skipped.
  std::deque<std::pair<absl::Time, std::string>> decided_ ABSL_GUARDED_BY(mu_);
  uint64_t last_waiter_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t refused_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace contacts::gateway

#endif  // CONTACTS_GATEWAY_SERVER_STREAM_CREDENTIAL_MEMORY_H_
