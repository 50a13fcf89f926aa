#ifndef CONTACTS_GATEWAY_TOOLS_KORE_SIM_LIST_STORE_H_
#define CONTACTS_GATEWAY_TOOLS_KORE_SIM_LIST_STORE_H_

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "tools/kore-sim/contact_render.h"

namespace contacts::kore_sim {

enum class MutationOp { kInsert, kDelete };

// The simulated contact lists. A list exists when it was configured (--list ID=N) or when its id
// has the form cl-sim-<N> (N ≤ kMaxGeneratedSize). An untouched list is generated on the fly from
// its size; the first mutation materializes it into a vector of ContactKeys, which later reads copy
// page by page. Reset() forgets all mutations. Thread-safe: any I/O thread may call any method.
class ListStore {
 public:
  static constexpr int64_t kMaxGeneratedSize = 10'000'000;
  // Mutations may not grow a list beyond this.
  static constexpr int64_t kMaxMutatedSize = 2 * kMaxGeneratedSize;

  // `configured`: list id → size, from --list.
  explicit ListStore(std::map<std::string, int64_t, std::less<>> configured);

  struct Page {
    uint32_t list_hash = 0;
    int64_t total = 0;                 // the list's size now
    std::vector<ContactKey> contacts;  // contacts [skip, skip + limit) that exist
  };
  bool Exists(std::string_view list_id) const { return InitialSize(list_id).has_value(); }

  // nullopt: no such list.
  std::optional<Page> ReadPage(std::string_view list_id, int64_t skip, int64_t limit) const;

  // Inserts `n` fresh contacts before position `at` (0 ≤ at ≤ size), or deletes up to `n` contacts
  // starting at `at` (0 ≤ at < size). Returns the new size. Errors: kNotFound (no such list),
  // kInvalidArgument (position or count out of range).
  absl::StatusOr<int64_t> Mutate(std::string_view list_id, MutationOp op, int64_t at, int64_t n);

  // Every current `_id` of the list, one per line, in order; nullopt: no such list.
  std::optional<std::string> RenderIds(std::string_view list_id) const;

  // Forgets all mutations. Inserted sequence numbers keep counting, so ids stay unique.
  void Reset();

 private:
  // The size a list has before any mutation; nullopt when the list does not exist.
  std::optional<int64_t> InitialSize(std::string_view list_id) const;

  const std::map<std::string, int64_t, std::less<>> configured_;
  mutable absl::Mutex mu_;
  std::map<std::string, std::vector<ContactKey>, std::less<>> mutated_ ABSL_GUARDED_BY(mu_);
  int64_t next_seq_ ABSL_GUARDED_BY(mu_) = 1;
};

}  // namespace contacts::kore_sim

#endif  // CONTACTS_GATEWAY_TOOLS_KORE_SIM_LIST_STORE_H_
