#include "server/fleet/scripts.h"

#include <algorithm>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "server/core/encoding.h"

namespace contacts::gateway {
namespace {

// No wait, pause or lease a script answers is longer than this; a reply saying so is corrupt.
constexpr int64_t kLongestMicros = int64_t{86400} * 1'000'000;

absl::Status Unexpected(std::string_view what, const RedisReply& reply) {
  return absl::InternalError(
      absl::StrCat("unexpected redis reply to ", AsAbsl(what), ": ", reply.Describe()));
}

bool InRange(const RedisReply& reply, int64_t low, int64_t high) {
  return reply.type == RedisReply::Type::kInteger && reply.integer >= low && reply.integer <= high;
}

bool IsId(absl::string_view text) {
  if (text.empty() || text.size() > 128) return false;
  for (char c : text) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '_' && c != '-') {
      return false;
    }
  }
  return true;
}

}  // namespace

std::string BudgetKey(std::string_view prefix, std::string_view account) {
  return absl::StrCat(AsAbsl(prefix), "budget:{", AsAbsl(account), "}");
}
std::string ReplicasKey(std::string_view prefix) {
  return absl::StrCat(AsAbsl(prefix), "replicas");
}
std::string PageDataKey(std::string_view prefix, std::string_view digest) {
  return absl::StrCat(AsAbsl(prefix), "page:{", AsAbsl(digest), "}");
}
std::string PageLeaseKey(std::string_view prefix, std::string_view digest) {
  return absl::StrCat(AsAbsl(prefix), "page:{", AsAbsl(digest), "}:lease");
}
std::string EventsChannel(std::string_view prefix) {
  return absl::StrCat(AsAbsl(prefix), "events");
}

// Times are µs of Redis's clock. A budget key lives until its schedule, pause and quota are all
// over, and a second more: an expired key and an idle one mean the same.
const char kGrantScript[] = R"lua(
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval, tau = tonumber(ARGV[1]), tonumber(ARGV[2])
local max_wait, not_before = tonumber(ARGV[3]), tonumber(ARGV[4])
local s = redis.call('HMGET', KEYS[1], 'tat', 'pause', 'quota', 'quota_until')
local tat = math.max(tonumber(s[1]) or 0, now)
local pause = tonumber(s[2]) or 0
local quota, quota_until = tonumber(s[3]), tonumber(s[4]) or 0
local free = tat - tau
local start = math.max(free, now + not_before, pause)
local counted = false
if quota and quota_until > start then
  if quota <= 0 then start = quota_until else counted = true end
end
if max_wait >= 0 and start - now > max_wait then
  return {0, start - now}
end
if start > math.max(free, now) then
  tat = start + tau + interval
else
  tat = tat + interval
end
redis.call('HSET', KEYS[1], 'tat', tat)
if counted then redis.call('HSET', KEYS[1], 'quota', quota - 1) end
local last = math.max(tat, pause, quota_until)
redis.call('PEXPIRE', KEYS[1], math.ceil((last - now) / 1000) + 1000)
return {1, start - now, math.max(tat - tau, start) - now}
)lua";

const char kPauseScript[] = R"lua(
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local s = redis.call('HMGET', KEYS[1], 'tat', 'pause', 'quota_until')
local pause = tonumber(s[2]) or 0
local wanted = now + tonumber(ARGV[1])
if wanted > pause then
  pause = wanted
  redis.call('HSET', KEYS[1], 'pause', pause)
  local last = math.max(tonumber(s[1]) or 0, pause, tonumber(s[3]) or 0)
  redis.call('PEXPIRE', KEYS[1], math.ceil((last - now) / 1000) + 1000)
  redis.call('PUBLISH', ARGV[2], 'pause ' .. ARGV[3] .. ' ' .. ARGV[1])
end
return pause - now
)lua";

const char kQuotaScript[] = R"lua(
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local s = redis.call('HMGET', KEYS[1], 'tat', 'pause')
local tat = tonumber(s[1]) or 0
local interval = tonumber(ARGV[3])
local reserved = 0
if tat > now then reserved = math.ceil((tat - now) / interval) end
local quota = math.max(0, tonumber(ARGV[1]) - reserved)
local quota_until = now + tonumber(ARGV[2])
redis.call('HSET', KEYS[1], 'quota', quota, 'quota_until', quota_until)
local last = math.max(tat, tonumber(s[2]) or 0, quota_until)
redis.call('PEXPIRE', KEYS[1], math.ceil((last - now) / 1000) + 1000)
return quota
)lua";

const char kHeartbeatScript[] = R"lua(
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[2])
redis.call('ZADD', KEYS[1], now + ttl, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
redis.call('PEXPIRE', KEYS[1], ttl * 2)
return redis.call('ZCARD', KEYS[1])
)lua";

const char kClaimScript[] = R"lua(
local page = redis.call('GET', KEYS[1])
if page then return {1, page} end
if redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then return {2} end
return {3, redis.call('PTTL', KEYS[2])}
)lua";

const char kPublishScript[] = R"lua(
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
if redis.call('GET', KEYS[2]) == ARGV[1] then redis.call('DEL', KEYS[2]) end
redis.call('PUBLISH', ARGV[4], 'page ' .. ARGV[5])
return 1
)lua";

const char kAbandonScript[] = R"lua(
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
redis.call('PUBLISH', ARGV[2], 'page ' .. ARGV[3])
return 1
)lua";

absl::StatusOr<GrantReply> ParseGrantReply(const RedisReply& reply) {
  const std::vector<RedisReply>& e = reply.elements;
  if (reply.type != RedisReply::Type::kArray || e.empty() || !InRange(e[0], 0, 1) ||
      e.size() != (e[0].integer == 1 ? 3u : 2u) || !InRange(e[1], 0, kLongestMicros)) {
    return Unexpected("a budget grant", reply);
  }
  GrantReply grant;
  grant.granted = e[0].integer == 1;
  grant.wait = absl::Microseconds(e[1].integer);
  if (grant.granted) {
    if (!InRange(e[2], e[1].integer, kLongestMicros)) return Unexpected("a budget grant", reply);
    grant.horizon = absl::Microseconds(e[2].integer);
  }
  return grant;
}

absl::StatusOr<ClaimReply> ParseClaimReply(const RedisReply& reply) {
  const std::vector<RedisReply>& e = reply.elements;
  if (reply.type != RedisReply::Type::kArray || e.empty() || !InRange(e[0], 1, 3)) {
    return Unexpected("a page claim", reply);
  }
  ClaimReply claim;
  switch (e[0].integer) {
    case 1:
      if (e.size() != 2 || e[1].type != RedisReply::Type::kString) {
        return Unexpected("a page claim", reply);
      }
      claim.kind = ClaimReply::Kind::kStored;
      claim.record = e[1].text;
      break;
    case 2:
      if (e.size() != 1) return Unexpected("a page claim", reply);
      claim.kind = ClaimReply::Kind::kLease;
      break;
    default:
      // PTTL is -1 (no expiry) or -2 (gone) only if something else wrote the key: wait a little
      // and claim again.
      if (e.size() != 2 || !InRange(e[1], -2, kLongestMicros / 1000)) {
        return Unexpected("a page claim", reply);
      }
      claim.kind = ClaimReply::Kind::kWait;
      claim.lease_left = absl::Milliseconds(std::max<int64_t>(e[1].integer, 0));
      break;
  }
  return claim;
}

absl::StatusOr<int64_t> ParseIntegerReply(const RedisReply& reply, int64_t low, int64_t high) {
  if (!InRange(reply, low, high)) {
    return Unexpected(absl::StrCat("an integer from ", low, " to ", high), reply);
  }
  return reply.integer;
}

std::optional<FleetEvent> ParseFleetEvent(std::string_view message) {
  std::vector<absl::string_view> words = absl::StrSplit(AsAbsl(message), ' ');
  FleetEvent event;
  if (words.size() == 2 && words[0] == "page" && words[1].size() == 32 &&
      std::all_of(words[1].begin(), words[1].end(),
                  [](char c) { return absl::ascii_isxdigit(static_cast<unsigned char>(c)); })) {
    event.kind = FleetEvent::Kind::kPage;
    event.subject = std::string(words[1]);
    return event;
  }
  int64_t micros = 0;
  if (words.size() == 3 && words[0] == "pause" && IsId(words[1]) &&
      absl::SimpleAtoi(words[2], &micros) && micros >= 0 && micros <= kLongestMicros) {
    event.kind = FleetEvent::Kind::kPause;
    event.subject = std::string(words[1]);
    event.pause = absl::Microseconds(micros);
    return event;
  }
  return std::nullopt;
}

}  // namespace contacts::gateway
