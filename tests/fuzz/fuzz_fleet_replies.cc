// libFuzzer target: what turns Redis's bytes into grants, claims and fleet events. The input is
// RESP as a server might send it, fed to RespReader in pieces (the first byte picks the piece
// size); every reply read is given to each reply parser, and every string in it to the events
// parser (pub/sub messages) and, for claims, to DecodePageRecord. Checked: the reader never
// accepts more than it was told (array sizes, buffered bytes), parsers keep their invariants
// (waits within a day, never negative; a grant's horizon not before its slot).
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string_view>

#include "absl/time/time.h"
#include "server/core/page.h"
#include "server/fleet/resp.h"
#include "server/fleet/scripts.h"

namespace {

using contacts::gateway::RedisReply;

void Fail(const char* what) {
  std::fprintf(stderr, "fuzz_fleet_replies: %s\n", what);
  std::abort();
}

void Check(const RedisReply& reply) {
  using namespace contacts::gateway;  // NOLINT(build/namespaces)
  if (absl::StatusOr<GrantReply> grant = ParseGrantReply(reply); grant.ok()) {
    if (grant->wait < absl::ZeroDuration() || grant->wait > absl::Hours(24)) Fail("grant wait");
    if (grant->granted && grant->horizon < grant->wait) Fail("grant horizon");
  }
  if (absl::StatusOr<ClaimReply> claim = ParseClaimReply(reply); claim.ok()) {
    if (claim->lease_left < absl::ZeroDuration()) Fail("negative lease");
    if (claim->kind == ClaimReply::Kind::kStored) (void)DecodePageRecord(claim->record);
  }
  if (absl::StatusOr<int64_t> n = ParseIntegerReply(reply, 1, 1 << 20); n.ok()) {
    if (*n < 1 || *n > (1 << 20)) Fail("integer out of range");
  }
  std::function<void(const RedisReply&)> walk = [&](const RedisReply& r) {
    if (std::optional<FleetEvent> event = ParseFleetEvent(r.text)) {
      if (event->subject.empty() || event->pause < absl::ZeroDuration()) Fail("event");
    }
    if (r.elements.size() > static_cast<size_t>(RespReader::kMaxElements)) Fail("array size");
    for (const RedisReply& e : r.elements) walk(e);
  };
  walk(reply);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const size_t piece = 1 + data[0] % 64;
  std::string_view bytes(reinterpret_cast<const char*>(data) + 1, size - 1);
  contacts::gateway::RespReader reader(64 << 10);
  while (!bytes.empty()) {
    const std::string_view chunk = bytes.substr(0, piece);
    bytes.remove_prefix(chunk.size());
    if (!reader.Feed(chunk).ok()) return 0;
    for (;;) {
      absl::StatusOr<std::optional<RedisReply>> next = reader.Next();
      if (!next.ok()) return 0;
      if (!*next) break;
      Check(**next);
    }
  }
  return 0;
}
