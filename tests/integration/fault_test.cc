// "Nothing lost, nothing duplicated": a 50,000-contact list streamed through the gateway while the
// real kore-sim process injects one fault at a time mid-stream (latency, 429 with and without
// Retry-After, 5xx, resets, truncated and malformed bodies, list insertions and deletions), and
// while the real gateway process is restarted under a running client-library stream. Every
// delivered id is checked against kore-sim's own list: none missing (except what the contract
// allows: contacts deleted mid-stream, contacts inserted before the current position), none
// repeated, order kept; kore-sim's request counter shows the retries.
//
// Each case prints one line `fault <name>: delivered N / expected M` to stdout.
#include <signal.h>
#include <sys/wait.h>

#include <gmock/gmock.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <fstream>
#include <iostream>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "client/contacts_client.h"
#include "server/app/gateway_server.h"
#include "tests/integration/sim_suite.h"
#include "tests/integration/test_support.h"

namespace contacts::gateway {
namespace {

using ::contacts::testing::ChildProcess;
using ::contacts::testing::KoreSim;
using ::contacts::v1::StreamContactsRequest;
using ::contacts::v1::StreamContactsResponse;
using ::testing::HasSubstr;

constexpr char kAppId[] = "cs-faults";
constexpr char kSecret[] = "faults-secret-4b1d9e";
constexpr char kList[] = "cl-sim-50000";
constexpr size_t kListSize = 50000;
constexpr int kPageSize = 1000;

// The retry settings of the contract (config.retry), small so that the tests are fast. Written
// through a template so that this file also builds against a gateway without them (the retry
// tests then fail, as they should).
struct RetrySettings {
  int max_attempts = 5;
  absl::Duration initial_backoff = absl::Milliseconds(10);
  absl::Duration max_backoff = absl::Milliseconds(50);
  absl::Duration max_retry_after = absl::Seconds(5);
};
template <typename C>
constexpr bool HasRetryOptions() {
  return requires(C & c) { c.retry.max_attempts; };
}
template <typename C>
void ApplyRetry(C& config, const RetrySettings& retry) {
  if constexpr (HasRetryOptions<C>()) {
    config.retry.max_attempts = retry.max_attempts;
    config.retry.initial_backoff = retry.initial_backoff;
    config.retry.max_backoff = retry.max_backoff;
    config.retry.max_retry_after = retry.max_retry_after;
  }
}

// StreamContactsResponse.list_changed (field 5), read by reflection: false when the field does
// not exist in this build.
bool HasListChangedField() {
  return StreamContactsResponse::descriptor()->FindFieldByName("list_changed") != nullptr;
}
bool ListChanged(const StreamContactsResponse& response) {
  const auto* field = StreamContactsResponse::descriptor()->FindFieldByName("list_changed");
  return field != nullptr && response.GetReflection()->GetBool(response, field);
}

void Report(const std::string& fault, size_t delivered, size_t expected,
            const std::string& more = "") {
  std::cout << "fault " << fault << ": delivered " << delivered << " / expected " << expected
            << (more.empty() ? "" : "  (" + more + ")") << std::endl;
}

// `original` and `final` are the list before and after the stream (kore-sim's own ids); `final`
// comes from `original` by insertions and deletions. Returns both merged in list order: every id
// that was in the list at some point, at its place.
std::vector<std::string> MergeLists(const std::vector<std::string>& original,
                                    const std::vector<std::string>& final) {
  std::unordered_set<std::string> in_original(original.begin(), original.end());
  std::unordered_set<std::string> in_final(final.begin(), final.end());
  std::vector<std::string> merged;
  size_t i = 0, j = 0;
  while (i < original.size() || j < final.size()) {
    if (i < original.size() && j < final.size() && original[i] == final[j]) {
      merged.push_back(original[i++]);
      ++j;
    } else if (j < final.size() && !in_original.contains(final[j])) {
      merged.push_back(final[j++]);  // inserted
    } else if (i < original.size() && !in_final.contains(original[i])) {
      merged.push_back(original[i++]);  // deleted
    } else {
      ADD_FAILURE() << "kore-sim's lists before and after are not related by inserts/deletes";
      break;
    }
  }
  return merged;
}

// The invariants of the contract, whatever the exact expectation: no id twice, every id one that
// was in the list, in list order, and nothing missing but `may_miss`.
void ExpectNothingLostNothingDuplicated(const std::string& fault,
                                        const std::vector<std::string>& got,
                                        const std::vector<std::string>& original,
                                        const std::vector<std::string>& final,
                                        const std::set<std::string>& may_miss) {
  std::vector<std::string> merged = MergeLists(original, final);
  std::unordered_map<std::string, size_t> position;
  for (size_t i = 0; i < merged.size(); ++i) position.emplace(merged[i], i);
  std::unordered_set<std::string> seen;
  int reported = 0;
  size_t last = 0;
  for (size_t k = 0; k < got.size(); ++k) {
    const std::string& id = got[k];
    if (!seen.insert(id).second) {
      if (reported++ < 5)
        ADD_FAILURE() << fault << ": id " << id << " delivered twice (again at #" << k << ")";
      continue;
    }
    auto it = position.find(id);
    if (it == position.end()) {
      if (reported++ < 5)
        ADD_FAILURE() << fault << ": id " << id << " (#" << k << ") was never in the list";
      continue;
    }
    if (k > 0 && it->second <= last) {
      if (reported++ < 5) {
        ADD_FAILURE() << fault << ": order broken at #" << k << ": " << id << " (list position "
                      << it->second << ") after list position " << last;
      }
    }
    last = it->second;
  }
  std::vector<std::string> missing;
  for (const std::string& id : merged) {
    if (!seen.contains(id) && !may_miss.contains(id)) missing.push_back(id);
  }
  EXPECT_TRUE(missing.empty()) << fault << ": " << missing.size() << " ids missing, first "
                               << (missing.empty() ? "" : missing.front()) << " at list position "
                               << (missing.empty() ? 0 : position[missing.front()]);
}

// got == expected, or a message naming the first difference.
void ExpectExactly(const std::string& fault, const std::vector<std::string>& got,
                   const std::vector<std::string>& expected) {
  if (got == expected) return;
  size_t i = 0;
  while (i < got.size() && i < expected.size() && got[i] == expected[i]) ++i;
  ADD_FAILURE() << fault << ": delivered " << got.size() << " ids, expected " << expected.size()
                << "; first difference at #" << i << ": got " << (i < got.size() ? got[i] : "(end)")
                << ", expected " << (i < expected.size() ? expected[i] : "(end)");
}

class FaultTest : public ::contacts::testing::SimSuite {
 protected:
  static void SetUpTestSuite() {
    if (!HasRetryOptions<Config>()) {
      std::cout
          << "note: Config has no `retry` field in this build: the gateway's defaults apply\n";
    }
    sim_ = KoreSim::Start({"--app", absl::StrCat(kAppId, "=", kSecret)});
    ASSERT_NE(sim_, nullptr);
  }

  static void AddFault(const std::string& spec) {
    contacts::testing::HttpResult added = sim_->Control("POST", "/_sim/faults?" + spec);
    ASSERT_EQ(added.status, 200) << spec << ": " << added.body;
  }

  static Config BaseConfig(const RetrySettings& retry = {}) {
    Config config;
    config.listen = "127.0.0.1:0";
    config.upstream.http.base_url = sim_->base_url();
    config.upstream.http.allow_plain_http = true;
    config.client_id = kAppId;
    config.client_secret = kSecret;
    config.authz.allow_unauthenticated = true;
    // Every stream here must really page through kore-sim (request counts, list mutations);
    // sharing pages between streams has tests of its own (rate_budget_test.cc).
    config.cache.max_bytes = 0;
    config.rate.per_minute = 0;  // kore-sim here has no rate limit
    // Request counts and forced waits below add up only with one page in flight; the mutation and
    // restart cases run with parallel prefetch.
    config.stream.prefetch_pages = 1;
    ApplyRetry(config, retry);
    return config;
  }
  void StartGateway(const Config& config) {
    absl::StatusOr<std::unique_ptr<GatewayServer>> gateway = GatewayServer::Start(config);
    ASSERT_TRUE(gateway.ok()) << gateway.status();
    gateway_ = *std::move(gateway);
    stub_ = contacts::v1::ContactService::NewStub(grpc::CreateChannel(
        absl::StrCat("127.0.0.1:", gateway_->port()), grpc::InsecureChannelCredentials()));
  }

  static StreamContactsRequest Request(const std::string& list = kList) {
    StreamContactsRequest request;
    request.set_stream_id("st-faults");
    request.set_contact_list_id(list);
    request.set_account_id("acct-faults");
    request.set_page_size(kPageSize);
    request.set_max_batch_size(kPageSize);
    return request;
  }

  struct Result {
    grpc::Status status;
    std::vector<std::string> ids;
    int64_t messages = 0;
    std::string last_token;
    int64_t first_changed = -1;      // index of the first message with list_changed
    bool changed_went_back = false;  // list_changed true, then false again
    absl::Duration elapsed;
  };
  Result Stream(const StreamContactsRequest& request, absl::Duration timeout = absl::Seconds(120)) {
    Result result;
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + timeout));
    absl::Time start = absl::Now();
    auto reader = stub_->StreamContacts(&context, request);
    StreamContactsResponse response;
    while (reader->Read(&response)) {
      for (const auto& contact : response.contacts()) result.ids.push_back(contact.id());
      if (ListChanged(response)) {
        if (result.first_changed < 0) result.first_changed = result.messages;
      } else if (result.first_changed >= 0) {
        result.changed_went_back = true;
      }
      if (!response.resume_token().empty()) result.last_token = response.resume_token();
      ++result.messages;
    }
    result.status = reader->Finish();
    result.elapsed = absl::Now() - start;
    return result;
  }

  // The list before any fault, and the upstream requests a clean stream of it takes with the
  // gateway's paging (page size and seam overlap); measured once.
  void Baseline() {
    if (baseline_requests_ > 0) return;
    ASSERT_EQ(sim_->Control("POST", "/_sim/reset").status, 200);
    *original_ = sim_->Ids(kList);
    ASSERT_EQ(original_->size(), kListSize);
    Result clean = Stream(Request());
    ASSERT_TRUE(clean.status.ok()) << clean.status.error_message();
    ExpectExactly("baseline", clean.ids, *original_);
    baseline_requests_ = sim_->ListRequests();
    baseline_elapsed_ = clean.elapsed;
    EXPECT_GE(baseline_requests_, static_cast<int64_t>(kListSize / kPageSize));
    EXPECT_LE(baseline_requests_, static_cast<int64_t>(kListSize / kPageSize) + 3);
    std::cout << "baseline: " << clean.ids.size() << " contacts in " << baseline_requests_
              << " upstream requests, " << absl::FormatDuration(clean.elapsed) << std::endl;
    ASSERT_EQ(sim_->Control("POST", "/_sim/reset").status, 200);
  }

  static std::vector<std::string>* original_;
  static int64_t baseline_requests_;
  static absl::Duration baseline_elapsed_;
  std::unique_ptr<contacts::v1::ContactService::Stub> stub_;
};

std::vector<std::string>* FaultTest::original_ = new std::vector<std::string>();
int64_t FaultTest::baseline_requests_ = 0;
absl::Duration FaultTest::baseline_elapsed_;

TEST_F(FaultTest, CleanStreamIsExactAndReportsNoListChange) {
  StartGateway(BaseConfig());
  Baseline();
  Result clean = Stream(Request());
  ASSERT_TRUE(clean.status.ok()) << clean.status.error_message();
  ExpectExactly("none", clean.ids, *original_);
  EXPECT_EQ(sim_->ListRequests(), baseline_requests_);
  EXPECT_EQ(clean.first_changed, -1) << "list_changed set on message " << clean.first_changed
                                     << " although the list did not change";
  Report("none", clean.ids.size(), original_->size(),
         absl::StrCat(sim_->ListRequests(), " upstream requests"));
}

// ---------------------------------------------------------------------------------------------
// Transient faults mid-stream: the gateway retries them; the caller sees nothing but a complete,
// exact stream, and kore-sim counted exactly one extra request per failed attempt.

struct TransientCase {
  std::string name;
  std::string spec;            // POST /_sim/faults?spec (the list filter is added)
  int64_t extra_requests;      // failed attempts the gateway must retry
  absl::Duration min_elapsed;  // the wait the fault forces (Retry-After, latency)
  absl::Duration request_timeout = absl::Seconds(30);
};

void PrintTo(const TransientCase& c, std::ostream* os) { *os << c.name << " (" << c.spec << ")"; }

class TransientFaultTest : public FaultTest, public ::testing::WithParamInterface<TransientCase> {};

TEST_P(TransientFaultTest, StreamStaysExactAndRetriesAreCounted) {
  const TransientCase& c = GetParam();
  Config config = BaseConfig();
  config.upstream.http.request_timeout = c.request_timeout;
  StartGateway(config);
  Baseline();
  AddFault(absl::StrCat(c.spec, "&list=", kList));
  Result result = Stream(Request());
  const int64_t requests = sim_->ListRequests();
  Report(
      c.name, result.ids.size(), original_->size(),
      absl::StrCat("status ", result.status.error_code(), ", upstream requests ", requests,
                   " = baseline ", baseline_requests_, " + ", requests - baseline_requests_, ", ",
                   absl::FormatDuration(absl::Trunc(result.elapsed, absl::Milliseconds(1)))));
  EXPECT_TRUE(result.status.ok()) << c.name << ": " << result.status.error_code() << " "
                                  << result.status.error_message();
  ExpectExactly(c.name, result.ids, *original_);
  ExpectNothingLostNothingDuplicated(c.name, result.ids, *original_, sim_->Ids(kList), {});
  EXPECT_EQ(requests, baseline_requests_ + c.extra_requests)
      << c.name << ": every failed attempt is retried once, nothing else is fetched twice";
  EXPECT_GE(result.elapsed, c.min_elapsed) << c.name << ": the forced wait was not honoured";
  // Only a wait off by orders of magnitude (a Retry-After read as minutes, a retry after the
  // request timeout): a loaded machine or a sanitizer stretches the stream itself many times over
  // its clean run (under TSan on a busy machine: 24.8 s against 1.1 s).
  EXPECT_LT(result.elapsed, c.min_elapsed + 10 * baseline_elapsed_ + absl::Seconds(30))
      << c.name << ": the forced wait took far longer than asked";
  EXPECT_EQ(result.first_changed, -1)
      << c.name << ": list_changed although the list did not change";
  std::string faults = sim_->Control("GET", "/_sim/faults").body;
  EXPECT_THAT(faults, HasSubstr("\"active\":false"))
      << c.name << ": the fault never fired: " << faults;
}

INSTANTIATE_TEST_SUITE_P(
    MidStream, TransientFaultTest,
    ::testing::Values(
        TransientCase{"latency-spike", "kind=latency&ms=400&count=3&after=10", 0,
                      absl::Milliseconds(1200)},
        TransientCase{"latency-past-upstream-timeout", "kind=latency&ms=2000&count=2&after=10", 2,
                      absl::Milliseconds(600), absl::Milliseconds(300)},
        TransientCase{"429-retry-after-seconds",
                      "kind=status&code=429&retry_after=1&count=2&after=10", 2,
                      absl::Milliseconds(1900)},
        TransientCase{"429-retry-after-http-date",
                      "kind=status&code=429&retry_after=2&retry_after_date=1&count=1&after=10", 1,
                      absl::Milliseconds(900)},
        TransientCase{"429-no-retry-after", "kind=status&code=429&count=3&after=10", 3,
                      absl::ZeroDuration()},
        TransientCase{"500", "kind=status&code=500&count=2&after=10", 2, absl::ZeroDuration()},
        TransientCase{"502", "kind=status&code=502&count=2&after=12", 2, absl::ZeroDuration()},
        TransientCase{"503", "kind=status&code=503&count=3&after=14", 3, absl::ZeroDuration()},
        TransientCase{"reset-mid-body", "kind=reset&count=2&after=10", 2, absl::ZeroDuration()},
        TransientCase{"truncated-json", "kind=truncate&count=2&after=10", 2, absl::ZeroDuration()},
        TransientCase{"malformed-json-once", "kind=malformed&count=1&after=10", 1,
                      absl::ZeroDuration()}),
    [](const ::testing::TestParamInfo<TransientCase>& info) {
      std::string name = info.param.name;
      std::replace(name.begin(), name.end(), '-', '_');
      return "Fault_" + name;
    });

// ---------------------------------------------------------------------------------------------
// The list changes mid-stream (kore-sim mutates it when the 11th page request arrives, i.e. at
// offset ~10,000): the contract's exact outcome for each kind of change.

struct MutationCase {
  std::string name;
  std::string op;  // insert | delete
  int64_t at;
  int64_t n;
  bool before_position;  // `at` is before the stream's position when the mutation happens
};

void PrintTo(const MutationCase& c, std::ostream* os) {
  *os << c.name << " (" << c.op << " at=" << c.at << " n=" << c.n << ")";
}

class MutationTest : public FaultTest, public ::testing::WithParamInterface<MutationCase> {};

TEST_P(MutationTest, DeliversExactlyWhatTheContractPromises) {
  const MutationCase& c = GetParam();
  StartGateway(BaseConfig());
  Baseline();  // measured with one page in flight, as the other cases count
  gateway_->Shutdown(absl::ZeroDuration());
  Config config = BaseConfig();
  config.stream.prefetch_pages = Config().stream.prefetch_pages;  // pages fetched in parallel
  StartGateway(config);
  AddFault(
      absl::StrCat("kind=mutate&op=", c.op, "&at=", c.at, "&n=", c.n, "&after=10&list=", kList));
  Result result = Stream(Request());
  const int64_t requests = sim_->ListRequests();
  const std::vector<std::string> final = sim_->Ids(kList);
  const std::vector<std::string>& original = *original_;

  std::set<std::string> changed;  // inserted or deleted ids
  std::vector<std::string> expected;
  if (c.op == "insert") {
    ASSERT_EQ(final.size(), original.size() + c.n) << "the mutation did not happen";
    for (int64_t i = 0; i < c.n; ++i) changed.insert(final[c.at + i]);
    // Before the position: offset paging cannot see them; after it: they are delivered.
    expected = c.before_position ? original : final;
  } else {
    ASSERT_EQ(final.size(), original.size() - c.n) << "the mutation did not happen";
    for (int64_t i = 0; i < c.n; ++i) changed.insert(original[c.at + i]);
    // Before the position: they were delivered before they went; after it: they are gone.
    expected = c.before_position ? original : final;
  }
  Report(c.name, result.ids.size(), expected.size(),
         absl::StrCat("status ", result.status.error_code(), ", upstream requests ", requests,
                      " (baseline ", baseline_requests_, "), list_changed from message ",
                      result.first_changed, ", ",
                      absl::FormatDuration(absl::Trunc(result.elapsed, absl::Milliseconds(1)))));
  EXPECT_TRUE(result.status.ok()) << c.name << ": " << result.status.error_code() << " "
                                  << result.status.error_message();
  ExpectExactly(c.name, result.ids, expected);
  ExpectNothingLostNothingDuplicated(c.name, result.ids, original, final, changed);
  // Inserted before the position: none delivered. Deleted after it: none delivered.
  if (c.op == "insert" && c.before_position) {
    for (const std::string& id : result.ids)
      EXPECT_FALSE(changed.contains(id)) << c.name << ": " << id;
  }
  if (c.op == "delete" && !c.before_position) {
    for (const std::string& id : result.ids)
      EXPECT_FALSE(changed.contains(id)) << c.name << ": " << id;
  }
  EXPECT_GE(requests, baseline_requests_);
  // A few re-reads, plus the pages prefetched before the shift was seen, which are asked again.
  EXPECT_LE(requests, baseline_requests_ + 5 + 2 * (config.stream.prefetch_pages - 1))
      << c.name << ": re-reads beyond a few pages";
  ASSERT_TRUE(HasListChangedField()) << "StreamContactsResponse has no list_changed field";
  EXPECT_GE(result.first_changed, 1)
      << c.name << ": list_changed never set (or set before the change)";
  EXPECT_FALSE(result.changed_went_back) << c.name << ": list_changed went back to false";
}

INSTANTIATE_TEST_SUITE_P(
    MidStream, MutationTest,
    ::testing::Values(MutationCase{"insert-before-position", "insert", 100, 5, true},
                      MutationCase{"insert-after-position", "insert", 40000, 7, false},
                      MutationCase{"delete-before-position", "delete", 100, 5, true},
                      MutationCase{"delete-after-position", "delete", 40000, 5, false}),
    [](const ::testing::TestParamInfo<MutationCase>& info) {
      std::string name = info.param.name;
      std::replace(name.begin(), name.end(), '-', '_');
      return "Fault_" + name;
    });

// ---------------------------------------------------------------------------------------------
// Retries exhausted, non-retryable errors, Retry-After beyond the caller's deadline.

TEST_F(FaultTest, ExhaustedRetriesEndResumablyAndTheTokenResumesOnceTheFaultIsGone) {
  struct Case {
    std::string name, spec;
    grpc::StatusCode code;
  };
  const Case kCases[] = {
      {"retries-exhausted-503", "kind=status&code=503&count=-1&after=10",
       grpc::StatusCode::UNAVAILABLE},
      {"retries-exhausted-reset", "kind=reset&count=-1&after=10", grpc::StatusCode::UNAVAILABLE},
      {"retries-exhausted-429", "kind=status&code=429&count=-1&after=10",
       grpc::StatusCode::RESOURCE_EXHAUSTED},
      // A body cut off on the way is transient like a reset: UNAVAILABLE, which clients resume on.
      {"retries-exhausted-truncate", "kind=truncate&count=-1&after=10",
       grpc::StatusCode::UNAVAILABLE},
      // A complete body that is not valid JSON stays unreadable: INTERNAL, DATA_LOSS once contacts
      // went out (still resumable by hand with the token).
      {"retries-exhausted-malformed", "kind=malformed&count=-1&after=10",
       grpc::StatusCode::DATA_LOSS},
  };
  RetrySettings retry;
  retry.max_attempts = 3;
  StartGateway(BaseConfig(retry));
  Baseline();
  for (const Case& c : kCases) {
    SCOPED_TRACE(c.name);
    ASSERT_EQ(sim_->Control("POST", "/_sim/reset").status, 200);
    AddFault(absl::StrCat(c.spec, "&list=", kList));
    Result first = Stream(Request());
    EXPECT_EQ(first.status.error_code(), c.code) << first.status.error_message();
    EXPECT_EQ(sim_->ListRequests(), 10 + retry.max_attempts)
        << "10 good pages, then max_attempts on the failing one";
    ASSERT_GT(first.ids.size(), 0u);
    ASSERT_LT(first.ids.size(), kListSize);
    ExpectExactly(
        c.name + " (before the failure)", first.ids,
        std::vector<std::string>(original_->begin(), original_->begin() + first.ids.size()));
    ASSERT_FALSE(first.last_token.empty());

    ASSERT_EQ(sim_->Control("DELETE", "/_sim/faults").status, 200);
    StreamContactsRequest resume = Request();
    resume.set_resume_token(first.last_token);
    Result rest = Stream(resume);
    EXPECT_TRUE(rest.status.ok()) << rest.status.error_message();
    std::vector<std::string> all = first.ids;
    all.insert(all.end(), rest.ids.begin(), rest.ids.end());
    Report(c.name, all.size(), original_->size(),
           absl::StrCat(first.ids.size(), " before ", first.status.error_code(), ", ",
                        rest.ids.size(), " after the resume"));
    ExpectExactly(c.name, all, *original_);
  }
}

TEST_F(FaultTest, ClientLibraryResumesAfterExhaustedRetries) {
  RetrySettings retry;
  retry.max_attempts = 2;
  StartGateway(BaseConfig(retry));
  Baseline();
  AddFault(absl::StrCat("kind=status&code=503&count=-1&after=20&list=", kList));
  std::vector<std::string> ids;
  contacts::client::StreamOptions options;
  options.initial_backoff = absl::Milliseconds(10);
  options.max_backoff = absl::Milliseconds(50);
  std::vector<grpc::Status> resumed_on;
  options.on_resume = [&](const grpc::Status& status, int, absl::Duration) {
    resumed_on.push_back(status);
    if (resumed_on.size() == 2) sim_->Control("DELETE", "/_sim/faults");  // the fault goes away
  };
  contacts::client::StreamResult result = contacts::client::StreamContacts(
      *stub_, Request(), options, [&](const StreamContactsResponse& response) {
        for (const auto& contact : response.contacts()) ids.push_back(contact.id());
        return true;
      });
  Report("retries-exhausted-client-resume", ids.size(), original_->size(),
         absl::StrCat(result.resumes, " resumes"));
  EXPECT_TRUE(result.status.ok()) << result.status.error_message();
  EXPECT_EQ(result.resumes, 2);
  ASSERT_EQ(resumed_on.size(), 2u);
  for (const grpc::Status& status : resumed_on)
    EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE);
  ExpectExactly("retries-exhausted-client-resume", ids, *original_);
}

TEST_F(FaultTest, NonRetryableErrorsFailAtOnce) {
  struct Case {
    std::string name, spec;
    grpc::StatusCode code;
    int64_t requests;
  };
  const Case kCases[] = {
      {"403-first-page", "kind=status&code=403&count=-1", grpc::StatusCode::PERMISSION_DENIED, 1},
      {"404-first-page", "kind=status&code=404&count=-1", grpc::StatusCode::NOT_FOUND, 1},
      {"403-mid-stream", "kind=status&code=403&count=-1&after=5",
       grpc::StatusCode::PERMISSION_DENIED, 6},
      {"404-mid-stream", "kind=status&code=404&count=-1&after=5", grpc::StatusCode::NOT_FOUND, 6},
  };
  StartGateway(BaseConfig());
  Baseline();
  for (const Case& c : kCases) {
    SCOPED_TRACE(c.name);
    ASSERT_EQ(sim_->Control("POST", "/_sim/reset").status, 200);
    AddFault(absl::StrCat(c.spec, "&list=", kList));
    Result result = Stream(Request());
    EXPECT_EQ(result.status.error_code(), c.code) << result.status.error_message();
    EXPECT_EQ(sim_->ListRequests(), c.requests) << "a non-retryable answer must not be retried";
    ExpectExactly(
        c.name, result.ids,
        std::vector<std::string>(original_->begin(),
                                 original_->begin() + std::min(result.ids.size(), kListSize)));
    if (c.requests == 1) {
      EXPECT_TRUE(result.ids.empty());
    }
    Report(c.name, result.ids.size(), result.ids.size(),
           absl::StrCat("status ", result.status.error_code(), " after ", sim_->ListRequests(),
                        " upstream requests"));
  }
}

TEST_F(FaultTest, RetryAfterBeyondTheCallersDeadlineReturnsBeforeTheDeadline) {
  RetrySettings retry;
  retry.max_retry_after = absl::Seconds(60);
  StartGateway(BaseConfig(retry));
  Baseline();
  const absl::Duration kDeadline = absl::Seconds(3);
  for (const std::string& spec :
       {std::string("kind=status&code=429&retry_after=30&count=-1&after=3"),
        std::string("kind=status&code=429&retry_after=30&retry_after_date=1&count=-1&after=3")}) {
    SCOPED_TRACE(spec);
    ASSERT_EQ(sim_->Control("POST", "/_sim/reset").status, 200);
    AddFault(absl::StrCat(spec, "&list=", kList));
    Result result = Stream(Request(), kDeadline);
    EXPECT_EQ(result.status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED)
        << result.status.error_message();
    EXPECT_LT(result.elapsed, kDeadline - absl::Milliseconds(100))
        << "waited until (or past) the deadline";
    EXPECT_EQ(sim_->ListRequests(), 4)
        << "3 good pages, then one 429 whose Retry-After outlasts the deadline";
    ExpectExactly(
        "retry-after-beyond-deadline", result.ids,
        std::vector<std::string>(original_->begin(),
                                 original_->begin() + std::min(result.ids.size(), kListSize)));
    Report(spec.find("date") == std::string::npos ? "retry-after-beyond-deadline"
                                                  : "retry-after-date-beyond-deadline",
           result.ids.size(), result.ids.size(),
           absl::StrCat("status ", result.status.error_code(), " after ",
                        absl::FormatDuration(absl::Trunc(result.elapsed, absl::Milliseconds(1))),
                        " of a ", absl::FormatDuration(kDeadline), " deadline"));
  }
}

// ---------------------------------------------------------------------------------------------
// The real gateway process is stopped with SIGTERM mid-stream and started again on the same port;
// the client library resumes with its last token.

TEST_F(FaultTest, GatewayRestartMidStreamLosesAndRepeatsNothing) {
  if (original_->empty()) *original_ = sim_->Ids(kList);
  ASSERT_EQ(original_->size(), kListSize);
  auto start_gateway = [](int port) {
    return contacts::testing::StartGatewayProcess(
        *sim_, {.port = port,
                .client_id = kAppId,
                .client_secret = kSecret,
                .extra = {"--drain-timeout", "300ms", "--log-level", "info"}});
  };
  std::unique_ptr<ChildProcess> process = start_gateway(0);
  ASSERT_NE(process, nullptr);
  const int port = process->port();
  // ~60 ms a page keeps the stream going well past the drain time.
  AddFault(absl::StrCat("kind=latency&ms=60&count=-1&list=", kList));

  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 500);
  auto stub = contacts::v1::ContactService::NewStub(grpc::CreateCustomChannel(
      absl::StrCat("127.0.0.1:", port), grpc::InsecureChannelCredentials(), args));

  std::mutex mu;
  std::condition_variable cv;
  bool restart = false;
  size_t restarted_at = 0;
  int exit_status = -2;
  absl::Duration stop_took, down_for;
  absl::Time back_at = absl::InfiniteFuture();
  bool restarted = false;
  std::thread restarter([&] {
    {
      std::unique_lock<std::mutex> lock(mu);
      if (!cv.wait_for(lock, std::chrono::seconds(60), [&] { return restart; })) return;
    }
    absl::Time start = absl::Now();
    const std::string old_log = process->stdout_path();
    int status = process->Stop(SIGTERM, 5000);
    absl::Duration took = absl::Now() - start;
    if (status != 0) {
      std::ifstream log(old_log);
      std::cerr << "gateway log (exit status " << status << " after " << absl::FormatDuration(took)
                << "):\n"
                << log.rdbuf() << "\n";
    }
    std::unique_ptr<ChildProcess> again;
    for (int attempt = 0; attempt < 5 && again == nullptr; ++attempt) {
      again = start_gateway(port);
      if (again == nullptr) std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
    std::lock_guard<std::mutex> lock(mu);
    exit_status = status;
    stop_took = took;
    down_for = absl::Now() - start;
    back_at = absl::Now();
    restarted = again != nullptr;
    process = std::move(again);
  });

  std::vector<std::string> ids;
  std::vector<grpc::Status> resumed_on;
  absl::Time progress_again = absl::InfiniteFuture();
  contacts::client::StreamOptions options;
  // Generous: a restart takes a few resumes at most, but the box may be loaded.
  options.max_resumes = 100;
  options.initial_backoff = absl::Milliseconds(20);
  options.max_backoff = absl::Milliseconds(500);
  options.deadline = absl::Seconds(60);
  options.on_resume = [&](const grpc::Status& status, int, absl::Duration) {
    resumed_on.push_back(status);
  };
  contacts::client::StreamResult result = contacts::client::StreamContacts(
      *stub, Request(), options, [&](const StreamContactsResponse& response) {
        for (const auto& contact : response.contacts()) ids.push_back(contact.id());
        std::lock_guard<std::mutex> lock(mu);
        if (!resumed_on.empty() && progress_again == absl::InfiniteFuture())
          progress_again = absl::Now();
        if (!restart && ids.size() >= 15000) {
          restart = true;
          restarted_at = ids.size();
          cv.notify_all();
        }
        return true;
      });
  {
    std::lock_guard<std::mutex> lock(mu);
    restart = true;  // let the thread go in any case
    cv.notify_all();
  }
  restarter.join();

  Report(
      "gateway-restart", ids.size(), original_->size(),
      absl::StrCat(
          "status ", result.status.error_code(), " ", result.status.error_message(),
          "; resumed on: ", resumed_on.empty() ? "-" : resumed_on.front().error_message(),
          "; SIGTERM after ", restarted_at, " contacts, ", result.resumes, " resumes, stop took ",
          absl::FormatDuration(absl::Trunc(stop_took, absl::Milliseconds(1))), ", down for ",
          absl::FormatDuration(absl::Trunc(down_for, absl::Milliseconds(1))), ", first contact ",
          absl::FormatDuration(absl::Trunc(progress_again - back_at, absl::Milliseconds(1))),
          " after the new gateway was ready"));
  EXPECT_TRUE(result.status.ok()) << result.status.error_code() << " "
                                  << result.status.error_message();
  ASSERT_TRUE(restarted) << "the gateway did not start again on port " << port;
  EXPECT_TRUE(WIFEXITED(exit_status) && WEXITSTATUS(exit_status) == 0)
      << "the gateway did not exit 0 on SIGTERM (wait status " << exit_status << ")";
  EXPECT_LT(stop_took, absl::Milliseconds(300) + absl::Milliseconds(1500)) << "drain + ~1 s";
  EXPECT_LT(restarted_at, kListSize) << "the restart did not happen mid-stream";
  EXPECT_GE(result.resumes, 1);
  ASSERT_FALSE(resumed_on.empty());
  EXPECT_EQ(resumed_on.front().error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_THAT(resumed_on.front().error_message(), HasSubstr("shutting down"));
  ExpectExactly("gateway-restart", ids, *original_);
  ExpectNothingLostNothingDuplicated("gateway-restart", ids, *original_, sim_->Ids(kList), {});
}

}  // namespace
}  // namespace contacts::gateway
