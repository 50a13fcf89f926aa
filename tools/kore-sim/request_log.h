#ifndef CONTACTS_GATEWAY_TOOLS_KORE_SIM_REQUEST_LOG_H_
#define CONTACTS_GATEWAY_TOOLS_KORE_SIM_REQUEST_LOG_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace contacts::kore_sim {

// The last `capacity` requests on the contacts path, for tests that trace the gateway's requests
// (W3C trace context) or check which pages it asked for. Holds only what is listed in Entry: never
// `auth` or any other credential. Thread-safe.
class RequestLog {
 public:
  // Trace headers longer than this are cut (W3C allows tracestate 512 characters); bytes outside
  // printable ASCII become '?'.
  static constexpr size_t kMaxHeaderBytes = 512;

  struct Entry {
    absl::Time time;
    std::string method;
    std::string list;
    std::string account;          // the accountId query parameter as given ("" when absent)
    std::optional<int64_t> skip;  // as asked; nullopt when absent or not an integer
    std::optional<int64_t> limit;
    unsigned status = 0;
    std::optional<std::string> traceparent;  // nullopt when the header was absent
    std::optional<std::string> tracestate;
  };

  // `capacity` 0: nothing is recorded.
  explicit RequestLog(int64_t capacity) : capacity_(static_cast<size_t>(capacity)) {}

  void Add(Entry entry);

  // {"capacity":N,"dropped":N,"requests":[{"seq":1,"time":"2026-01-01T00:00:00.000Z",
  //  "method":"GET","list":"...","account":"...","skip":0,"limit":50,"status":200,
  //  "traceparent":"..."|null,"tracestate":"..."|null},...]}, oldest first; only entries of
  // `list` / `account` when those are set. seq counts requests since the last Clear(), from 1;
  // dropped is how many of them the ring no longer holds.
  std::string ToJson(const std::string* list, const std::string* account) const;

  void Clear();

 private:
  const size_t capacity_;
  mutable absl::Mutex mu_;
  std::vector<Entry> ring_ ABSL_GUARDED_BY(mu_);  // entry of seq s at (s - 1) % capacity_
  int64_t added_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace contacts::kore_sim

#endif  // CONTACTS_GATEWAY_TOOLS_KORE_SIM_REQUEST_LOG_H_
