#ifndef CONTACTS_GATEWAY_SERVER_FLEET_SCRIPTS_H_
#define CONTACTS_GATEWAY_SERVER_FLEET_SCRIPTS_H_

// What replicas keep in Redis, the Lua scripts that change it atomically, and the readers of
// their replies and of the pub/sub messages. Every reader takes untrusted input (whatever the
// server sent) and refuses anything but the shapes the scripts return (fuzz_fleet_replies).
//
// Keys, under a prefix (--shared-state-prefix), each with a TTL:
//   <prefix>budget:{<account>}        hash: tat, pause, quota, quota_until (Redis TIME, µs)
//   <prefix>replicas                  sorted set: replica id → heartbeat expiry (ms)
//   <prefix>page:{<digest>}           a stored page (EncodePageRecord), for --page-cache-ttl
//   <prefix>page:{<digest>}:lease     who fetches that page now, for the lease time
// The {…} hash tags keep an account's, or a page's, keys in one Redis Cluster slot.
// Channel <prefix>events carries "page <digest>" (a page was stored or given up) and
// "pause <account> <µs>" (the upstream answered 429: nothing before that long from now).

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "server/fleet/resp.h"

namespace contacts::gateway {

std::string BudgetKey(std::string_view prefix, std::string_view account);
std::string ReplicasKey(std::string_view prefix);
std::string PageDataKey(std::string_view prefix, std::string_view digest);
std::string PageLeaseKey(std::string_view prefix, std::string_view digest);
std::string EventsChannel(std::string_view prefix);

// GCRA over reserved slots, one slot per call, on Redis's clock (TIME: no clock is trusted
// between replicas). KEYS: budget. ARGV: interval µs, burst tolerance µs ((burst-1) intervals),
// longest wait µs (-1: none), not before µs from now. Reserves the first slot allowed by the
// account's schedule, pause and quota, and answers {1, wait µs, horizon µs} (horizon: when the
// schedule is free again), or, when that slot is further than the longest wait, reserves nothing
// and answers {0, wait µs}.
extern const char kGrantScript[];
// KEYS: budget. ARGV: pause µs, events channel, account. Pauses the account (no slot before
// now + pause) and tells every replica; answers the pause left, µs.
extern const char kPauseScript[];
// KEYS: budget. ARGV: remaining, reset µs, interval µs. The upstream said `remaining` requests
// are left until `reset`: slots reserved already are counted against it. Answers the quota kept.
extern const char kQuotaScript[];
// KEYS: replicas. ARGV: replica id, ttl ms. Answers how many replicas are alive.
extern const char kHeartbeatScript[];
// KEYS: page, lease. ARGV: lease token, lease ms. {1, record}: stored; {2}: the lease is the
// caller's; {3, ms}: another replica holds the lease for that long yet.
extern const char kClaimScript[];
// KEYS: page, lease. ARGV: lease token, record, ttl ms, events channel, digest. Stores the page,
// ends the caller's lease, wakes the waiters.
extern const char kPublishScript[];
// KEYS: lease. ARGV: lease token, events channel, digest. Ends the caller's lease, wakes the
// waiters (one of them takes the lease).
extern const char kAbandonScript[];

// The replies, read.
struct GrantReply {
  bool granted = false;
  absl::Duration wait;     // until the slot (granted) or the first free one (refused)
  absl::Duration horizon;  // granted: until the account's schedule is free again
};
absl::StatusOr<GrantReply> ParseGrantReply(const RedisReply& reply);

struct ClaimReply {
  enum class Kind { kStored, kLease, kWait };
  Kind kind = Kind::kLease;
  std::string record;         // kStored
  absl::Duration lease_left;  // kWait
};
absl::StatusOr<ClaimReply> ParseClaimReply(const RedisReply& reply);

// An integer reply within [low, high] (the heartbeat's replica count, the pause left, ...).
absl::StatusOr<int64_t> ParseIntegerReply(const RedisReply& reply, int64_t low, int64_t high);

// A message on the events channel; nullopt for anything else.
struct FleetEvent {
  enum class Kind { kPage, kPause };
  Kind kind = Kind::kPage;
  std::string subject;   // kPage: the page's digest; kPause: the account
  absl::Duration pause;  // kPause
};
std::optional<FleetEvent> ParseFleetEvent(std::string_view message);

}  // namespace contacts::gateway

#endif  // CONTACTS_GATEWAY_SERVER_FLEET_SCRIPTS_H_
