#ifndef CONTACTS_GATEWAY_SERVER_FLEET_REDIS_PAGE_SIZE_MEMORY_H_
#define CONTACTS_GATEWAY_SERVER_FLEET_REDIS_PAGE_SIZE_MEMORY_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "absl/time/time.h"
#include "server/core/page_size_memory.h"
#include "server/fleet/shared_state.h"

namespace contacts::gateway {

// The PageSizeMemory of a fleet: what one replica learns, every replica recalls, so that a fleet
// finds each account's page size once. In front, this process's memory (`local`): it answers at
// once when it knows, and is all there is while Redis is unusable. What it does not know is read
// from Redis (one GET; an answer found there is kept locally too); what a stream learns is
// written there for `ttl` (`<prefix>page-size:<upstream>:{<account>}`, an integer). Callbacks
// run inside Recall or on the Redis connection's strand. Thread-safe; `shared` and `local` must
// outlive it, and it must outlive the io_context's threads.
class RedisPageSizeMemory final : public PageSizeMemory {
 public:
  static constexpr absl::Duration kDefaultTtl = absl::Hours(24);

  RedisPageSizeMemory(SharedState& shared, PageSizeMemory& local, std::string upstream,
                      absl::Duration ttl = kDefaultTtl);

  void Recall(std::string_view account, Callback done) override;
  bool Learn(std::string_view account, int32_t size) override;

  // The Redis key of `account`'s page size.
  std::string Key(std::string_view account) const;

 private:
  SharedState& shared_;
  PageSizeMemory& local_;
  const std::string upstream_;
  const absl::Duration ttl_;
};

}  // namespace contacts::gateway

#endif  // CONTACTS_GATEWAY_SERVER_FLEET_REDIS_PAGE_SIZE_MEMORY_H_
