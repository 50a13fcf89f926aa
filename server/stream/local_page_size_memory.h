#ifndef CONTACTS_GATEWAY_SERVER_STREAM_LOCAL_PAGE_SIZE_MEMORY_H_
#define CONTACTS_GATEWAY_SERVER_STREAM_LOCAL_PAGE_SIZE_MEMORY_H_

#include <cstddef>
#include <cstdint>
#include <list>
#include <optional>
#include <string>
#include <string_view>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "server/core/page_size_memory.h"

namespace contacts::gateway {

// The PageSizeMemory of one process: up to `capacity` accounts, the least recently used forgotten
// first (a forgotten account is found again by its next stream). Recall answers inside the call.
// Thread-safe.
class LocalPageSizeMemory final : public PageSizeMemory {
 public:
  static constexpr size_t kDefaultCapacity = 10000;

  explicit LocalPageSizeMemory(size_t capacity = kDefaultCapacity);

  void Recall(std::string_view account, Callback done) override;
  bool Learn(std::string_view account, int32_t size) override;

  // For tests: the size remembered for `account`, without touching its recency.
  std::optional<int32_t> Peek(std::string_view account) const;
  size_t size() const;

 private:
  struct Entry {
    std::string account;
    int32_t page_size;
  };

  const size_t capacity_;
  mutable absl::Mutex mu_;
  std::list<Entry> entries_ ABSL_GUARDED_BY(mu_);  // most recently used first
  absl::flat_hash_map<std::string, std::list<Entry>::iterator> index_ ABSL_GUARDED_BY(mu_);
};

}  // namespace contacts::gateway

#endif  // CONTACTS_GATEWAY_SERVER_STREAM_LOCAL_PAGE_SIZE_MEMORY_H_
