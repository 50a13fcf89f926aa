// The upstream client over real sockets: HttpsClient's connection pool through the Kore.ai
// adapter, against a local plain-HTTP upstream that holds every answer until the test lets it go
// and counts the connections it accepted; and name lookups that never answer.
#include "server/upstream/kore_client.h"

#include <arpa/inet.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <boost/asio/executor_work_guard.hpp>
#include <chrono>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "server/core/metrics.h"

namespace contacts::gateway {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::UnorderedElementsAre;

constexpr std::chrono::seconds kWait(20);  // for what must happen; never reached when it does

// An HTTP/1.1 upstream on 127.0.0.1 that answers GET …?skip=N with a page holding one contact,
// "c-N". Answers wait for permits (Answer); connections stay open (keep-alive) unless
// `close_after_answer`. Counts connections open at once on its side.
// std::mutex rather than absl::Mutex here: ThreadSanitizer sees std::mutex and condition_variable
// (pthread), but not the uninstrumented libabsl's Mutex::Await.
class HeldUpstream {
 public:
  explicit HeldUpstream(bool close_after_answer = false) : close_after_answer_(close_after_answer) {
    listener_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(bind(listener_, reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
    EXPECT_EQ(listen(listener_, 64), 0);
    socklen_t length = sizeof address;
    getsockname(listener_, reinterpret_cast<sockaddr*>(&address), &length);
    port_ = ntohs(address.sin_port);
    acceptor_ = std::thread([this] {
      for (;;) {
        int fd = accept(listener_, nullptr, nullptr);
        if (fd < 0) return;
        std::lock_guard lock(mu_);
        ++accepted_;
        peak_open_ = std::max(peak_open_, ++open_);
        fds_.push_back(fd);
        connections_.emplace_back([this, fd] { Serve(fd); });
      }
    });
  }
  ~HeldUpstream() {
    shutdown(listener_, SHUT_RDWR);
    close(listener_);
    acceptor_.join();
    std::vector<std::thread> connections;  // no new ones: the acceptor has ended
    std::vector<int> fds;
    {
      std::lock_guard lock(mu_);
      stopping_ = true;
      for (int fd : fds_) shutdown(fd, SHUT_RDWR);
      connections.swap(connections_);
      fds.swap(fds_);
    }
    wake_.notify_all();
    for (std::thread& t : connections) t.join();
    for (int fd : fds) close(fd);
  }

  std::string url() const { return absl::StrCat("http://127.0.0.1:", port_); }

  // Lets `n` more answers go.
  void Answer(int n) {
    {
      std::lock_guard lock(mu_);
      permits_ += n;
    }
    wake_.notify_all();
  }
  // Waits until `n` requests have arrived in all; false after kWait.
  bool AwaitRequests(size_t n) {
    std::unique_lock lock(mu_);
    return wake_.wait_for(lock, kWait, [this, n] { return skips_.size() >= n; });
  }
  // The skip of every request, in the order they arrived.
  std::vector<int64_t> skips() {
    std::lock_guard lock(mu_);
    return skips_;
  }
  int accepted() {
    std::lock_guard lock(mu_);
    return accepted_;
  }
  int peak_open() {
    std::lock_guard lock(mu_);
    return peak_open_;
  }

 private:
  void Serve(int fd) {
    std::string in;
    char buffer[4096];
    for (;;) {
      size_t end;
      while ((end = in.find("\r\n\r\n")) == std::string::npos) {
        ssize_t n = read(fd, buffer, sizeof buffer);
        if (n <= 0) {
          Closed();
          return;
        }
        in.append(buffer, static_cast<size_t>(n));
      }
      std::string head = in.substr(0, end);
      in.erase(0, end + 4);
      int64_t skip = -1;
      if (size_t at = head.find("skip="); at != std::string::npos) {
        size_t stop = head.find_first_of("& ", at);
        (void)absl::SimpleAtoi(head.substr(at + 5, stop - at - 5), &skip);
      }
      {
        std::unique_lock lock(mu_);
        skips_.push_back(skip);
        wake_.notify_all();
        wake_.wait(lock, [this] { return permits_ > 0 || stopping_; });
        if (stopping_) return;
        --permits_;
      }
      std::string body = absl::StrCat(R"({"status":"success","data":{"results":[{"_id":"c-)", skip,
                                      R"(","phoneNumber":"+1415555)", skip, R"("}],"skip":)", skip,
                                      R"(,"limit":1,"hasMore":true}})");
      std::string response = absl::StrCat(
          "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: ", body.size(),
          close_after_answer_ ? "\r\nConnection: close" : "", "\r\n\r\n", body);
      // Closing: counted as closed before the client can see the answer and open the next one.
      if (close_after_answer_) Closed();
      if (send(fd, response.data(), response.size(), MSG_NOSIGNAL) !=
              static_cast<ssize_t>(response.size()) ||
          close_after_answer_) {
        if (!close_after_answer_) Closed();
        shutdown(fd, SHUT_RDWR);
        return;
      }
    }
  }
  void Closed() {
    std::lock_guard lock(mu_);
    --open_;
  }

  const bool close_after_answer_;
  int listener_ = -1;
  int port_ = 0;
  std::thread acceptor_;
  // Guards everything below (std::mutex carries no thread-safety annotations, hence no
  // ABSL_GUARDED_BY; TSan sees it, unlike the uninstrumented absl::Mutex::Await).
  std::mutex mu_;
  std::condition_variable wake_;
  std::vector<std::thread> connections_;
  std::vector<int> fds_;
  std::vector<int64_t> skips_;
  int permits_ = 0;
  int accepted_ = 0;
  int open_ = 0;
  int peak_open_ = 0;
  bool stopping_ = false;
};

// The outcomes of fetches by their skip, and how often each one's callback ran.
class Outcomes {
 public:
  PageSource::Callback For(int64_t skip) {
    return [this, skip](PageResult result) {
      {
        std::lock_guard lock(mu_);
        ++calls_[skip];
        results_.insert_or_assign(skip, std::move(result.page));
      }
      ended_.notify_all();
    };
  }
  // Waits until `n` fetches have ended; false after kWait.
  bool Await(size_t n) {
    std::unique_lock lock(mu_);
    return ended_.wait_for(lock, kWait, [this, n] { return results_.size() >= n; });
  }
  bool Ended(int64_t skip) {
    std::lock_guard lock(mu_);
    return results_.contains(skip);
  }
  absl::StatusOr<Page> Result(int64_t skip) {
    std::lock_guard lock(mu_);
    auto it = results_.find(skip);
    if (it == results_.end()) return absl::NotFoundError("not ended");
    return it->second;
  }
  int Calls(int64_t skip) {
    std::lock_guard lock(mu_);
    return calls_[skip];
  }

 private:
  std::mutex mu_;  // guards results_ and calls_
  std::condition_variable ended_;
  std::map<int64_t, absl::StatusOr<Page>> results_;
  std::map<int64_t, int> calls_;
};

class KoreClientPoolTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (int i = 0; i < 2; ++i) threads_.emplace_back([this] { io_.run(); });
  }
  void TearDown() override { StopAndDestroy(); }

  // The client's io_context stops and its threads join before the client goes, as in the gateway.
  void StopAndDestroy() {
    if (threads_.empty()) return;
    work_.reset();
    io_.stop();
    for (std::thread& t : threads_) t.join();
    threads_.clear();
    client_.reset();
  }

  void MakeClient(const HeldUpstream& upstream, size_t max_connections) {
    KoreClientOptions options;
    options.http.base_url = upstream.url();
    options.http.allow_plain_http = true;
    options.http.max_connections = max_connections;
    absl::StatusOr<std::unique_ptr<KoreClient>> client = KoreClient::Create(io_, options);
    ASSERT_TRUE(client.ok()) << client.status();
    client_ = *std::move(client);
  }

  static PageRequest Request(int64_t skip, absl::Time deadline = absl::InfiniteFuture()) {
    PageRequest request;
    request.stream_id = "st-pool";
    request.list_id = "cl-pool";
    request.account_id = "acct-pool";
    request.skip = skip;
    request.limit = 1;
    request.credentials = {"jwt-pool", "cs-pool"};
    request.deadline = deadline;
    return request;
  }

  void Fetch(int64_t skip, std::shared_ptr<Cancellation> cancel = std::make_shared<Cancellation>(),
             absl::Time deadline = absl::InfiniteFuture(), bool first_page = false) {
    PageRequest request = Request(skip, deadline);
    request.first_page = first_page;
    client_->Fetch(std::move(request), std::move(cancel), outcomes_.For(skip));
  }

  // Fetch 0 holds the only connection while fetch 1 ended in the queue: once 0 is answered, it has
  // its page, 1 was called back once, and the upstream saw one connection and one request.
  void ExpectOnlyTheFirstFetchWentUpstream(HeldUpstream& upstream) {
    upstream.Answer(1);
    ASSERT_TRUE(outcomes_.Await(2));
    ExpectPageOf(0);
    EXPECT_EQ(outcomes_.Calls(1), 1);
    EXPECT_EQ(upstream.accepted(), 1);
    EXPECT_THAT(upstream.skips(), ElementsAre(0));
  }

  // The page of skip N holds one contact, c-N.
  void ExpectPageOf(int64_t skip) {
    absl::StatusOr<Page> page = outcomes_.Result(skip);
    ASSERT_TRUE(page.ok()) << "skip " << skip << ": " << page.status();
    EXPECT_EQ(page->skip, skip);
    ASSERT_EQ(page->contacts.size(), 1u);
    EXPECT_EQ(page->contacts[0].id(), absl::StrCat("c-", skip));
    EXPECT_EQ(outcomes_.Calls(skip), 1) << "skip " << skip;
  }

  boost::asio::io_context io_;
  std::optional<boost::asio::executor_work_guard<boost::asio::io_context::executor_type>> work_{
      io_.get_executor()};
  std::vector<std::thread> threads_;
  Outcomes outcomes_;
  std::unique_ptr<KoreClient> client_;
};

TEST_F(KoreClientPoolTest, RefusesZeroMaxConnections) {
  KoreClientOptions options;
  options.http.base_url = "http://127.0.0.1:1";
  options.http.allow_plain_http = true;
  options.http.max_connections = 0;
  absl::StatusOr<std::unique_ptr<KoreClient>> client = KoreClient::Create(io_, options);
  EXPECT_EQ(client.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(client.status().message(), HasSubstr("max_connections"));
}

TEST_F(KoreClientPoolTest, QueuedFetchesReuseTheOpenConnectionsFirstComeFirstServed) {
  HeldUpstream upstream;
  MakeClient(upstream, 2);
  for (int64_t skip = 0; skip < 6; ++skip) Fetch(skip);
  ASSERT_TRUE(upstream.AwaitRequests(2));
  // One answer at a time: each frees a kept-alive connection for the next fetch in line.
  for (size_t answered = 1; answered <= 4; ++answered) {
    upstream.Answer(1);
    ASSERT_TRUE(upstream.AwaitRequests(2 + answered));
    ASSERT_TRUE(outcomes_.Await(answered));
  }
  upstream.Answer(2);
  ASSERT_TRUE(outcomes_.Await(6));

  std::vector<int64_t> skips = upstream.skips();
  ASSERT_EQ(skips.size(), 6u);
  EXPECT_THAT(std::vector<int64_t>(skips.begin(), skips.begin() + 2), UnorderedElementsAre(0, 1));
  EXPECT_THAT(std::vector<int64_t>(skips.begin() + 2, skips.end()), ElementsAre(2, 3, 4, 5));
  EXPECT_EQ(upstream.accepted(), 2);
  EXPECT_EQ(upstream.peak_open(), 2);
  for (int64_t skip = 0; skip < 6; ++skip) ExpectPageOf(skip);
}

// A stream's first page does not wait behind the later pages of streams already running.
TEST_F(KoreClientPoolTest, AFirstPageWaitsAheadOfLaterPages) {
  HeldUpstream upstream;
  MakeClient(upstream, 1);
  Fetch(0);
  ASSERT_TRUE(upstream.AwaitRequests(1));
  Fetch(1);
  Fetch(2);
  Fetch(3, std::make_shared<Cancellation>(), absl::InfiniteFuture(), /*first_page=*/true);
  Fetch(4, std::make_shared<Cancellation>(), absl::InfiniteFuture(), /*first_page=*/true);
  for (size_t answered = 1; answered <= 4; ++answered) {
    upstream.Answer(1);
    ASSERT_TRUE(upstream.AwaitRequests(1 + answered));
    ASSERT_TRUE(outcomes_.Await(answered));
  }
  upstream.Answer(1);
  ASSERT_TRUE(outcomes_.Await(5));
  EXPECT_THAT(upstream.skips(), ElementsAre(0, 3, 4, 1, 2));
}

TEST_F(KoreClientPoolTest, ClosedConnectionGivesItsSlotToTheNextFetch) {
  HeldUpstream upstream(/*close_after_answer=*/true);
  MakeClient(upstream, 2);
  const int64_t before = Metrics().upstream_connections.value();
  upstream.Answer(6);
  for (int64_t skip = 0; skip < 6; ++skip) Fetch(skip);
  ASSERT_TRUE(outcomes_.Await(6));

  EXPECT_EQ(upstream.accepted(), 6);  // every answer closed its connection
  EXPECT_LE(upstream.peak_open(), 2);
  for (int64_t skip = 0; skip < 6; ++skip) ExpectPageOf(skip);
  StopAndDestroy();
  EXPECT_EQ(Metrics().upstream_connections.value(), before);  // no slot leaked
}

TEST_F(KoreClientPoolTest, CancelledQueuedFetchEndsAtOnceWithoutConnecting) {
  HeldUpstream upstream;
  MakeClient(upstream, 1);
  Fetch(0);
  ASSERT_TRUE(upstream.AwaitRequests(1));
  auto cancel = std::make_shared<Cancellation>();
  Fetch(1, cancel);
  cancel->Cancel();
  ASSERT_TRUE(outcomes_.Await(1));  // while the first fetch still holds the only connection

  absl::StatusOr<Page> cancelled = outcomes_.Result(1);
  EXPECT_EQ(cancelled.status().code(), absl::StatusCode::kCancelled);
  EXPECT_THAT(cancelled.status().message(), HasSubstr("cancelled"));
  EXPECT_FALSE(outcomes_.Ended(0));

  ExpectOnlyTheFirstFetchWentUpstream(upstream);  // the cancelled fetch never sent a request
}

TEST_F(KoreClientPoolTest, QueuedFetchFailsWhenItsDeadlinePasses) {
  HeldUpstream upstream;
  MakeClient(upstream, 1);
  Fetch(0);
  ASSERT_TRUE(upstream.AwaitRequests(1));
  Fetch(1, std::make_shared<Cancellation>(), absl::Now() + absl::Milliseconds(100));
  ASSERT_TRUE(outcomes_.Await(1));

  absl::StatusOr<Page> late = outcomes_.Result(1);
  EXPECT_EQ(late.status().code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_THAT(late.status().message(), HasSubstr("waiting for an upstream connection"));
  EXPECT_THAT(late.status().message(), HasSubstr("--upstream-max-connections"));
  EXPECT_FALSE(outcomes_.Ended(0));

  ExpectOnlyTheFirstFetchWentUpstream(upstream);
}

TEST_F(KoreClientPoolTest, DestroyingTheClientDropsQueuedFetches) {
  HeldUpstream upstream;
  MakeClient(upstream, 1);
  Fetch(0);
  ASSERT_TRUE(upstream.AwaitRequests(1));
  auto cancel = std::make_shared<Cancellation>();
  Fetch(1, cancel, absl::Now() + absl::Hours(1));
  Fetch(2);
  StopAndDestroy();
  cancel->Cancel();  // its callback was forgotten with the client
  EXPECT_FALSE(outcomes_.Ended(1));
  EXPECT_FALSE(outcomes_.Ended(2));
  EXPECT_EQ(upstream.accepted(), 1);
}

// A name lookup that never answers, as a stuck DNS server: its callbacks are kept (and dropped at
// the end, unanswered) so that a late answer is not simulated by accident.
class StuckLookups {
 public:
  Resolver resolver() {
    return [this](const std::string& host, const std::string&, auto done) {
      std::lock_guard lock(mu_);
      hosts_.push_back(host);
      pending_.push_back(std::move(done));
    };
  }
  std::vector<std::string> hosts() {
    std::lock_guard lock(mu_);
    return hosts_;
  }

 private:
  std::mutex mu_;
  std::vector<std::string> hosts_;
  std::vector<absl::AnyInvocable<void(boost::system::error_code,
                                      boost::asio::ip::tcp::resolver::results_type) &&>>
      pending_;
};

class NameLookupTest : public KoreClientPoolTest {
 protected:
  void MakeClient(absl::Duration connect_timeout) {
    KoreClientOptions options;
    options.http.base_url = "http://kore.example:8080";
    options.http.allow_plain_http = true;
    options.http.connect_timeout = connect_timeout;
    options.http.resolver = lookups_.resolver();
    absl::StatusOr<std::unique_ptr<KoreClient>> client = KoreClient::Create(io_, options);
    ASSERT_TRUE(client.ok()) << client.status();
    client_ = *std::move(client);
  }

  StuckLookups lookups_;
};

TEST_F(NameLookupTest, ALookupThatNeverAnswersEndsAtTheConnectTimeout) {
  MakeClient(absl::Milliseconds(200));
  const absl::Time start = absl::Now();
  Fetch(0);
  ASSERT_TRUE(outcomes_.Await(1));
  const absl::Duration took = absl::Now() - start;
  absl::StatusOr<Page> page = outcomes_.Result(0);
  EXPECT_EQ(page.status().code(), absl::StatusCode::kUnavailable);  // worth another attempt
  EXPECT_THAT(page.status().message(), HasSubstr("name lookup of kore.example"));
  EXPECT_GE(took, absl::Milliseconds(200));
  EXPECT_THAT(lookups_.hosts(), ElementsAre("kore.example"));
}

TEST_F(NameLookupTest, ALookupThatNeverAnswersEndsAtTheCallsDeadline) {
  MakeClient(absl::Hours(1));
  Fetch(0, std::make_shared<Cancellation>(), absl::Now() + absl::Milliseconds(200));
  ASSERT_TRUE(outcomes_.Await(1));
  EXPECT_EQ(outcomes_.Result(0).status().code(), absl::StatusCode::kDeadlineExceeded);
}

TEST_F(NameLookupTest, ALookupThatNeverAnswersEndsAtOnceOnCancellation) {
  MakeClient(absl::Hours(1));
  auto cancel = std::make_shared<Cancellation>();
  Fetch(0, cancel);
  // The lookup was asked (the fetch waits in it), then the caller goes away.
  const absl::Time asked_by = absl::Now() + absl::Seconds(20);
  while (lookups_.hosts().empty() && absl::Now() < asked_by) absl::SleepFor(absl::Milliseconds(1));
  ASSERT_EQ(lookups_.hosts().size(), 1u);
  cancel->Cancel();
  ASSERT_TRUE(outcomes_.Await(1));  // well before the hour-long connect timeout
  EXPECT_EQ(outcomes_.Result(0).status().code(), absl::StatusCode::kCancelled);
}

}  // namespace
}  // namespace contacts::gateway
