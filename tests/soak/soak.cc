// Soak: the real contacts-gateway process against the real kore-sim process, with >= 200
// concurrent streams for SOAK_SECONDS (default 120) under a random mix of count-limited kore-sim
// faults and client cancellations. Every stream must end OK with exactly the expected ids in order,
// or with a resumable status (UNAVAILABLE / RESOURCE_EXHAUSTED, or DATA_LOSS after a page that
// stayed unreadable through the gateway's retries: resumed with its token, and then still exact),
// or CANCELLED when the test cancelled it. The gateway's RSS, threads and open sockets are measured
// after warm-up and after the streams drained: they must come back.
//
// Client side: gRPC's callback API (no thread per stream) plus two threads of our own (a scheduler
// for starts and resumes, a fault injector).
#include <dirent.h>
#include <unistd.h>

#include <csignal>
#include <functional>
#include <set>

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "contacts/v1/contacts.grpc.pb.h"
#include "tests/integration/test_support.h"

namespace contacts::soak {
namespace {

using ::contacts::testing::ChildProcess;
using ::contacts::testing::KoreSim;
using ::contacts::v1::ContactService;
using ::contacts::v1::StreamContactsRequest;
using ::contacts::v1::StreamContactsResponse;

constexpr char kAppId[] = "cs-soak";
constexpr char kSecret[] = "soak-secret-51c0de";
constexpr int kConcurrency = 220;    // logical streams kept going
constexpr int kChannels = 4;         // client HTTP/2 connections
constexpr int kMaxResumes = 40;      // per logical stream
constexpr int kGatewayAttempts = 3;  // --retry-attempts: small, so that some faults exhaust it
// After the load the gateway's RSS comes back within this of its idle RSS (the page cache, 16 MiB,
// stays full; malloc gives back the rest, --memory-trim-interval).
constexpr int64_t kRssBackKib = 32 << 10;
// Lists and page sizes; the big lists only with big pages (2 CPUs in CI).
const std::vector<int> kListSizes = {2000, 3000, 5000, 7500, 10000, 12500, 15000, 20000};
const std::vector<int> kPageSizes = {50, 100, 200, 500, 1000};
const std::vector<int> kBatchSizes = {100, 250, 500, 1000};
// Lists whose faults are meant to exhaust the gateway's retries, so that streams see resumable
// statuses and resume with their tokens.
constexpr char kExhaustList[] = "cl-sim-3000";

struct ProcessStats {
  int64_t rss_kib = -1;
  int threads = -1;
  int sockets = -1;
};

ProcessStats Measure(pid_t pid) {
  ProcessStats stats;
  std::ifstream status(absl::StrCat("/proc/", pid, "/status"));
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmRSS:", 0) == 0) stats.rss_kib = std::stoll(line.substr(6));
    if (line.rfind("Threads:", 0) == 0) stats.threads = std::stoi(line.substr(8));
  }
  std::string fd_dir = absl::StrCat("/proc/", pid, "/fd");
  if (DIR* dir = opendir(fd_dir.c_str())) {
    stats.sockets = 0;
    while (dirent* entry = readdir(dir)) {
      char target[256];
      ssize_t n =
          readlink(absl::StrCat(fd_dir, "/", entry->d_name).c_str(), target, sizeof target - 1);
      if (n > 0 && std::string(target, n).rfind("socket:", 0) == 0) ++stats.sockets;
    }
    closedir(dir);
  }
  return stats;
}

std::string Describe(const ProcessStats& s) {
  return absl::StrCat("RSS ", s.rss_kib / 1024, " MiB, ", s.threads, " threads, ", s.sockets,
                      " sockets");
}

class Soak;

// One logical stream: a list read from start to end, over as many calls as resumes need.
struct Job {
  int id = 0;
  std::string list;
  const std::vector<std::string>* expected = nullptr;
  int page_size = 0;
  int batch_size = 0;
  int64_t cancel_after = -1;  // messages after which the test cancels; -1: never
  ContactService::Stub* stub = nullptr;
  // Touched by one call at a time (the next call starts after the previous one's OnDone).
  size_t next = 0;  // index in *expected of the next id due
  int64_t messages = 0;
  int resumes = 0;
  std::string token;
  bool cancel_requested = false;
  std::string broken;  // the first wrong id, described
};

class Soak {
 public:
  Soak(const KoreSim* sim, std::vector<std::unique_ptr<ContactService::Stub>> stubs,
       std::map<std::string, std::vector<std::string>> expected)
      : sim_(sim), stubs_(std::move(stubs)), expected_(std::move(expected)) {}

  // Runs logical streams, kConcurrency at a time, until `until`; then waits up to `drain` for the
  // last ones. Returns false when some did not finish in time.
  bool Run(absl::Time until, absl::Duration drain, const std::function<void()>& warm_hook,
           absl::Time warm_at);

  void CallDone(Job* job, const grpc::Status& status);
  void Register(grpc::ClientContext* context) {
    std::lock_guard<std::mutex> lock(mu_);
    live_.insert(context);
  }
  void Unregister(grpc::ClientContext* context) {
    std::lock_guard<std::mutex> lock(mu_);
    live_.erase(context);
  }
  // After a failed drain: cancels every call still running, drops pending resumes, and waits for
  // the calls to end (they reference this object).
  void CancelAll();

  std::atomic<int64_t> completed{0}, cancelled{0}, resumed_streams{0}, resume_calls{0}, contacts{0},
      failed{0}, calls{0}, faults_added{0};
  std::vector<std::string> failures;  // guarded by mu_

 private:
  void StartCall(Job* job);
  void InjectFaults(absl::Time until);
  Job* NewJob();

  const KoreSim* const sim_;
  std::vector<std::unique_ptr<ContactService::Stub>> stubs_;
  const std::map<std::string, std::vector<std::string>> expected_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::multimap<absl::Time, Job*> due_;  // calls to start (first calls and resumes)
  int active_ = 0;                       // logical streams not yet ended
  std::set<grpc::ClientContext*> live_;  // calls running
  bool stopping_ = false;
  int next_job_id_ = 0;
  std::mt19937 random_{20240501};
};

class Call final : public grpc::ClientReadReactor<StreamContactsResponse> {
 public:
  Call(Soak* soak, Job* job) : soak_(soak), job_(job) {
    request_.set_stream_id("st-soak");
    request_.set_contact_list_id(job->list);
    request_.set_account_id("acct-soak");
    request_.set_page_size(job->page_size);
    request_.set_max_batch_size(job->batch_size);
    request_.set_resume_token(job->token);
    context_.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(150));
    soak->Register(&context_);
    job->stub->async()->StreamContacts(&context_, &request_, this);
    StartRead(&response_);
    StartCall();
  }

  void OnReadDone(bool ok) override {
    if (!ok) return;  // OnDone follows
    Job& job = *job_;
    const std::vector<std::string>& expected = *job.expected;
    for (const auto& contact : response_.contacts()) {
      if (job.broken.empty() &&
          (job.next >= expected.size() || contact.id() != expected[job.next])) {
        job.broken = absl::StrCat("at #", job.next, " got ", contact.id(), ", expected ",
                                  job.next < expected.size() ? expected[job.next] : "(end of list)",
                                  " (call ", job.resumes + 1, ", message ", job.messages + 1, ")");
      }
      ++job.next;
    }
    soak_->contacts += response_.contacts_size();
    if (!response_.resume_token().empty()) job.token = response_.resume_token();
    ++job.messages;
    if (job.cancel_after >= 0 && job.messages >= job.cancel_after && !job.cancel_requested) {
      job.cancel_requested = true;
      context_.TryCancel();
    }
    StartRead(&response_);
  }

  void OnDone(const grpc::Status& status) override {
    soak_->Unregister(&context_);
    soak_->CallDone(job_, status);
    delete this;
  }

 private:
  Soak* const soak_;
  Job* const job_;
  grpc::ClientContext context_;
  StreamContactsRequest request_;
  StreamContactsResponse response_;
};

Job* Soak::NewJob() {
  auto* job = new Job();
  job->id = next_job_id_++;
  int size = kListSizes[std::uniform_int_distribution<size_t>(0, kListSizes.size() - 1)(random_)];
  job->list = absl::StrCat("cl-sim-", size);
  job->expected = &expected_.at(job->list);
  // Page sizes 50..1000, at most ~100 pages per stream.
  std::vector<int> pages;
  for (int page : kPageSizes) {
    if (size / page <= 100) pages.push_back(page);
  }
  job->page_size = pages[std::uniform_int_distribution<size_t>(0, pages.size() - 1)(random_)];
  job->batch_size =
      kBatchSizes[std::uniform_int_distribution<size_t>(0, kBatchSizes.size() - 1)(random_)];
  if (std::uniform_int_distribution<int>(0, 99)(random_) < 15) {
    int64_t messages = std::max<int64_t>(1, size / std::min(job->page_size, job->batch_size));
    job->cancel_after = std::uniform_int_distribution<int64_t>(1, messages)(random_);
  }
  job->stub = stubs_[job->id % stubs_.size()].get();
  return job;
}

void Soak::StartCall(Job* job) {
  ++calls;
  new Call(this, job);
}

void Soak::CallDone(Job* job, const grpc::Status& status) {
  const grpc::StatusCode code = status.error_code();
  std::string failure;
  bool resume = false;
  const size_t size = job->expected->size();
  if (!job->broken.empty()) {
    failure = job->broken;
  } else if (code == grpc::StatusCode::OK) {
    if (job->next == size) {
      ++completed;
    } else {
      failure = absl::StrCat("OK after ", job->next, " of ", size, " ids");
    }
  } else if (job->cancel_requested &&
             (code == grpc::StatusCode::CANCELLED || code == grpc::StatusCode::UNAVAILABLE ||
              code == grpc::StatusCode::RESOURCE_EXHAUSTED ||
              code == grpc::StatusCode::DATA_LOSS)) {
    ++cancelled;  // (a resumable status can race the cancellation; the test ended it anyway)
  } else if (code == grpc::StatusCode::UNAVAILABLE ||
             code == grpc::StatusCode::RESOURCE_EXHAUSTED || code == grpc::StatusCode::DATA_LOSS) {
    if (job->resumes < kMaxResumes) {
      resume = true;
    } else {
      failure = absl::StrCat("gave up after ", job->resumes, " resumes; last: ", code, " ",
                             status.error_message());
    }
  } else {
    failure = absl::StrCat("ended with ", code, " ", status.error_message(), " after ", job->next,
                           " of ", size, " ids");
  }
  std::lock_guard<std::mutex> lock(mu_);
  if (stopping_ && resume) {
    resume = false;
    failure =
        absl::StrCat("still running after the drain time (", job->next, " of ", size, " ids)");
  }
  if (resume) {
    if (job->resumes++ == 0) ++resumed_streams;
    ++resume_calls;
    absl::Duration backoff =
        absl::Milliseconds(std::uniform_int_distribution<int>(10, 200)(random_));
    due_.emplace(absl::Now() + backoff, job);
  } else {
    if (!failure.empty()) {
      ++failed;
      if (failures.size() < 20) {
        failures.push_back(absl::StrCat("stream ", job->id, " (", job->list, ", page ",
                                        job->page_size, ", batch ", job->batch_size, ", ",
                                        job->resumes, " resumes): ", failure));
      }
    }
    delete job;
    --active_;
  }
  cv_.notify_all();
}

void Soak::InjectFaults(absl::Time until) {
  std::mt19937 random(7);
  auto pick = [&](int n) { return std::uniform_int_distribution<int>(0, n - 1)(random); };
  int round = 0;
  while (absl::Now() < until) {
    std::string spec;
    const int count = 1 + pick(4);
    const int after = pick(40);
    switch (pick(11)) {
      case 0:
        spec = "kind=status&code=429&retry_after=1";
        break;
      case 1:
        spec = "kind=status&code=429";
        break;
      case 2:
        spec = "kind=status&code=500";
        break;
      case 3:
        spec = "kind=status&code=502";
        break;
      case 4:
        spec = "kind=status&code=503";
        break;
      case 5:
        spec = "kind=reset";
        break;
      case 6:
        spec = "kind=truncate";
        break;
      // One garbled answer at a time: a garbled page that outlasts the attempts ends the stream
      // with INTERNAL (not resumable, by design), and streams sharing that page request share it.
      case 7:
        spec = "kind=malformed&count=1";
        break;
      case 8:
        spec = absl::StrCat("kind=latency&ms=", 50 + pick(450));
        break;
      case 9:
        spec = "kind=status&code=429&retry_after=1&retry_after_date=1";
        break;
      default:
        // Enough failures in a row on one list to exhaust the gateway's attempts for some stream.
        spec = absl::StrCat("kind=status&code=503&list=", kExhaustList,
                            "&count=", 4 * kGatewayAttempts);
        break;
    }
    if (spec.find("count=") == std::string::npos) absl::StrAppend(&spec, "&count=", count);
    absl::StrAppend(&spec, "&after=", after);
    if (sim_->Control("POST", "/_sim/faults?" + spec).status == 200) ++faults_added;
    // Used-up rules pile up; clear them now and then.
    if (++round % 40 == 0) sim_->Control("DELETE", "/_sim/faults");
    absl::SleepFor(absl::Milliseconds(150));
  }
  sim_->Control("DELETE", "/_sim/faults");
}

void Soak::CancelAll() {
  std::unique_lock<std::mutex> lock(mu_);
  stopping_ = true;
  for (auto& [when, job] : due_) {
    ++failed;
    delete job;
    --active_;
  }
  due_.clear();
  for (grpc::ClientContext* context : live_) context->TryCancel();
  cv_.wait_for(lock, std::chrono::seconds(20), [this] { return live_.empty(); });
}

bool Soak::Run(absl::Time until, absl::Duration drain, const std::function<void()>& warm_hook,
               absl::Time warm_at) {
  std::thread injector([this, until] { InjectFaults(until); });
  bool warmed = false;
  absl::Time give_up = until + drain;
  std::unique_lock<std::mutex> lock(mu_);
  while (true) {
    absl::Time now = absl::Now();
    if (!warmed && now >= warm_at) {
      warmed = true;
      lock.unlock();
      warm_hook();
      lock.lock();
      continue;
    }
    if (now < until) {
      while (active_ < kConcurrency) {
        ++active_;
        due_.emplace(now, NewJob());
      }
    } else if (active_ == 0 || now >= give_up) {
      break;
    }
    std::vector<Job*> start;
    while (!due_.empty() && due_.begin()->first <= now) {
      start.push_back(due_.begin()->second);
      due_.erase(due_.begin());
    }
    if (!start.empty()) {
      lock.unlock();
      for (Job* job : start) StartCall(job);
      lock.lock();
      continue;
    }
    absl::Time wake = now + absl::Milliseconds(50);
    if (!due_.empty()) wake = std::min(wake, due_.begin()->first);
    cv_.wait_for(lock, absl::ToChronoNanoseconds(wake - now));
  }
  const bool drained = active_ == 0;
  lock.unlock();
  injector.join();
  return drained;
}

TEST(Soak, TwoHundredStreamsUnderFaultsStayExactAndTheGatewayDoesNotLeak) {
  const char* seconds_env = std::getenv("SOAK_SECONDS");
  const int soak_seconds =
      seconds_env != nullptr && std::atoi(seconds_env) > 0 ? std::atoi(seconds_env) : 120;

  std::unique_ptr<KoreSim> sim =
      KoreSim::Start({"--threads", "2", "--app", absl::StrCat(kAppId, "=", kSecret)});
  ASSERT_NE(sim, nullptr);
  std::unique_ptr<ChildProcess> gateway = contacts::testing::StartGatewayProcess(
      *sim, {.client_id = kAppId,
             .client_secret = kSecret,
             .extra = {"--retry-attempts", absl::StrCat(kGatewayAttempts),
                       "--retry-initial-backoff", "10ms", "--retry-max-backoff", "100ms",
                       "--retry-after-cap", "2s", "--upstream-timeout", "5s", "--log-level",
                       "warning", "--memory-trim-interval", "1s"}});
  ASSERT_NE(gateway, nullptr) << "the gateway did not start";

  std::map<std::string, std::vector<std::string>> expected;
  for (int size : kListSizes) {
    std::string list = absl::StrCat("cl-sim-", size);
    expected[list] = sim->Ids(list);
    ASSERT_EQ(expected[list].size(), static_cast<size_t>(size));
  }
  std::vector<std::unique_ptr<ContactService::Stub>> stubs;
  for (int i = 0; i < kChannels; ++i) {
    grpc::ChannelArguments args;
    args.SetInt("contacts.soak.channel", i);  // a connection of its own
    stubs.push_back(ContactService::NewStub(grpc::CreateCustomChannel(
        absl::StrCat("127.0.0.1:", gateway->port()), grpc::InsecureChannelCredentials(), args)));
  }
  // Idle figures: one stream on each channel first, so that the client connections exist.
  for (auto& stub : stubs) {
    grpc::ClientContext context;
    StreamContactsRequest request;
    request.set_stream_id("st-soak");
    request.set_contact_list_id("cl-sim-2000");
    request.set_account_id("acct-soak");
    request.set_page_size(1000);
    auto reader = stub->StreamContacts(&context, request);
    StreamContactsResponse response;
    size_t got = 0;
    while (reader->Read(&response)) got += response.contacts_size();
    grpc::Status status = reader->Finish();
    ASSERT_TRUE(status.ok()) << "warm-up stream: " << status.error_code() << " "
                             << status.error_message();
    ASSERT_EQ(got, 2000u);
  }
  absl::SleepFor(absl::Seconds(1));
  const ProcessStats idle = Measure(gateway->pid());

  Soak soak(sim.get(), std::move(stubs), std::move(expected));
  const absl::Time start = absl::Now();
  const absl::Time until = start + absl::Seconds(soak_seconds);
  const absl::Time warm_at = start + absl::Seconds(std::min(15, std::max(2, soak_seconds / 5)));
  ProcessStats warm;
  const bool drained = soak.Run(
      until, absl::Seconds(40), [&] { warm = Measure(gateway->pid()); }, warm_at);
  if (!drained) soak.CancelAll();
  const absl::Duration ran = absl::Now() - start;
  // Settle: finished streams release their upstream connections, and the memory the load freed
  // goes back to the system (--memory-trim-interval 1s here); poll up to 10 s for that.
  ProcessStats end;
  for (const absl::Time give_up = absl::Now() + absl::Seconds(10);;) {
    absl::SleepFor(absl::Seconds(1));
    end = Measure(gateway->pid());
    if (end.rss_kib <= idle.rss_kib + kRssBackKib || absl::Now() > give_up) break;
  }
  const std::string stats = sim->Stats();

  std::cout << absl::StrCat("soak: ", soak_seconds, " s of load, ",
                            absl::FormatDuration(absl::Trunc(ran, absl::Seconds(1))),
                            " with the drain; streams completed ", soak.completed.load(),
                            " / resumed ", soak.resumed_streams.load(), " (",
                            soak.resume_calls.load(), " resume calls) / cancelled ",
                            soak.cancelled.load(), " / failed ", soak.failed.load(), "; calls ",
                            soak.calls.load(), "; contacts delivered ", soak.contacts.load(),
                            "; faults injected ", soak.faults_added.load(), "; RSS start/end ",
                            warm.rss_kib / 1024, "/", end.rss_kib / 1024,
                            " MiB; threads start/end ", warm.threads, "/", end.threads,
                            "; sockets start/end ", warm.sockets, "/", end.sockets,
                            " (idle before load: ", Describe(idle), ")")
            << "\nkore-sim: " << stats << std::endl;
  for (const std::string& failure : soak.failures) std::cout << "failure: " << failure << "\n";

  EXPECT_TRUE(drained) << "streams still running 40 s after the load stopped";
  EXPECT_EQ(soak.failed.load(), 0) << "see the failure lines above";
  EXPECT_GT(soak.completed.load(), kConcurrency) << "too few streams completed to call this a soak";
  EXPECT_GT(soak.cancelled.load(), 0);
  EXPECT_GT(soak.faults_added.load(), 0);
  ASSERT_GT(warm.rss_kib, 0);
  EXPECT_LE(end.rss_kib, idle.rss_kib + kRssBackKib)
      << "the memory of the load did not come back: " << Describe(idle) << " idle, "
      << Describe(warm) << " under load, " << Describe(end) << " after it";
  // gRPC may start one more executor thread under load; a leak would grow with every stream.
  EXPECT_LE(end.threads, warm.threads + 2)
      << "threads grew: " << Describe(warm) << " -> " << Describe(end);
  // Back near idle: the client connections, the listener, and up to 16 idle upstream connections.
  EXPECT_LE(end.sockets, idle.sockets + 16)
      << "sockets did not come back: idle " << Describe(idle) << ", end " << Describe(end);
  EXPECT_EQ(gateway->Stop(SIGTERM, 10000), 0) << "the gateway did not exit 0 on SIGTERM";
}

}  // namespace
}  // namespace contacts::soak
