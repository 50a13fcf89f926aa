#include "tools/kore-sim/page_cache.h"

#include <utility>

namespace contacts::kore_sim {

uint64_t PageCache::Generation() const {
  absl::MutexLock lock(&mu_);
  return generation_;
}

PageCache::Body PageCache::Find(std::string_view list_id, int64_t skip, int64_t limit) const {
  if (max_bytes_ == 0) return nullptr;
  absl::MutexLock lock(&mu_);
  auto it = bodies_.find(Key(std::string(list_id), skip, limit));
  return it == bodies_.end() ? nullptr : it->second;
}

void PageCache::Store(std::string_view list_id, int64_t skip, int64_t limit, uint64_t generation,
                      Body body) {
  const auto size = static_cast<int64_t>(body->body.size());
  absl::MutexLock lock(&mu_);
  if (generation != generation_ || bytes_ + size > max_bytes_) return;
  if (bodies_.try_emplace(Key(std::string(list_id), skip, limit), std::move(body)).second) {
    bytes_ += size;
  }
}

void PageCache::Invalidate() {
  absl::MutexLock lock(&mu_);
  bodies_.clear();
  bytes_ = 0;
  ++generation_;
}

}  // namespace contacts::kore_sim
