#include "server/fleet/redis_page_size_memory.h"

#include <utility>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "server/core/encoding.h"

namespace contacts::gateway {

RedisPageSizeMemory::RedisPageSizeMemory(SharedState& shared, PageSizeMemory& local,
                                         std::string upstream, absl::Duration ttl)
    : shared_(shared), local_(local), upstream_(std::move(upstream)), ttl_(ttl) {}

std::string RedisPageSizeMemory::Key(std::string_view account) const {
  return absl::StrCat(shared_.prefix(), "page-size:", upstream_, ":{", AsAbsl(account), "}");
}

void RedisPageSizeMemory::Recall(std::string_view account, Callback done) {
  local_.Recall(account, [this, account = std::string(account),
                          done = std::move(done)](std::optional<int32_t> known) mutable {
    if (known || shared_.mode() == SharedState::Mode::kLocal) {
      std::move(done)(known);
      return;
    }
    std::vector<std::string> get = {"GET", Key(account)};  // before `account` moves below
    shared_.redis().Command(
        std::move(get), [this, account = std::move(account),
                         done = std::move(done)](absl::StatusOr<RedisReply> reply) mutable {
          std::optional<int32_t> size;
          int32_t stored = 0;
          if (reply.ok() && reply->type == RedisReply::Type::kString &&
              absl::SimpleAtoi(reply->text, &stored) && stored > 0) {
            size = stored;
            local_.Learn(account, stored);
          }
          std::move(done)(size);  // nothing known, or Redis unable to say: found again
        });
  });
}

bool RedisPageSizeMemory::Learn(std::string_view account, int32_t size) {
  const bool changed = local_.Learn(account, size);
  if (changed && shared_.mode() != SharedState::Mode::kLocal) {
    // Best effort: a replica that misses it finds the size itself.
    shared_.redis().Command({"SET", Key(account), absl::StrCat(size), "PX",
                             absl::StrCat(absl::ToInt64Milliseconds(ttl_))},
                            [](absl::StatusOr<RedisReply>) {});
  }
  return changed;
}

}  // namespace contacts::gateway
