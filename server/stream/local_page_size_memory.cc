#include "server/stream/local_page_size_memory.h"

#include <algorithm>
#include <utility>

#include "server/core/encoding.h"

namespace contacts::gateway {

LocalPageSizeMemory::LocalPageSizeMemory(size_t capacity)
    : capacity_(std::max<size_t>(1, capacity)) {}

void LocalPageSizeMemory::Recall(std::string_view account, Callback done) {
  std::optional<int32_t> size;
  {
    absl::MutexLock lock(&mu_);
    if (auto it = index_.find(AsAbsl(account)); it != index_.end()) {
      entries_.splice(entries_.begin(), entries_, it->second);
      size = it->second->page_size;
    }
  }
  std::move(done)(size);
}

bool LocalPageSizeMemory::Learn(std::string_view account, int32_t size) {
  absl::MutexLock lock(&mu_);
  if (auto it = index_.find(AsAbsl(account)); it != index_.end()) {
    entries_.splice(entries_.begin(), entries_, it->second);
    return std::exchange(it->second->page_size, size) != size;
  }
  entries_.push_front(Entry{std::string(account), size});
  index_.emplace(entries_.front().account, entries_.begin());
  if (entries_.size() > capacity_) {
    index_.erase(entries_.back().account);
    entries_.pop_back();
  }
  return true;
}

std::optional<int32_t> LocalPageSizeMemory::Peek(std::string_view account) const {
  absl::MutexLock lock(&mu_);
  if (auto it = index_.find(AsAbsl(account)); it != index_.end()) return it->second->page_size;
  return std::nullopt;
}

size_t LocalPageSizeMemory::size() const {
  absl::MutexLock lock(&mu_);
  return entries_.size();
}

}  // namespace contacts::gateway
