#ifndef CONTACTS_GATEWAY_SERVER_CORE_PAGE_SIZE_MEMORY_H_
#define CONTACTS_GATEWAY_SERVER_CORE_PAGE_SIZE_MEMORY_H_

#include <cstdint>
#include <optional>
#include <string_view>

#include "absl/functional/any_invocable.h"

namespace contacts::gateway {

// The largest page the upstream serves, remembered per account: Kore.ai does not document its cap
// (docs/upstream.md, "The largest page size"), so the first stream of an account finds it, and
// later streams ask for it at once instead of spending requests on finding it again. One memory
// per upstream; a shared store keys its entries by upstream and account, so that a whole fleet
// learns each account once. Implementations stay bounded however many accounts come and go.
//
// Implementations: LocalPageSizeMemory (stream/, one process), RedisPageSizeMemory (fleet/, every
// replica, through Redis, with a local one in front).
class PageSizeMemory {
 public:
  using Callback = absl::AnyInvocable<void(std::optional<int32_t>) &&>;

  virtual ~PageSizeMemory() = default;

  // Calls `done` exactly once with the page size remembered for `account` (nullopt: nothing
  // known): inside Recall when the memory knows at once (hold no lock around Recall), else later
  // on a thread of the memory's. A memory that cannot answer (e.g. unreachable) answers nullopt.
  virtual void Recall(std::string_view account, Callback done) = 0;

  // A stream found that the upstream serves pages of at most `size` for `account` (a page came
  // back capped, or was served after a larger one was refused): remembered from now on, in place
  // of what was. Never blocks. Returns whether this changed what the memory held, so that the
  // change is logged once.
  virtual bool Learn(std::string_view account, int32_t size) = 0;
};

}  // namespace contacts::gateway

#endif  // CONTACTS_GATEWAY_SERVER_CORE_PAGE_SIZE_MEMORY_H_
