#ifndef CONTACTS_GATEWAY_SERVER_FLEET_SHARED_STATE_H_
#define CONTACTS_GATEWAY_SERVER_FLEET_SHARED_STATE_H_

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "server/core/metrics.h"
#include "server/fleet/redis_connection.h"
#include "server/fleet/scripts.h"

namespace contacts::gateway {

struct SharedStateOptions {
  RedisOptions redis;
  std::string prefix = "contacts-gateway:";  // of every key and channel
  std::string replica_id;                    // "" = host name and a random suffix
  // Each replica refreshes its entry in <prefix>replicas this often; an entry lives 3 times as
  // long, so the fleet's size follows replicas that come and go within seconds.
  absl::Duration heartbeat_interval = absl::Seconds(1);
  // The fleet's size assumed before Redis has told it (unreachable at start), and its floor.
  int64_t min_replicas = 1;
};

// The gateway's link to the state replicas share: a command connection and a subscriber
// connection to Redis, the replica heartbeats that give the fleet's size, and the state the
// budget and the page store act on:
//   kShared     both connections up, every replica known to share again: use Redis
//   kRejoining  up again after an outage, but replicas that kept to their share on their own may
//               not have come back yet: use Redis, and keep to the share too, until as many
//               replicas heartbeat as before (or all would have: backoff + connect + 3 heartbeats)
//   kLocal      Redis unusable: every replica keeps to its share of each account's rate, pages
//               are fetched without sharing
// A change of state is logged once (JSON log) and shown as contacts_gateway_shared_state_up.
// Listeners run on the shared state's strand, one at a time. Thread-safe. Stop() before the
// io_context stops; destroy after its threads are joined.
class SharedState {
 public:
  enum class Mode { kLocal, kRejoining, kShared };

  // Errors: kInvalidArgument for a bad URL or CA file.
  static absl::StatusOr<std::unique_ptr<SharedState>> Create(boost::asio::io_context& io,
                                                             SharedStateOptions options);
  ~SharedState();

  // Before Start: called on every message of the events channel, and on every change of mode.
  void OnEvent(std::function<void(const FleetEvent&)> listener);
  void OnMode(std::function<void(Mode)> listener);
  void Start();
  // Leaves the fleet (removes the heartbeat, best effort) and closes the connections.
  void Stop();

  Mode mode() const { return mode_.load(std::memory_order_acquire); }
  // The fleet's size: from the heartbeats, the last known while Redis is away; at least
  // min_replicas.
  int64_t fleet_size() const { return fleet_size_.load(std::memory_order_acquire); }
  RedisConnection& redis() { return *commands_; }
  const std::string& prefix() const { return options_.prefix; }
  const std::string& replica_id() const { return options_.replica_id; }
  boost::asio::strand<boost::asio::io_context::executor_type>& strand() { return strand_; }

 private:
  SharedState(boost::asio::io_context& io, SharedStateOptions options,
              std::shared_ptr<RedisConnection> commands,
              std::shared_ptr<RedisConnection> subscriber);

  void Connection(bool commands, bool up, const absl::Status& why);  // on strand_
  void Heartbeat();                                                  // on strand_
  void Counted(int64_t replicas);                                    // on strand_
  void SetMode(Mode mode, const absl::Status& why);                  // on strand_

  const SharedStateOptions options_;
  const RedisScript heartbeat_;
  const std::shared_ptr<RedisConnection> commands_;
  const std::shared_ptr<RedisConnection> subscriber_;
  boost::asio::strand<boost::asio::io_context::executor_type> strand_;
  std::atomic<Mode> mode_{Mode::kLocal};
  std::atomic<int64_t> fleet_size_;
  Gauge& up_gauge_;        // contacts_gateway_shared_state_up: exists once a SharedState does
  Gauge& replicas_gauge_;  // contacts_gateway_shared_state_replicas

  // On strand_ only.
  std::vector<std::function<void(const FleetEvent&)>> event_listeners_;
  std::vector<std::function<void(Mode)>> mode_listeners_;
  boost::asio::steady_timer heartbeat_timer_;
  bool stopped_ = false;
  bool commands_up_ = false;
  bool subscriber_up_ = false;
  bool ever_up_ = false;
  bool served_alone_ = false;      // has been without Redis since it started
  bool told_unavailable_ = false;  // logged that Redis is not there from the start
  int64_t size_before_ = 0;        // the fleet's size when Redis went away
  int64_t reported_replicas_ = 0;  // in contacts_gateway_shared_state_replicas
  absl::Time joined_;              // when the first heartbeat after connecting went through
};

}  // namespace contacts::gateway

#endif  // CONTACTS_GATEWAY_SERVER_FLEET_SHARED_STATE_H_
