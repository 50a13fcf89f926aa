#ifndef CONTACTS_GATEWAY_TOOLS_KORE_SIM_SIMULATOR_H_
#define CONTACTS_GATEWAY_TOOLS_KORE_SIM_SIMULATOR_H_

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "boost/beast/http.hpp"
#include "tools/kore-sim/account_stats.h"
#include "tools/kore-sim/auth.h"
#include "tools/kore-sim/config.h"
#include "tools/kore-sim/fault.h"
#include "tools/kore-sim/list_store.h"
#include "tools/kore-sim/page_cache.h"
#include "tools/kore-sim/rate_limiter.h"
#include "tools/kore-sim/request_log.h"

namespace contacts::kore_sim {

namespace http = boost::beast::http;

// What to send back for one request, and how.
struct Reply {
  http::response<http::string_body> response;  // Content-Length already set
  // A rendered page: the body to send instead of response.body() (which is then empty).
  PageCache::Body page;
  // Fault kind=reset: send the header and about half the body, then close the connection.
  bool reset_midway = false;
  // Fault kind=latency: wait this long before sending.
  std::chrono::milliseconds delay{0};
};

// The simulated upstream, without any I/O: turns one HTTP request into a Reply. Serves the
// getAllContacts endpoint (checks in the order of UPSTREAM.md and --help, then fault rules, then
// the page) and the /_sim/ control API. Owns the lists, fault rules, rate limiter, authenticator,
// rendered-page cache, page-size limits, request statistics and request log. Thread-safe: every
// I/O thread calls Handle() concurrently; nothing in it blocks except on short internal mutexes.
class Simulator {
 public:
  explicit Simulator(const Config& config);

  Reply Handle(const http::request<http::string_body>& request);

 private:
  // Outcome of a request to the contacts side (everything outside /_sim/), for the statistics
  // and the request log.
  struct Outcome {
    bool list_request = false;     // the path was the getAllContacts path
    int64_t contacts = 0;          // contacts delivered in a complete 200 page
    bool account_checked = false;  // accountId passed its checks: counted for the account
    RequestLog::Entry entry;       // for the request log, when list_request
  };
  // Page sizes: what is served for a larger limit, and above which a limit is refused.
  struct Limits {
    int64_t max_limit;
    int64_t reject_above;  // 0: off
  };
  Reply HandleContacts(const http::request<http::string_body>& request, std::string_view path,
                       std::string_view query, Outcome& outcome);
  Reply HandleControl(const http::request<http::string_body>& request, std::string_view path,
                      std::string_view query);
  Reply HandleConfig(const http::request<http::string_body>& request, std::string_view query);
  void Record(Outcome& outcome, unsigned status);
  std::string StatsJson() const;
  std::string ConfigJson() const;

  const bool no_auth_;
  const bool dirty_;
  const int64_t default_limit_;
  const Limits initial_limits_;  // from the flags; /_sim/reset restores them
  const int64_t rate_window_seconds_;
  const std::string skip_param_;
  const std::string limit_param_;
  Authenticator authenticator_;
  RateLimiter rate_limiter_;
  ListStore lists_;
  FaultBook faults_;
  PageCache page_cache_;  // invalidated by every mutation and by /_sim/reset
  AccountStats account_stats_;
  RequestLog request_log_;

  mutable absl::Mutex limits_mu_;
  Limits limits_ ABSL_GUARDED_BY(limits_mu_);  // POST /_sim/config changes them

  mutable absl::Mutex stats_mu_;
  int64_t requests_ ABSL_GUARDED_BY(stats_mu_) = 0;
  int64_t list_requests_ ABSL_GUARDED_BY(stats_mu_) = 0;
  int64_t contacts_served_ ABSL_GUARDED_BY(stats_mu_) = 0;
  std::map<unsigned, int64_t> by_status_ ABSL_GUARDED_BY(stats_mu_);
};

}  // namespace contacts::kore_sim

#endif  // CONTACTS_GATEWAY_TOOLS_KORE_SIM_SIMULATOR_H_
