// Replicas sharing one budget and their pages through Redis, end to end: real gateway processes
// with --shared-state on one real redis-server (started here, on a free port), in front of the
// real kore-sim enforcing a scaled per-account limit (30 requests per 3 s) and counting, per
// account, the 429s and the most requests in any 3 s window. Every stream's ids are checked
// against kore-sim's list. Rates are scaled so that each case takes a few seconds (~45 s in all).
#include <gmock/gmock.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <simdjson.h>

#include <algorithm>
#include <atomic>
#include <fstream>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "contacts/v1/contacts.grpc.pb.h"
#include "server/core/sync.h"
#include "server/fleet/redis_page_store.h"
#include "server/fleet/scripts.h"
#include "server/stream/page_cache.h"
#include "tests/integration/sim_suite.h"
#include "tests/integration/test_support.h"

namespace contacts::gateway {
namespace {

using ::contacts::testing::ChildProcess;
using ::contacts::testing::DelayProxy;
using ::contacts::testing::HttpRequest;
using ::contacts::testing::KoreSim;
using ::contacts::testing::ReadFile;
using ::contacts::testing::RedisServer;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kAppId[] = "cs-fleet";
constexpr char kSecret[] = "fleet-secret-5d1e";
constexpr int kSimLimit = 30;  // requests per kSimWindow per account, kore-sim's
constexpr int kSimWindow = 3;  // seconds
// The gateways' budget per account: 90% of kore-sim's 600/min, 27 per 3 s. Each of 3 replicas'
// share is then 9 per 3 s, so the shares add up to whole requests of kore-sim's window too (the
// gateway rounds shares per minute, Kore.ai's window), and a request or two delayed in transit
// still fits.
constexpr int kPerMinute = 540;
constexpr int kPageSize = 100;

// Polls `condition` every 20 ms until it holds or `timeout` passed.
bool Eventually(const std::function<bool()>& condition,
                absl::Duration timeout = absl::Seconds(15)) {
  const absl::Time give_up = absl::Now() + timeout;
  while (!condition()) {
    if (absl::Now() > give_up) return false;
    absl::SleepFor(absl::Milliseconds(20));
  }
  return true;
}

struct Stream {
  std::string stream_id;
  std::string list;
  std::string account;
  std::string resume_token{};
  int stop_after = 0;             // messages; 0 = read to the end
  int32_t page_size = kPageSize;  // 0: none, the gateway asks for the largest the upstream serves
};
struct Streamed {
  grpc::Status status;
  std::vector<std::string> ids;
  std::string last_token;
  absl::Duration took;
};

// One StreamContacts call to the gateway on `port`, one message per page.
Streamed StreamOn(int port, const Stream& s) {
  auto stub = contacts::v1::ContactService::NewStub(
      grpc::CreateChannel(absl::StrCat("127.0.0.1:", port), grpc::InsecureChannelCredentials()));
  contacts::v1::StreamContactsRequest request;
  request.set_stream_id(s.stream_id);
  request.set_contact_list_id(s.list);
  request.set_account_id(s.account);
  if (s.page_size > 0) request.set_page_size(s.page_size);
  request.set_max_batch_size(kPageSize);
  request.set_resume_token(s.resume_token);
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(60)));
  Streamed out;
  const absl::Time start = absl::Now();
  auto reader = stub->StreamContacts(&context, request);
  contacts::v1::StreamContactsResponse response;
  int messages = 0;
  while (reader->Read(&response)) {
    for (const auto& contact : response.contacts()) out.ids.push_back(contact.id());
    out.last_token = response.resume_token();
    if (s.stop_after > 0 && ++messages == s.stop_after) {
      context.TryCancel();
      break;
    }
  }
  out.status = reader->Finish();
  out.took = absl::Now() - start;
  return out;
}

// Runs each stream on its gateway port at once; results in the same order.
std::vector<Streamed> RunAll(const std::vector<std::pair<int, Stream>>& streams) {
  std::vector<Streamed> results(streams.size());
  std::vector<std::thread> threads;
  for (size_t i = 0; i < streams.size(); ++i) {
    threads.emplace_back([&, i] { results[i] = StreamOn(streams[i].first, streams[i].second); });
  }
  for (std::thread& thread : threads) thread.join();
  return results;
}

// kore-sim's per-account accounting (GET /_sim/stats "accounts").
struct AccountStats {
  int64_t requests = 0;
  int64_t rate_limited = 0;
  int64_t max_in_window = 0;
};
AccountStats StatsOf(const KoreSim& sim, const std::string& account) {
  AccountStats stats;
  simdjson::dom::parser parser;
  simdjson::dom::element root;
  if (parser.parse(sim.Stats()).get(root) != simdjson::SUCCESS) return stats;
  simdjson::dom::element entry;
  if (root["accounts"][account].get(entry) != simdjson::SUCCESS) return stats;
  stats.requests = entry["requests"].get_int64().value_unsafe();
  stats.rate_limited = entry["rate_limited"].get_int64().value_unsafe();
  stats.max_in_window = entry["max_in_window"].get_int64().value_unsafe();
  return stats;
}

// kore-sim's request log (GET /_sim/requests), oldest first.
struct SimRequest {
  int64_t seq;
  absl::Time time;
  std::string list;
  std::string account;
  int64_t skip;
  int64_t limit;
  int64_t status;
};
std::vector<SimRequest> RequestsOf(const KoreSim& sim) {
  std::vector<SimRequest> out;
  simdjson::dom::parser parser;
  simdjson::dom::element root;
  if (parser.parse(sim.Control("GET", "/_sim/requests").body).get(root) != simdjson::SUCCESS) {
    ADD_FAILURE() << "unreadable /_sim/requests";
    return out;
  }
  for (simdjson::dom::element r : root["requests"].get_array()) {
    SimRequest request;
    request.seq = r["seq"].get_int64().value_unsafe();
    std::string_view time = r["time"].get_string().value_unsafe();
    std::string error;
    absl::ParseTime("%Y-%m-%dT%H:%M:%E*SZ", std::string(time), &request.time, &error);
    request.list = std::string(r["list"].get_string().value_unsafe());
    request.account = std::string(r["account"].get_string().value_unsafe());
    request.skip = r["skip"].is_int64() ? r["skip"].get_int64().value_unsafe() : -1;
    request.limit = r["limit"].is_int64() ? r["limit"].get_int64().value_unsafe() : -1;
    request.status = r["status"].get_int64().value_unsafe();
    out.push_back(std::move(request));
  }
  return out;
}

// The value of a series without labels in a /metrics body, or -1.
double Metric(const ChildProcess& gateway, const std::string& name) {
  for (const std::string& line :
       contacts::testing::SplitLines(HttpRequest("GET", gateway.admin_port(), "/metrics").body)) {
    double value = 0;
    if (absl::StartsWith(line, name + " ") &&
        absl::SimpleAtod(line.substr(name.size() + 1), &value)) {
      return value;
    }
  }
  return -1;
}

// Upstream exchanges a gateway made (its contacts_gateway_upstream_requests_total, every code).
double UpstreamRequests(const ChildProcess& gateway) {
  double total = 0;
  for (const std::string& line :
       contacts::testing::SplitLines(HttpRequest("GET", gateway.admin_port(), "/metrics").body)) {
    double value = 0;
    if (absl::StartsWith(line, "contacts_gateway_upstream_requests_total{") &&
        absl::SimpleAtod(line.substr(line.rfind(' ') + 1), &value)) {
      total += value;
    }
  }
  return total;
}

class FleetTest : public ::contacts::testing::SimSuite {
 protected:
  static void SetUpTestSuite() {
    sim_ = KoreSim::Start({"--app", absl::StrCat(kAppId, "=", kSecret), "--rate-limit",
                           absl::StrCat(kSimLimit), "--rate-window", absl::StrCat(kSimWindow)});
    ASSERT_NE(sim_, nullptr);
  }
  void SetUp() override {
    SimSuite::SetUp();
    redis_ = RedisServer::Start();
    ASSERT_NE(redis_, nullptr);
  }

  // A gateway process sharing through `url` (the suite's Redis by default).
  std::unique_ptr<ChildProcess> Gateway(std::vector<std::string> extra = {},
                                        const std::string& url = "") {
    std::vector<std::string> flags = {"--rate-limit",
                                      absl::StrCat(kPerMinute),
                                      "--shared-state",
                                      url.empty() ? redis_->url() : url,
                                      "--shared-state-heartbeat",
                                      "200ms",
                                      "--log-level",
                                      "debug"};
    flags.insert(flags.end(), extra.begin(), extra.end());
    auto gateway = contacts::testing::StartGatewayProcess(
        *sim_, {.client_id = kAppId, .client_secret = kSecret, .extra = flags});
    EXPECT_NE(gateway, nullptr);
    return gateway;
  }
  // Waits until every gateway shares through Redis (contacts_gateway_shared_state_up 1) and
  // knows them all.
  void WaitSharing(const std::vector<const ChildProcess*>& gateways) {
    for (const ChildProcess* gateway : gateways) {
      ASSERT_TRUE(Eventually([&] {
        return Metric(*gateway, "contacts_gateway_shared_state_up") == 1 &&
               Metric(*gateway, "contacts_gateway_shared_state_replicas") ==
                   static_cast<double>(gateways.size());
      }));
    }
  }
  // One stream of each account on each gateway, each its own list (cl-sim-N from `first_list`).
  static std::vector<std::pair<int, Stream>> SpreadStreams(
      const std::vector<std::unique_ptr<ChildProcess>>& gateways,
      const std::vector<std::string>& accounts, int first_list) {
    std::vector<std::pair<int, Stream>> streams;
    for (size_t a = 0; a < accounts.size(); ++a) {
      for (size_t g = 0; g < gateways.size(); ++g) {
        streams.push_back({gateways[g]->port(),
                           {absl::StrCat("st-", a, "-", g),
                            absl::StrCat("cl-sim-", first_list + 3 * a + g), accounts[a]}});
      }
    }
    return streams;
  }
  // Every stream of `streams` ended OK with exactly kore-sim's ids of its list.
  void ExpectExact(const std::vector<std::pair<int, Stream>>& streams,
                   const std::vector<Streamed>& results) {
    for (size_t i = 0; i < streams.size(); ++i) {
      const Stream& s = streams[i].second;
      EXPECT_TRUE(results[i].status.ok())
          << s.stream_id << ": " << results[i].status.error_message();
      EXPECT_EQ(results[i].ids, sim_->Ids(s.list)) << s.stream_id;
    }
  }
  // For every account: no 429 and no window above kore-sim's limit.
  void ExpectWithinTheLimit(const std::vector<std::string>& accounts) {
    for (const std::string& account : accounts) {
      const AccountStats stats = StatsOf(*sim_, account);
      EXPECT_GT(stats.requests, 0) << account;
      EXPECT_EQ(stats.rate_limited, 0) << account;
      EXPECT_LE(stats.max_in_window, kSimLimit) << account;
      std::cout << account << ": " << stats.requests << " requests, most in " << kSimWindow
                << " s: " << stats.max_in_window << " (limit " << kSimLimit << "), 429s "
                << stats.rate_limited << std::endl;
    }
  }

  std::unique_ptr<RedisServer> redis_;
};

// 9 streams of 3 accounts spread over 3 gateways, each stream its own list of 20 pages: each
// account's 60 requests are paced fleet-wide at 540/min, which kore-sim never has to refuse.
TEST_F(FleetTest, ThreeGatewaysSpendEachAccountsBudgetTogether) {
  std::vector<std::unique_ptr<ChildProcess>> gateways;
  for (int i = 0; i < 3; ++i) gateways.push_back(Gateway());
  ASSERT_TRUE(gateways[0] && gateways[1] && gateways[2]);
  WaitSharing({gateways[0].get(), gateways[1].get(), gateways[2].get()});
  const std::vector<std::string> accounts = {"acct-a", "acct-b", "acct-c"};
  const std::vector<std::pair<int, Stream>> streams = SpreadStreams(gateways, accounts, 2000);
  ExpectExact(streams, RunAll(streams));
  ExpectWithinTheLimit(accounts);
  // The budget was spent, not left idle: the requests of each account came at the budget's pace,
  // from the first to the last (the first needs no wait).
  const absl::Duration interval = absl::Minutes(1) / kPerMinute;
  std::map<std::string, std::vector<absl::Time>> times;
  for (const SimRequest& r : RequestsOf(*sim_)) times[r.account].push_back(r.time);
  for (const std::string& account : accounts) {
    const std::vector<absl::Time>& t = times[account];
    ASSERT_GE(t.size(), 60u);
    const double used =
        absl::FDivDuration(interval * static_cast<double>(t.size() - 1), t.back() - t.front());
    std::cout << account << ": " << t.size() << " requests in "
              << absl::FormatDuration(t.back() - t.front()) << ", " << static_cast<int>(used * 100)
              << "% of its budget (" << kPerMinute << "/min)" << std::endl;
#ifndef CONTACTS_TSAN
    // Under ThreadSanitizer the three gateways run many times slower and, on a busy 2-core
    // machine, do not keep up with 27 requests a second (19% once): the pace is checked in the
    // other builds; the limits above and below hold in all.
    EXPECT_GE(used, 0.95) << account;
#endif
    EXPECT_LE(used, 1.05) << account;  // and never faster than it (ms timestamps: a little slack)
  }
}

// One list read by 10 streams over 3 gateways costs about one stream's requests; a stream cut on
// one gateway and resumed on another fetches no page that is still stored.
TEST_F(FleetTest, StreamsOfOneListShareTheirPagesAcrossGateways) {
  std::vector<std::unique_ptr<ChildProcess>> gateways;
  for (int i = 0; i < 3; ++i) gateways.push_back(Gateway({"--shared-state-pages"}));
  ASSERT_TRUE(gateways[0] && gateways[1] && gateways[2]);
  WaitSharing({gateways[0].get(), gateways[1].get(), gateways[2].get()});
  const std::string list = "cl-sim-2000";  // 20 pages
  std::vector<std::pair<int, Stream>> streams;
  for (int i = 0; i < 10; ++i)
    streams.push_back({gateways[i % 3]->port(), {"st-one", list, "acct-a"}});
  ExpectExact(streams, RunAll(streams));
  const int64_t ten = sim_->ListRequests();
  std::cout << "10 streams of " << list << " over 3 gateways: " << ten
            << " upstream requests (one stream: 20)" << std::endl;
  EXPECT_LE(ten, 22);

  // Cut after 8 pages on gateway 0, resumed on gateway 1 (another stream id: new pages).
  const Stream cut = {"st-cut", list, "acct-a", "", /*stop_after=*/8};
  Streamed first = StreamOn(gateways[0]->port(), cut);
  ASSERT_EQ(first.status.error_code(), grpc::StatusCode::CANCELLED);
  ASSERT_TRUE(
      Eventually([&] { return Metric(*gateways[0], "contacts_gateway_active_streams") == 0; }));
  // The pages gateway 0 fetched and stored before the cut (a fetch cut short is not stored).
  std::set<std::pair<int64_t, int64_t>> stored;
  int64_t last_seq = 0;
  for (const SimRequest& r : RequestsOf(*sim_)) {
    last_seq = r.seq;
    PageRequest page;
    page.stream_id = "st-cut";
    page.list_id = list;
    page.account_id = "acct-a";
    page.skip = r.skip;
    page.limit = static_cast<int32_t>(r.limit);
    page.credentials.app_id = kAppId;
    const std::string key = PageDataKey("contacts-gateway:", RedisPageStore::Digest(PageKey(page)));
    if (r.list == list && redis_->Cli({"EXISTS", key}) == "1") stored.insert({r.skip, r.limit});
  }
  ASSERT_GE(stored.size(), 8u);
  Streamed rest = StreamOn(gateways[1]->port(), {"st-cut", list, "acct-a", first.last_token});
  ASSERT_TRUE(rest.status.ok()) << rest.status.error_message();
  std::vector<std::string> ids = first.ids;
  ids.insert(ids.end(), rest.ids.begin(), rest.ids.end());
  EXPECT_EQ(ids, sim_->Ids(list));
  int fetched_again = 0, fetched_new = 0;
  for (const SimRequest& r : RequestsOf(*sim_)) {
    if (r.seq <= last_seq) continue;
    (stored.count({r.skip, r.limit}) ? fetched_again : fetched_new)++;
  }
  std::cout << "resumed elsewhere: " << stored.size() << " pages stored before the cut, "
            << fetched_new << " fetched after it, " << fetched_again << " fetched again"
            << std::endl;
  EXPECT_EQ(fetched_again, 0);
  EXPECT_GT(fetched_new, 0);
}

// The largest page the upstream serves is found once for the fleet: a stream on one gateway
// finds it (one request refused with 400), a stream of the same account on another gateway asks
// for it at once.
TEST_F(FleetTest, AnAccountsPageSizeIsFoundOnceForTheFleet) {
  ASSERT_EQ(sim_->Control("POST", "/_sim/config?reject_limit_above=100").status, 200);
  std::unique_ptr<ChildProcess> first = Gateway();
  std::unique_ptr<ChildProcess> second = Gateway();
  ASSERT_TRUE(first && second);
  WaitSharing({first.get(), second.get()});
  Streamed finder = StreamOn(first->port(), {"st-ps-1", "cl-sim-500", "acct-ps", "", 0, 0});
  ASSERT_TRUE(finder.status.ok()) << finder.status.error_message();
  EXPECT_EQ(finder.ids, sim_->Ids("cl-sim-500"));
  Streamed later = StreamOn(second->port(), {"st-ps-2", "cl-sim-600", "acct-ps", "", 0, 0});
  ASSERT_TRUE(later.status.ok()) << later.status.error_message();
  EXPECT_EQ(later.ids, sim_->Ids("cl-sim-600"));
  int refused = 0, later_requests = 0;
  for (const SimRequest& r : RequestsOf(*sim_)) {
    if (r.status == 400) {
      ++refused;
      EXPECT_EQ(r.list, "cl-sim-500");
      EXPECT_EQ(r.limit, 1000);  // --max-page-size, asked first
    }
    if (r.list == "cl-sim-600") {
      ++later_requests;
      EXPECT_EQ(r.limit, 100) << "skip=" << r.skip;
      EXPECT_EQ(r.status, 200) << "skip=" << r.skip;
    }
  }
  EXPECT_EQ(refused, 1);
  EXPECT_GE(later_requests, 6);
  std::cout << "page size found on one gateway with " << refused
            << " refused request; the other asked 100 in all its " << later_requests << " requests"
            << std::endl;
}

// Redis killed mid-run: every gateway keeps to its share (1/3 of each account's rate) on its own,
// no stream loses a contact, kore-sim refuses nothing; Redis back (empty): sharing resumes within
// seconds.
TEST_F(FleetTest, WithoutRedisEachGatewayKeepsToItsShareAndSharingResumes) {
  std::vector<std::unique_ptr<ChildProcess>> gateways;
  for (int i = 0; i < 3; ++i) gateways.push_back(Gateway());
  ASSERT_TRUE(gateways[0] && gateways[1] && gateways[2]);
  WaitSharing({gateways[0].get(), gateways[1].get(), gateways[2].get()});
  const std::vector<std::string> accounts = {"acct-a", "acct-b", "acct-c"};
  const std::vector<std::pair<int, Stream>> streams = SpreadStreams(gateways, accounts, 3000);
  std::vector<Streamed> results;
  std::thread run([&] { results = RunAll(streams); });
  ASSERT_TRUE(Eventually([&] { return sim_->ListRequests() >= 45; }));
  std::vector<double> before;
  for (const auto& gateway : gateways) before.push_back(UpstreamRequests(*gateway));
  const absl::Time killed = absl::Now();
  redis_->Kill();
  for (const auto& gateway : gateways) {
    EXPECT_TRUE(
        Eventually([&] { return Metric(*gateway, "contacts_gateway_shared_state_up") == 0; }));
  }
  ASSERT_TRUE(Eventually([&] { return sim_->ListRequests() >= 45 + 60; }));  // ~2 s alone
  std::vector<double> alone;
  for (const auto& gateway : gateways) alone.push_back(UpstreamRequests(*gateway));
  const absl::Duration outage = absl::Now() - killed;
  ASSERT_TRUE(redis_->Restart());
  const absl::Time restarted = absl::Now();
  // A replica reconnects within its backoff (at most 2 s) and a connect, then shares once every
  // replica heartbeats again, or at the latest after a backoff, a connect timeout and three
  // heartbeats (4.6 s): about 7 s at worst (1.3 s is usual); doubled for a loaded or sanitized run.
  const absl::Duration resumes_within = absl::Seconds(15);
  for (const auto& gateway : gateways) {
    EXPECT_TRUE(Eventually(
        [&] { return Metric(*gateway, "contacts_gateway_shared_state_up") == 1; }, resumes_within));
  }
  std::cout << "sharing again " << absl::FormatDuration(absl::Now() - restarted)
            << " after Redis came back" << std::endl;
  EXPECT_LT(absl::Now() - restarted, resumes_within);
  run.join();
  ExpectExact(streams, results);
  ExpectWithinTheLimit(accounts);
  // Alone, each gateway sent at most its share: a third of each of the 3 accounts' rate.
  const double share_per_second = kPerMinute / 60.0 / 3 * accounts.size();
  for (size_t g = 0; g < gateways.size(); ++g) {
    const double sent = alone[g] - before[g];
    std::cout << "gateway " << g << " alone for " << absl::FormatDuration(outage) << ": " << sent
              << " requests (its share: " << share_per_second * absl::ToDoubleSeconds(outage) << ")"
              << std::endl;
#ifndef CONTACTS_TSAN
    // Under ThreadSanitizer a gateway sends requests granted through Redis before the kill well
    // after it (30 against a share of 23 once, while another sent 1): the fleet-wide limit above
    // (kore-sim's own count) is what holds there.
    EXPECT_LE(sent, share_per_second * absl::ToDoubleSeconds(outage) + 2 * accounts.size());
#endif
  }
  // One line per change of state, naming why: every loss follows a connection (a slow machine
  // may lose it twice: a command over --shared-state-timeout counts as Redis away), never one per
  // attempt while Redis is away.
  for (const auto& gateway : gateways) {
    const std::string log = ReadFile(gateway->stdout_path());
    int lost = 0;
    bool connected = false;
    for (absl::string_view line : absl::StrSplit(log, '\n')) {
      if (absl::StrContains(line, "shared state: connected to")) connected = true;
      if (!absl::StrContains(line, "shared state lost")) continue;
      EXPECT_TRUE(connected) << "a second line for one loss: " << line;
      EXPECT_THAT(line, HasSubstr("shared state lost (redis "));
      connected = false;
      ++lost;
    }
    EXPECT_GE(lost, 1);
  }
}

// A gateway SIGKILLed while it holds the lease of a page (its upstream request is slow): another
// gateway takes the page over when the lease runs out, and the killed gateway's caller resumes
// there and gets every contact once.
TEST_F(FleetTest, AKilledGatewaysPageIsTakenOverAndItsCallerResumesElsewhere) {
  const std::vector<std::string> flags = {"--shared-state-pages",
                                          "--shared-state-lease",
                                          "1s",
                                          "--rate-limit",
                                          "0",
                                          "--prefetch-pages",
                                          "1"};
  std::unique_ptr<ChildProcess> doomed = Gateway(flags);
  std::unique_ptr<ChildProcess> other = Gateway(flags);
  ASSERT_TRUE(doomed && other);
  WaitSharing({doomed.get(), other.get()});
  const std::string list = "cl-sim-1000";  // 10 pages
  // The 6th request of the list takes 5 s: the doomed gateway holds that page's lease meanwhile.
  ASSERT_EQ(sim_->Control("POST", "/_sim/faults?kind=latency&ms=5000&after=5&count=1&list=" + list)
                .status,
            200);
  Streamed cut;
  std::thread caller([&] { cut = StreamOn(doomed->port(), {"st-kill", list, "acct-a"}); });
  ASSERT_TRUE(Eventually(
      [&] { return absl::StrContains(sim_->Control("GET", "/_sim/faults").body, "\"hits\":1"); }));
  const absl::Time leased = absl::Now();  // a little after the lease was taken
  doomed->Stop(SIGKILL);
  const absl::Time killed = absl::Now();
  caller.join();
  ASSERT_EQ(cut.status.error_code(), grpc::StatusCode::UNAVAILABLE);
  ASSERT_EQ(cut.ids.size(), 500u);  // 5 pages, then the gateway died

  // The same stream from the start on the other gateway: the first 5 pages are stored, the 6th is
  // the dead gateway's lease, which it waits out (not sooner: the lease is honoured; not much
  // later: the page is taken over), then fetches itself.
  Streamed again = StreamOn(other->port(), {"st-kill", list, "acct-a"});
  ASSERT_TRUE(again.status.ok()) << again.status.error_message();
  EXPECT_EQ(again.ids, sim_->Ids(list));
  std::cout << "the dead gateway's page taken over after " << absl::FormatDuration(again.took)
            << " (lease 1s, taken " << absl::FormatDuration(killed - leased) << " before the kill)"
            << std::endl;
  EXPECT_GE(again.took + (killed - leased), absl::Milliseconds(900));
  EXPECT_LT(again.took, absl::Seconds(3));
  std::map<std::pair<int64_t, int64_t>, int> fetched;
  for (const SimRequest& r : RequestsOf(*sim_)) ++fetched[{r.skip, r.limit}];
  EXPECT_EQ(fetched.size(), 10u);
  EXPECT_EQ(
      std::count_if(fetched.begin(), fetched.end(), [](const auto& f) { return f.second > 1; }),
      1);  // the slow page, by both gateways; every other page once

  // The dead gateway's caller resumes there and gets every contact once.
  Streamed rest = StreamOn(other->port(), {"st-kill", list, "acct-a", cut.last_token});
  ASSERT_TRUE(rest.status.ok()) << rest.status.error_message();
  std::vector<std::string> ids = cut.ids;
  ids.insert(ids.end(), rest.ids.begin(), rest.ids.end());
  EXPECT_EQ(ids, sim_->Ids(list));
}

// Redis slow (a proxy holding every reply): commands time out, the gateway serves on its own with
// a bounded delay and says so once; Redis fast again: it shares again. SCRIPT FLUSH mid-stream is
// absorbed (the scripts are loaded again) without leaving shared mode.
TEST_F(FleetTest, ASlowRedisCostsBoundedLatencyAndAFlushIsAbsorbed) {
  DelayProxy proxy(redis_->port());
  std::unique_ptr<ChildProcess> gateway =
      Gateway({"--shared-state-timeout", "200ms", "--shared-state-connect-timeout", "500ms"},
              absl::StrCat("redis://127.0.0.1:", proxy.port()));
  ASSERT_NE(gateway, nullptr);
  WaitSharing({gateway.get()});
  const std::string list = "cl-sim-2000";
  Streamed fast = StreamOn(gateway->port(), {"st-fast", list, "acct-a"});
  ASSERT_TRUE(fast.status.ok());

  proxy.SetDelay(std::chrono::milliseconds(1000));
  Streamed slow = StreamOn(gateway->port(), {"st-slow", list, "acct-a"});
  EXPECT_TRUE(slow.status.ok()) << slow.status.error_message();
  EXPECT_EQ(slow.ids, sim_->Ids(list));
  std::cout << "20 pages: " << absl::FormatDuration(fast.took) << " with Redis, "
            << absl::FormatDuration(slow.took) << " with Redis answering after 1 s" << std::endl;
  // The first grant waits out one command timeout; then the gateway is on its own, at the whole
  // rate (it is the only replica).
  EXPECT_LT(slow.took, fast.took + absl::Seconds(2));
  EXPECT_EQ(Metric(*gateway, "contacts_gateway_shared_state_up"), 0);
  EXPECT_THAT(ReadFile(gateway->stdout_path()), HasSubstr("did not answer within 200ms"));

  proxy.SetDelay(std::chrono::milliseconds(0));
  EXPECT_TRUE(
      Eventually([&] { return Metric(*gateway, "contacts_gateway_shared_state_up") == 1; }));

  std::thread flush([&] {
    Eventually([&] { return sim_->ListRequests() >= 50; });
    redis_->Cli({"CONFIG", "RESETSTAT"});
    redis_->Cli({"SCRIPT", "FLUSH"});
  });
  Streamed flushed = StreamOn(gateway->port(), {"st-flush", list, "acct-a"});
  flush.join();
  EXPECT_TRUE(flushed.status.ok());
  EXPECT_EQ(flushed.ids, sim_->Ids(list));
  EXPECT_EQ(Metric(*gateway, "contacts_gateway_shared_state_up"), 1);  // never left shared mode
  // The scripts were loaded again (EVAL after NOSCRIPT).
  EXPECT_THAT(redis_->Cli({"INFO", "commandstats"}), HasSubstr("cmdstat_eval:"));
  ExpectWithinTheLimit({"acct-a"});
}

// Redis refusing the gateway (a wrong password) or unable to take writes (a read-only replica):
// the gateway starts anyway, serves on its own, logs why once, never shows the password.
TEST_F(FleetTest, RedisRefusingTheGatewayIsLoggedAndItServesOnItsOwn) {
  constexpr char kPassword[] = "redis-pw-LEAKCHECK-8f2a";
  constexpr char kWrong[] = "redis-pw-LEAKCHECK-wrong-1c7d";
  auto guarded = RedisServer::Start({.flags = {"--requirepass", kPassword}});
  auto replica =
      RedisServer::Start({.flags = {"--replicaof", "127.0.0.1", absl::StrCat(redis_->port())}});
  ASSERT_TRUE(guarded && replica);
  const std::string password_file = contacts::testing::TempDir() + "/redis-password";
  std::ofstream(password_file) << kWrong;
  std::unique_ptr<ChildProcess> refused =
      Gateway({"--shared-state-password-file", password_file}, guarded->url());
  std::unique_ptr<ChildProcess> readonly = Gateway({}, replica->url());
  ASSERT_TRUE(refused && readonly);
  const std::string list = "cl-sim-1000";
  std::vector<std::pair<int, Stream>> streams = {{refused->port(), {"st-1", list, "acct-a"}},
                                                 {readonly->port(), {"st-2", list, "acct-b"}}};
  ExpectExact(streams, RunAll(streams));
  ExpectWithinTheLimit({"acct-a", "acct-b"});
  EXPECT_EQ(Metric(*refused, "contacts_gateway_shared_state_up"), 0);
  EXPECT_EQ(Metric(*readonly, "contacts_gateway_shared_state_up"), 0);
  const std::string refused_log = ReadFile(refused->stdout_path()) + ReadFile(refused->log_path());
  EXPECT_THAT(refused_log, HasSubstr("authentication refused: WRONGPASS"));
  EXPECT_THAT(refused_log, Not(HasSubstr("LEAKCHECK")));
  EXPECT_THAT(ReadFile(readonly->stdout_path()), HasSubstr("answered READONLY"));
  refused.reset();  // exits cleanly on SIGTERM
  readonly.reset();
}

// One stream of an account on one gateway against eight on another: slots go round all nine
// streams, so the lone stream gets a ninth of the account's requests, not what is left over.
TEST_F(FleetTest, ALoneStreamGetsItsFairShareAgainstEightOnAnotherGateway) {
  std::unique_ptr<ChildProcess> one = Gateway();
  std::unique_ptr<ChildProcess> eight = Gateway();
  ASSERT_TRUE(one && eight);
  WaitSharing({one.get(), eight.get()});
  std::vector<std::pair<int, Stream>> streams = {
      {one->port(), {"st-lone", "cl-sim-5000", "acct-f"}}};
  for (int i = 1; i <= 8; ++i) {
    streams.push_back(
        {eight->port(), {absl::StrCat("st-", i), absl::StrCat("cl-sim-", 5000 + i), "acct-f"}});
  }
  std::vector<std::thread> threads;
  // Each stream reads on until the account has had 45 requests; then all are cut.
  std::atomic<bool> enough{false};
  for (const auto& [port, s] : streams) {
    threads.emplace_back([&, port = port, s = s] {
      auto stub = contacts::v1::ContactService::NewStub(grpc::CreateChannel(
          absl::StrCat("127.0.0.1:", port), grpc::InsecureChannelCredentials()));
      contacts::v1::StreamContactsRequest request;
      request.set_stream_id(s.stream_id);
      request.set_contact_list_id(s.list);
      request.set_account_id(s.account);
      request.set_page_size(kPageSize);
      grpc::ClientContext context;
      auto reader = stub->StreamContacts(&context, request);
      contacts::v1::StreamContactsResponse response;
      while (!enough && reader->Read(&response)) {
      }
      context.TryCancel();
      reader->Finish();
    });
  }
  ASSERT_TRUE(Eventually([&] { return sim_->ListRequests() >= 45; }));
  enough = true;
  for (std::thread& thread : threads) thread.join();
  std::vector<SimRequest> requests = RequestsOf(*sim_);
  ASSERT_GE(requests.size(), 45u);
  const auto lone = std::count_if(requests.begin(), requests.begin() + 45,
                                  [](const SimRequest& r) { return r.list == "cl-sim-5000"; });
  std::cout << "lone stream: " << lone << " of the first 45 requests (a ninth: 5)" << std::endl;
  EXPECT_GE(lone, 3);
  EXPECT_LE(lone, 7);
  ExpectWithinTheLimit({"acct-f"});
}

}  // namespace
}  // namespace contacts::gateway
