#ifndef CONTACTS_GATEWAY_TOOLS_KORE_SIM_FAULT_H_
#define CONTACTS_GATEWAY_TOOLS_KORE_SIM_FAULT_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "tools/kore-sim/list_store.h"

namespace contacts::kore_sim {

// What a fault rule does to a contacts request it hits.
enum class FaultKind {
  kStatus,        // answer `code` with a Kore-style error body (and Retry-After when asked)
  kLatency,       // wait `ms`, then answer normally
  kReset,         // headers with the full Content-Length, about half the body, then close
  kTruncate,      // a complete response whose JSON body is cut in half
  kMalformed,     // a 200 whose body is not JSON
  kIgnorePaging,  // answer as if skip were 0 (data.skip echoes 0)
  kEmptyPage,     // a 200 with "results":[] and "hasMore":true
  kMutate,        // apply op/at/n to the request's list, then answer normally
};

// One rule, parsed from a query-string spec such as `kind=status&code=503&count=2`.
// Parameters: kind (required), count, after, list, skip, code, retry_after, retry_after_date, ms,
// op, at, n; see --help for their meaning.
struct FaultRule {
  std::string spec;  // as given, for listings
  FaultKind kind = FaultKind::kStatus;
  int64_t count = 1;                // requests it hits; -1 = forever
  int64_t after = 0;                // matching requests let through first
  std::optional<std::string> list;  // only this list id
  std::optional<int64_t> skip;      // only requests with this skip
  int code = 503;
  std::optional<int64_t> retry_after_seconds;
  bool retry_after_date = false;  // send Retry-After as an HTTP-date
  int64_t latency_ms = 1000;
  MutationOp op = MutationOp::kInsert;
  int64_t at = 0;
  int64_t n = 1;
};

// kInvalidArgument with a one-line reason when the spec is not valid.
absl::StatusOr<FaultRule> ParseFaultSpec(std::string_view spec);

// The active fault rules in insertion order, with how many requests each has seen and hit.
// Thread-safe.
class FaultBook {
 public:
  void Add(FaultRule rule);
  void Clear();

  // Walks the rules in order for a contacts request of `list_id` at `skip`: a rule whose filters
  // match either lets the request pass (still within `after`, or used up) or hits it. Returns the
  // first rule that hits, or nullopt.
  std::optional<FaultRule> Match(std::string_view list_id, int64_t skip);

  // [{"spec":"kind=status&count=2","kind":"status","matched":3,"hits":2,"active":false}, ...]
  std::string ToJson() const;

 private:
  struct Entry {
    FaultRule rule;
    int64_t matched = 0;  // requests that passed the list/skip filters
    int64_t hits = 0;
  };
  mutable absl::Mutex mu_;
  std::vector<Entry> entries_ ABSL_GUARDED_BY(mu_);
};

}  // namespace contacts::kore_sim

#endif  // CONTACTS_GATEWAY_TOOLS_KORE_SIM_FAULT_H_
