#include "server/fleet/redis_page_store.h"

#include <openssl/sha.h>

#include <algorithm>
#include <boost/asio/post.hpp>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "server/core/log.h"

namespace contacts::gateway {
namespace {

namespace asio = boost::asio;

// A waiter asks again this long after the holder's lease ran out (Redis expires keys on time,
// give or take a millisecond).
constexpr absl::Duration kAfterLease = absl::Milliseconds(5);

}  // namespace

struct RedisPageStore::Waiter {
  explicit Waiter(Strand& strand) : deadline(strand), retry(strand) {}
  std::string key;
  std::string digest;
  std::shared_ptr<Cancellation> cancel;
  Cancellation::Handle handle = 0;
  Callback done;
  bool asking = false;  // a claim is on its way
  bool woken = false;   // the page was published or given up meanwhile: ask again at once
  boost::asio::steady_timer deadline;
  boost::asio::steady_timer retry;  // when the holder's lease runs out
};

RedisPageStore::RedisPageStore(asio::io_context& io, SharedState& shared, FleetPageOptions options)
    : shared_(shared),
      options_(options),
      claim_(kClaimScript),
      publish_(kPublishScript),
      abandon_(kAbandonScript),
      strand_(asio::make_strand(io)),
      random_(std::random_device{}()) {
  shared_.OnEvent([this](const FleetEvent& event) {
    if (event.kind != FleetEvent::Kind::kPage) return;
    asio::post(strand_, [this, digest = event.subject] { Woken(digest); });
  });
  shared_.OnMode([this](SharedState::Mode mode) {
    if (mode == SharedState::Mode::kLocal) asio::post(strand_, [this] { LetAllGo(); });
  });
}

RedisPageStore::~RedisPageStore() {
  for (auto& [id, waiter] : waiters_) waiter->cancel->Forget(waiter->handle);
}

std::string RedisPageStore::Digest(const std::string& key) {
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(key.data()), key.size(), digest);
  return absl::BytesToHexString(absl::string_view(reinterpret_cast<const char*>(digest), 16));
}

void RedisPageStore::Claim(const std::string& key, absl::Time deadline,
                           std::shared_ptr<Cancellation> cancel, Callback done) {
  asio::post(
      strand_, [this, key, deadline, cancel = std::move(cancel), done = std::move(done)]() mutable {
        if (shared_.mode() == SharedState::Mode::kLocal) {
          std::move(done)(Claimed{});  // fetch without sharing
          return;
        }
        const uint64_t id = ++last_id_;
        auto waiter = std::make_unique<Waiter>(strand_);
        Waiter& w = *waiter;
        w.key = key;
        w.digest = Digest(key);
        w.cancel = std::move(cancel);
        w.done = std::move(done);
        waiters_.emplace(id, std::move(waiter));
        by_digest_[w.digest].push_back(id);
        if (deadline != absl::InfiniteFuture()) {
          w.deadline.expires_after(
              absl::ToChronoNanoseconds(std::max(absl::ZeroDuration(), deadline - absl::Now())));
          w.deadline.async_wait([this, id](boost::system::error_code ec) {
            if (ec) return;
            Finish(id, absl::DeadlineExceededError(
                           "the call's deadline passed while another replica fetched the page"));
          });
        }
        w.handle = w.cancel->OnCancel([this, id] {
          asio::post(strand_,
                     [this, id] { Finish(id, absl::CancelledError("the call was cancelled")); });
        });
        Ask(id);
      });
}

void RedisPageStore::Ask(uint64_t id) {
  Waiter& w = *waiters_.at(id);
  w.asking = true;
  w.woken = false;
  const std::string token = absl::StrFormat("%016x%016x", random_(), random_());
  shared_.redis().Eval(
      claim_, {PageDataKey(shared_.prefix(), w.digest), PageLeaseKey(shared_.prefix(), w.digest)},
      {token, absl::StrCat(std::max<int64_t>(1, absl::ToInt64Milliseconds(options_.lease)))},
      [this, id, digest = w.digest, token](absl::StatusOr<RedisReply> reply) mutable {
        asio::post(strand_, [this, id, digest = std::move(digest), token = std::move(token),
                             reply = std::move(reply)]() mutable {
          Answered(id, digest, token, std::move(reply));
        });
      });
}

void RedisPageStore::Answered(uint64_t id, const std::string& digest, const std::string& token,
                              absl::StatusOr<RedisReply> reply) {
  absl::StatusOr<ClaimReply> claim =
      !reply.ok()         ? absl::StatusOr<ClaimReply>(reply.status())
      : reply->is_error() ? absl::StatusOr<ClaimReply>(absl::UnavailableError(reply->text))
                          : ParseClaimReply(*reply);
  auto it = waiters_.find(id);
  if (it == waiters_.end()) {
    // Gone meanwhile (cancelled, deadline): a lease it got is given back at once rather than
    // left to expire under the other waiters.
    if (claim.ok() && claim->kind == ClaimReply::Kind::kLease) GiveBack(digest, token);
    return;
  }
  Waiter& w = *it->second;
  w.asking = false;
  if (!claim.ok()) {
    Log(Severity::kDebug, absl::StrCat("page store unavailable, fetching without sharing: ",
                                       claim.status().message()));
    Finish(id, Claimed{});
    return;
  }
  switch (claim->kind) {
    case ClaimReply::Kind::kStored: {
      absl::StatusOr<Page> page = DecodePageRecord(claim->record);
      if (!page.ok()) {
        rejected_.fetch_add(1, std::memory_order_relaxed);
        Log(Severity::kWarning,
            absl::StrCat("a page stored in Redis was refused (", page.status().message(),
                         "); fetching it without sharing"));
        Finish(id, Claimed{});
        return;
      }
      found_.fetch_add(1, std::memory_order_relaxed);
      Finish(id, Claimed{*std::move(page), ""});
      return;
    }
    case ClaimReply::Kind::kLease:
      leases_.fetch_add(1, std::memory_order_relaxed);
      Finish(id, Claimed{std::nullopt, token});
      return;
    case ClaimReply::Kind::kWait:
      waits_.fetch_add(1, std::memory_order_relaxed);
      if (w.woken) {
        Ask(id);
        return;
      }
      w.retry.expires_after(absl::ToChronoNanoseconds(claim->lease_left + kAfterLease));
      w.retry.async_wait([this, id](boost::system::error_code ec) {
        if (ec) return;
        auto it = waiters_.find(id);
        if (it != waiters_.end() && !it->second->asking) Ask(id);
      });
      return;
  }
}

void RedisPageStore::Woken(const std::string& digest) {
  auto it = by_digest_.find(digest);
  if (it == by_digest_.end()) return;
  const std::vector<uint64_t> ids = it->second;
  for (uint64_t id : ids) {
    Waiter& w = *waiters_.at(id);
    if (w.asking) {
      w.woken = true;
    } else {
      w.retry.cancel();
      Ask(id);
    }
  }
}

void RedisPageStore::LetAllGo() {
  std::vector<uint64_t> idle;
  for (const auto& [id, waiter] : waiters_) {
    if (!waiter->asking) idle.push_back(id);  // those asking get their answer (or failure) first
  }
  for (uint64_t id : idle) Finish(id, Claimed{});
}

void RedisPageStore::Finish(uint64_t id, absl::StatusOr<Claimed> result) {
  auto it = waiters_.find(id);
  if (it == waiters_.end()) return;
  std::unique_ptr<Waiter> waiter = std::move(it->second);
  waiters_.erase(it);
  std::vector<uint64_t>& ids = by_digest_[waiter->digest];
  ids.erase(std::find(ids.begin(), ids.end(), id));
  if (ids.empty()) by_digest_.erase(waiter->digest);
  waiter->deadline.cancel();
  waiter->retry.cancel();
  waiter->cancel->Forget(waiter->handle);
  std::move(waiter->done)(std::move(result));
}

void RedisPageStore::Publish(const std::string& key, const std::string& lease, const Page& page) {
  if (lease.empty()) return;
  std::string record = EncodePageRecord(page);
  if (record.size() > options_.max_page_bytes) {
    Log(Severity::kDebug, absl::StrCat("a page of ", record.size(),
                                       " bytes is above the shared-state page cap; not shared"));
    Abandon(key, lease);
    return;
  }
  const std::string digest = Digest(key);
  shared_.redis().Eval(
      publish_, {PageDataKey(shared_.prefix(), digest), PageLeaseKey(shared_.prefix(), digest)},
      {lease, std::move(record),
       absl::StrCat(std::max<int64_t>(1, absl::ToInt64Milliseconds(options_.ttl))),
       EventsChannel(shared_.prefix()), digest},
      [](absl::StatusOr<RedisReply>) {});
}

void RedisPageStore::Abandon(const std::string& key, const std::string& lease) {
  if (lease.empty()) return;
  GiveBack(Digest(key), lease);
}

void RedisPageStore::GiveBack(const std::string& digest, const std::string& lease) {
  shared_.redis().Eval(abandon_, {PageLeaseKey(shared_.prefix(), digest)},
                       {lease, EventsChannel(shared_.prefix()), digest},
                       [](absl::StatusOr<RedisReply>) {});
}

}  // namespace contacts::gateway
