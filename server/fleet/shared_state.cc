#include "server/fleet/shared_state.h"

#include <unistd.h>

#include <boost/asio/post.hpp>
#include <random>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "server/core/log.h"
#include "server/core/metrics.h"

namespace contacts::gateway {
namespace {

namespace asio = boost::asio;

std::string DefaultReplicaId() {
  char host[256] = {};
  if (gethostname(host, sizeof(host) - 1) != 0 || host[0] == '\0')
    absl::SNPrintF(host, 8, "gateway");
  std::random_device random;
  return absl::StrFormat("%s-%08x", host, random());
}

const char* ModeName(SharedState::Mode mode) {
  switch (mode) {
    case SharedState::Mode::kLocal:
      return "local";
    case SharedState::Mode::kRejoining:
      return "rejoining";
    case SharedState::Mode::kShared:
      return "shared";
  }
  return "?";
}

}  // namespace

absl::StatusOr<std::unique_ptr<SharedState>> SharedState::Create(asio::io_context& io,
                                                                 SharedStateOptions options) {
  if (options.replica_id.empty()) options.replica_id = DefaultReplicaId();
  options.min_replicas = std::max<int64_t>(1, options.min_replicas);
  absl::StatusOr<std::shared_ptr<RedisConnection>> commands =
      RedisConnection::Create(io, options.redis, "commands");
  if (!commands.ok()) return commands.status();
  absl::StatusOr<std::shared_ptr<RedisConnection>> subscriber =
      RedisConnection::Create(io, options.redis, "subscriber");
  if (!subscriber.ok()) return subscriber.status();
  return std::unique_ptr<SharedState>(
      new SharedState(io, std::move(options), *std::move(commands), *std::move(subscriber)));
}

SharedState::SharedState(asio::io_context& io, SharedStateOptions options,
                         std::shared_ptr<RedisConnection> commands,
                         std::shared_ptr<RedisConnection> subscriber)
    : options_(std::move(options)),
      heartbeat_(kHeartbeatScript),
      commands_(std::move(commands)),
      subscriber_(std::move(subscriber)),
      strand_(asio::make_strand(io)),
      fleet_size_(options_.min_replicas),
      up_gauge_(Metrics().shared_state_up.With({})),
      replicas_gauge_(Metrics().shared_state_replicas.With({})),
      heartbeat_timer_(strand_) {}

SharedState::~SharedState() {
  if (mode_.load() != Mode::kLocal) up_gauge_.Add(-1);
  replicas_gauge_.Add(-reported_replicas_);
}

void SharedState::OnEvent(std::function<void(const FleetEvent&)> listener) {
  event_listeners_.push_back(std::move(listener));
}

void SharedState::OnMode(std::function<void(Mode)> listener) {
  mode_listeners_.push_back(std::move(listener));
}

void SharedState::Start() {
  subscriber_->Subscribe({EventsChannel(options_.prefix)}, {},
                         [this](std::string_view, std::string_view message) {
                           std::optional<FleetEvent> event = ParseFleetEvent(message);
                           if (!event) return;
                           asio::post(strand_, [this, event = *std::move(event)] {
                             if (stopped_) return;
                             for (const auto& listener : event_listeners_) listener(event);
                           });
                         });
  commands_->Start([this](bool up, const absl::Status& why) {
    asio::post(strand_, [this, up, why] { Connection(true, up, why); });
  });
  subscriber_->Start([this](bool up, const absl::Status& why) {
    asio::post(strand_, [this, up, why] { Connection(false, up, why); });
  });
  asio::post(strand_, [this] { Heartbeat(); });
}

void SharedState::Stop() {
  asio::post(strand_, [this] {
    if (stopped_) return;
    stopped_ = true;
    heartbeat_timer_.cancel();
    subscriber_->Stop();
    // Leave the fleet, so the others' share grows at once rather than after the heartbeat TTL;
    // the connection closes once that is answered (or has failed).
    commands_->Command({"ZREM", ReplicasKey(options_.prefix), options_.replica_id},
                       [commands = commands_](absl::StatusOr<RedisReply>) { commands->Stop(); });
  });
}

void SharedState::Connection(bool commands, bool up, const absl::Status& why) {
  if (stopped_) return;
  const bool was_up = commands_up_ && subscriber_up_;
  (commands ? commands_up_ : subscriber_up_) = up;
  if (!was_up && commands_up_ && subscriber_up_) {
    // Connected: the replica joins once a heartbeat (a write) has gone through (Counted), so a
    // server that takes no writes, such as a read-only replica, is never taken for shared state.
    Heartbeat();
    return;
  }
  if (up) return;
  if (mode_.load() != Mode::kLocal) {
    size_before_ = fleet_size();  // as last known: heartbeats do not count while away
    served_alone_ = true;
    SetMode(Mode::kLocal, why);
    return;
  }
  if (!served_alone_) {
    served_alone_ = true;
    size_before_ = fleet_size();
  }
  if (!ever_up_ && !told_unavailable_) {
    told_unavailable_ = true;  // not connected since the start: say why, once
    Log(Severity::kWarning,
        absl::StrCat("shared state unavailable (", why.message(),
                     "): each replica keeps to its share (1/", fleet_size(),
                     ") of every account's upstream rate and fetches pages without sharing "
                     "until Redis answers"));
  }
}

void SharedState::Heartbeat() {
  if (stopped_) return;
  heartbeat_timer_.cancel();
  // Only while both connections are up: a half-connected replica neither counts itself nor takes
  // the count of a Redis that has just restarted empty as the fleet's size.
  if (commands_up_ && subscriber_up_) {
    commands_->Eval(heartbeat_, {ReplicasKey(options_.prefix)},
                    {options_.replica_id,
                     absl::StrCat(absl::ToInt64Milliseconds(3 * options_.heartbeat_interval))},
                    [this](absl::StatusOr<RedisReply> reply) {
                      if (!reply.ok()) return;
                      absl::StatusOr<int64_t> replicas = ParseIntegerReply(*reply, 1, 1 << 20);
                      if (!replicas.ok()) {
                        Log(Severity::kDebug, std::string(replicas.status().message()));
                        return;
                      }
                      asio::post(strand_, [this, n = *replicas] { Counted(n); });
                    });
  }
  // A subscriber that stopped answering is only noticed by asking it something.
  if (subscriber_up_) subscriber_->Command({"PING"}, [](absl::StatusOr<RedisReply>) {});
  heartbeat_timer_.expires_after(absl::ToChronoNanoseconds(options_.heartbeat_interval));
  heartbeat_timer_.async_wait([this](boost::system::error_code ec) {
    if (!ec) Heartbeat();
  });
}

void SharedState::Counted(int64_t replicas) {
  if (stopped_ || !commands_up_ || !subscriber_up_) return;
  const absl::Time now = absl::Now();
  if (mode_.load() == Mode::kLocal) {
    // Replicas that lost Redis with this one may still keep to their share on their own: rejoin
    // until as many replicas heartbeat again as there were, or until each would have (its next
    // reconnect, a connect and the heartbeat TTL; who is not back by then is gone). Nobody to
    // wait for if this replica was never on its own.
    joined_ = now;
    if (!served_alone_) size_before_ = 0;
    ever_up_ = true;
    SetMode(Mode::kRejoining, absl::OkStatus());
  }
  const absl::Duration others_back = options_.redis.reconnect_max + options_.redis.connect_timeout +
                                     3 * options_.heartbeat_interval;
  const bool rejoined = replicas >= size_before_ || now - joined_ >= others_back;
  // While rejoining, shares stay those of the fleet as it was: a Redis restarted empty counts
  // only the replicas back so far.
  int64_t size = std::max(replicas, options_.min_replicas);
  if (!rejoined) size = std::max(size, size_before_);
  fleet_size_.store(size, std::memory_order_release);
  replicas_gauge_.Add(size - reported_replicas_);
  reported_replicas_ = size;
  if (rejoined) SetMode(Mode::kShared, absl::OkStatus());
}

void SharedState::SetMode(Mode mode, const absl::Status& why) {
  const Mode before = mode_.exchange(mode);
  if (before == mode) return;
  if ((before == Mode::kLocal) != (mode == Mode::kLocal)) {
    up_gauge_.Add(mode == Mode::kLocal ? -1 : 1);
  }
  const std::string where = commands_->url().Display();
  switch (mode) {
    case Mode::kLocal:
      if (before != Mode::kLocal) {
        Log(Severity::kWarning,
            absl::StrCat("shared state lost (", why.message(),
                         "): each replica keeps to its share (1/", fleet_size(),
                         ") of every account's upstream rate and fetches pages without sharing "
                         "until Redis is back"));
      }
      break;
    case Mode::kRejoining:
      Log(Severity::kInfo,
          absl::StrCat("shared state: connected to ", where, " as replica ", options_.replica_id,
                       size_before_ > 0
                           ? absl::StrCat("; keeping to this replica's share until the "
                                          "other replicas (",
                                          size_before_, " before) are back")
                           : std::string()));
      break;
    case Mode::kShared:
      Log(Severity::kInfo, absl::StrCat("shared state: sharing the upstream budget and pages with ",
                                        fleet_size(), " replica(s) through ", where));
      break;
  }
  Log(Severity::kDebug,
      absl::StrCat("shared state mode: ", ModeName(before), " -> ", ModeName(mode)));
  for (const auto& listener : mode_listeners_) listener(mode);
}

}  // namespace contacts::gateway
