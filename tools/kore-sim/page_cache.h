#ifndef CONTACTS_GATEWAY_TOOLS_KORE_SIM_PAGE_CACHE_H_
#define CONTACTS_GATEWAY_TOOLS_KORE_SIM_PAGE_CACHE_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"

namespace contacts::kore_sim {

// Rendered 200 page bodies by (list id, skip, limit), so that benchmarks measure the gateway
// rather than the simulator's renderer. Holds at most `max_bytes` of bodies; once full it stops
// adding (benchmarks read the same few lists again and again). Invalidate() drops everything
// and starts a new generation: a body rendered before a mutation is never stored after it.
// Thread-safe.
class PageCache {
 public:
  // `max_bytes` 0: the cache is off (Find never hits, Store never stores).
  explicit PageCache(int64_t max_bytes) : max_bytes_(max_bytes) {}

  struct Rendered {
    std::string body;
    int64_t contacts = 0;  // contacts in the page
  };
  using Body = std::shared_ptr<const Rendered>;

  // The current generation: pass it to Store with a body rendered after this call.
  uint64_t Generation() const;
  Body Find(std::string_view list_id, int64_t skip, int64_t limit) const;
  void Store(std::string_view list_id, int64_t skip, int64_t limit, uint64_t generation, Body body);
  void Invalidate();

 private:
  using Key = std::tuple<std::string, int64_t, int64_t>;

  const int64_t max_bytes_;
  mutable absl::Mutex mu_;
  absl::flat_hash_map<Key, Body> bodies_ ABSL_GUARDED_BY(mu_);
  int64_t bytes_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t generation_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace contacts::kore_sim

#endif  // CONTACTS_GATEWAY_TOOLS_KORE_SIM_PAGE_CACHE_H_
