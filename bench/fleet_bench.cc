// fleet_bench: B7's measurements of the shared budget itself (bench/run.sh b7, bench/REPORT.md).
//
//   fleet_bench --redis URL --mode latency [--grants N]
//     One request at a time, never held back by the rate (1,000,000/s): the time from Acquire to
//     the grant through the in-process budget (LocalRateBudget) and through Redis
//     (RedisRateBudget), alternating, N each. Prints local_p50_us, local_p99_us, shared_p50_us,
//     shared_p99_us, added_p50_us, added_p99_us, and redis_calls_per_grant (Redis's own count of
//     commands over the grants: the round trips a page costs the budget).
//   fleet_bench --redis URL --mode throughput [--replicas R] [--accounts A] [--in-flight F]
//               [--seconds S]
//     R replicas in this process (each its SharedState, one command connection, and budget), each
//     keeping F requests of A accounts (1,000,000/s each, never held back) waiting for a grant
//     for S seconds. Prints grants_per_s (what one Redis served) and redis_cpu_s_per_s (the
//     server's CPU seconds per second, from INFO), hence grants_per_redis_cpu_s.
#include <algorithm>
#include <atomic>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <cstdio>
#include <functional>
#include <future>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "server/core/log.h"
#include "server/fleet/redis_rate_budget.h"
#include "server/fleet/shared_state.h"
#include "server/stream/local_rate_budget.h"

namespace contacts::gateway {
namespace {

constexpr int64_t kUnbound = 60'000'000;  // requests per minute: no wait worth the name

class Io {
 public:
  explicit Io(int threads) {
    for (int i = 0; i < threads; ++i) threads_.emplace_back([this] { io_.run(); });
  }
  ~Io() {
    work_.reset();
    io_.stop();
    for (std::thread& t : threads_) t.join();
  }
  boost::asio::io_context& io() { return io_; }

 private:
  boost::asio::io_context io_;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work_{
      io_.get_executor()};
  std::vector<std::thread> threads_;
};

std::unique_ptr<SharedState> Join(boost::asio::io_context& io, const std::string& url) {
  SharedStateOptions options;
  options.redis.url = url;
  options.prefix = "fleet-bench:";
  absl::StatusOr<std::unique_ptr<SharedState>> shared = SharedState::Create(io, options);
  if (!shared.ok()) {
    std::fprintf(stderr, "fleet_bench: %s\n", std::string(shared.status().message()).c_str());
    std::exit(2);
  }
  return *std::move(shared);
}

void WaitShared(const SharedState& shared) {
  const absl::Time give_up = absl::Now() + absl::Seconds(10);
  while (shared.mode() != SharedState::Mode::kShared) {
    if (absl::Now() > give_up) {
      std::fprintf(stderr, "fleet_bench: Redis did not answer\n");
      std::exit(2);
    }
    absl::SleepFor(absl::Milliseconds(10));
  }
}

// A number from Redis's INFO (e.g. "used_cpu_sys"), through a command of `shared`'s connection.
double Info(SharedState& shared, const std::string& section, const std::string& key) {
  std::promise<std::string> text;
  shared.redis().Command({"INFO", section}, [&](absl::StatusOr<RedisReply> reply) {
    text.set_value(reply.ok() ? reply->text : "");
  });
  const std::string info = text.get_future().get();
  for (absl::string_view line : absl::StrSplit(info, '\n')) {
    line = absl::StripSuffix(line, "\r");
    if (!absl::ConsumePrefix(&line, key + ":")) continue;
    double value = 0;
    // cmdstat lines: "calls=N,usec=..."
    if (absl::ConsumePrefix(&line, "calls=")) line = line.substr(0, line.find(','));
    if (absl::SimpleAtod(line, &value)) return value;
  }
  return 0;
}

double Commands(SharedState& shared) {
  return Info(shared, "commandstats", "cmdstat_evalsha") +
         Info(shared, "commandstats", "cmdstat_eval");
}

absl::Duration Grant(RateBudget& budget, const std::string& account, uint64_t owner) {
  std::promise<void> granted;
  const absl::Time start = absl::Now();
  budget.Acquire({.account = account, .owner = owner}, std::make_shared<Cancellation>(),
                 [&](RateBudget::Decision decision) {
                   if (!decision.status.ok()) {
                     std::fprintf(stderr, "fleet_bench: %s\n",
                                  std::string(decision.status.message()).c_str());
                     std::exit(1);
                   }
                   granted.set_value();
                 });
  granted.get_future().get();
  return absl::Now() - start;
}

double Percentile(std::vector<absl::Duration> values, double p) {
  std::sort(values.begin(), values.end());
  const size_t at = std::min(values.size() - 1, static_cast<size_t>(p * values.size()));
  return absl::ToDoubleMicroseconds(values[at]);
}

int Latency(const std::string& url, int grants) {
  Io io(2);
  std::unique_ptr<SharedState> shared = Join(io.io(), url);
  RedisRateBudget redis(io.io(), *shared, {.per_minute = kUnbound});
  shared->Start();
  WaitShared(*shared);
  RateBudgetOptions options;
  options.per_minute = kUnbound;
  LocalRateBudget local(io.io(), options);
  std::vector<absl::Duration> local_waits, shared_waits;
  for (int i = 0; i < 100; ++i) {  // warm up: connections, the script loaded
    Grant(local, "acct-bench", 1);
    Grant(redis, "acct-bench", 1);
  }
  const double before = Commands(*shared);
  for (int i = 0; i < grants; ++i) {
    local_waits.push_back(Grant(local, "acct-bench", 1));
    shared_waits.push_back(Grant(redis, "acct-bench", 1));
  }
  // EVALSHA and EVAL calls (a heartbeat a second among them) per grant.
  const double calls = Commands(*shared) - before;
  std::printf(
      "local_p50_us=%.1f local_p99_us=%.1f shared_p50_us=%.1f shared_p99_us=%.1f "
      "added_p50_us=%.1f added_p99_us=%.1f redis_calls_per_grant=%.2f\n",
      Percentile(local_waits, 0.5), Percentile(local_waits, 0.99), Percentile(shared_waits, 0.5),
      Percentile(shared_waits, 0.99), Percentile(shared_waits, 0.5) - Percentile(local_waits, 0.5),
      Percentile(shared_waits, 0.99) - Percentile(local_waits, 0.99), calls / grants);
  shared->Stop();
  absl::SleepFor(absl::Milliseconds(100));
  return 0;
}

int Throughput(const std::string& url, int replicas, int accounts, int in_flight, double seconds) {
  Io io(2);
  std::vector<std::unique_ptr<SharedState>> states;
  std::vector<std::unique_ptr<RedisRateBudget>> budgets;
  for (int r = 0; r < replicas; ++r) {
    states.push_back(Join(io.io(), url));
    budgets.push_back(
        std::make_unique<RedisRateBudget>(io.io(), *states.back(), FleetBudgetOptions{kUnbound}));
    states.back()->Start();
  }
  for (const auto& state : states) WaitShared(*state);
  std::atomic<int64_t> granted{0};
  std::atomic<bool> stop{false};
  std::atomic<int> outstanding{0};
  // Each of F loops per replica: acquire for the next account, again once granted.
  std::function<void(int, int)> ask = [&](int replica, int n) {
    if (stop) {
      --outstanding;
      return;
    }
    budgets[replica]->Acquire(
        {.account = absl::StrCat("acct-", n % accounts), .owner = static_cast<uint64_t>(n)},
        std::make_shared<Cancellation>(), [&, replica, n](RateBudget::Decision) {
          ++granted;
          ask(replica, n + in_flight);
        });
  };
  const double cpu_before =
      Info(*states[0], "cpu", "used_cpu_sys") + Info(*states[0], "cpu", "used_cpu_user");
  const absl::Time start = absl::Now();
  for (int r = 0; r < replicas; ++r) {
    for (int i = 0; i < in_flight; ++i) {
      ++outstanding;
      ask(r, i);
    }
  }
  absl::SleepFor(absl::Seconds(seconds));
  const int64_t total = granted.load();
  const absl::Duration took = absl::Now() - start;
  const double cpu = Info(*states[0], "cpu", "used_cpu_sys") +
                     Info(*states[0], "cpu", "used_cpu_user") - cpu_before;
  stop = true;
  while (outstanding > 0) absl::SleepFor(absl::Milliseconds(10));
  const double per_s = total / absl::ToDoubleSeconds(took);
  const double cpu_per_s = cpu / absl::ToDoubleSeconds(took);
  std::printf("grants_per_s=%.0f redis_cpu_s_per_s=%.2f grants_per_redis_cpu_s=%.0f\n", per_s,
              cpu_per_s, cpu_per_s > 0 ? per_s / cpu_per_s : 0);
  for (const auto& state : states) state->Stop();
  absl::SleepFor(absl::Milliseconds(100));
  return 0;
}

}  // namespace
}  // namespace contacts::gateway

int main(int argc, char** argv) {
  contacts::gateway::SetMinLogSeverity(contacts::gateway::Severity::kError);  // stdout: results
  std::string url, mode = "latency";
  int grants = 2000, replicas = 3, accounts = 1000, in_flight = 64;
  double seconds = 5;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string_view flag = argv[i];
    const std::string value = argv[i + 1];
    bool ok = true;
    if (flag == "--redis") {
      url = value;
    } else if (flag == "--mode") {
      mode = value;
    } else if (flag == "--grants") {
      ok = absl::SimpleAtoi(value, &grants) && grants > 0;
    } else if (flag == "--replicas") {
      ok = absl::SimpleAtoi(value, &replicas) && replicas > 0;
    } else if (flag == "--accounts") {
      ok = absl::SimpleAtoi(value, &accounts) && accounts > 0;
    } else if (flag == "--in-flight") {
      ok = absl::SimpleAtoi(value, &in_flight) && in_flight > 0;
    } else if (flag == "--seconds") {
      ok = absl::SimpleAtod(value, &seconds) && seconds > 0;
    } else {
      ok = false;
    }
    if (!ok) {
      std::fprintf(stderr, "fleet_bench: bad flag or value: %s %s\n", argv[i], value.c_str());
      return 2;
    }
  }
  if (url.empty() || (mode != "latency" && mode != "throughput") || argc % 2 == 0) {
    std::fprintf(stderr,
                 "usage: fleet_bench --redis URL [--mode latency [--grants N] | --mode throughput "
                 "[--replicas R] [--accounts A] [--in-flight F] [--seconds S]]\n");
    return 2;
  }
  return mode == "latency"
             ? contacts::gateway::Latency(url, grants)
             : contacts::gateway::Throughput(url, replicas, accounts, in_flight, seconds);
}
