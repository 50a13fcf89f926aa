#ifndef CONTACTS_GATEWAY_SERVER_FLEET_REDIS_PAGE_STORE_H_
#define CONTACTS_GATEWAY_SERVER_FLEET_REDIS_PAGE_STORE_H_

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/time/time.h"
#include "server/core/page_store.h"
#include "server/fleet/shared_state.h"

namespace contacts::gateway {

struct FleetPageOptions {
  absl::Duration ttl = absl::Seconds(30);    // a stored page is served this long
  absl::Duration lease = absl::Seconds(10);  // a fetcher that neither publishes nor gives up
                                             // within this is taken over
  size_t max_page_bytes = 1 << 20;           // larger pages are not shared
};

// Pages shared by every replica through Redis, stored as EncodePageRecord (the gateway's parsed
// form: the contacts' wire bytes, checked again when read) for `ttl`. Single flight fleet-wide:
// Claim finds a stored page, or takes the lease (SET NX PX: one fetcher per page in the fleet,
// taken over when it expires), or waits for the holder: woken by the events channel ("page
// <digest>") when it publishes or gives up, or by a timer when its lease runs out. Keys are a
// digest of PageKey (hash tags keep a page and its lease in one Cluster slot).
// While Redis is unusable a claim answers at once with an empty lease (fetch without sharing),
// and waiters are let go the same way. Callbacks run on the store's strand, never inside Claim.
// Thread-safe; `shared` must outlive it, and it must outlive the io_context's threads.
class RedisPageStore final : public PageStore {
 public:
  RedisPageStore(boost::asio::io_context& io, SharedState& shared, FleetPageOptions options);
  ~RedisPageStore() override;

  void Claim(const std::string& key, absl::Time deadline, std::shared_ptr<Cancellation> cancel,
             Callback done) override;
  void Publish(const std::string& key, const std::string& lease, const Page& page) override;
  void Abandon(const std::string& key, const std::string& lease) override;

  // The digest of a PageKey that names its Redis keys (hex, 32 characters).
  static std::string Digest(const std::string& key);

  // For tests: pages found stored, leases taken, claims that had to wait, stored records refused.
  int64_t found() const { return found_.load(); }
  int64_t leases() const { return leases_.load(); }
  int64_t waits() const { return waits_.load(); }
  int64_t rejected() const { return rejected_.load(); }

 private:
  struct Waiter;
  using Strand = boost::asio::strand<boost::asio::io_context::executor_type>;

  // On strand_.
  void Ask(uint64_t id);
  void Answered(uint64_t id, const std::string& digest, const std::string& token,
                absl::StatusOr<RedisReply> reply);
  void GiveBack(const std::string& digest, const std::string& lease);  // any thread
  void Woken(const std::string& digest);
  void Finish(uint64_t id, absl::StatusOr<Claimed> result);
  void LetAllGo();

  SharedState& shared_;
  const FleetPageOptions options_;
  const RedisScript claim_, publish_, abandon_;
  Strand strand_;

  // On strand_ only.
  absl::flat_hash_map<uint64_t, std::unique_ptr<Waiter>> waiters_;
  absl::flat_hash_map<std::string, std::vector<uint64_t>> by_digest_;
  uint64_t last_id_ = 0;
  std::mt19937_64 random_;

  std::atomic<int64_t> found_{0}, leases_{0}, waits_{0}, rejected_{0};
};

}  // namespace contacts::gateway

#endif  // CONTACTS_GATEWAY_SERVER_FLEET_REDIS_PAGE_STORE_H_
