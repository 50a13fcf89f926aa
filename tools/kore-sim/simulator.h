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
#include "tools/kore-sim/auth.h"
#include "tools/kore-sim/config.h"
#include "tools/kore-sim/fault.h"
#include "tools/kore-sim/list_store.h"
#include "tools/kore-sim/page_cache.h"
#include "tools/kore-sim/rate_limiter.h"

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
// the page) and the /_sim/ control API. Owns the lists, fault rules, rate limiter, authenticator
// rendered-page cache and request statistics. Thread-safe: every I/O thread calls Handle()
// concurrently; nothing in it blocks except on short internal mutexes.
class Simulator {
 public:
  explicit Simulator(const Config& config);

  Reply Handle(const http::request<http::string_body>& request);

 private:
  // Outcome of a request to the contacts side (everything outside /_sim/), for the statistics.
  struct Outcome {
    bool list_request = false;  // the path was the getAllContacts path
    int64_t contacts = 0;       // contacts delivered in a complete 200 page
  };
  Reply HandleContacts(const http::request<http::string_body>& request, std::string_view path,
                       std::string_view query, Outcome& outcome);
  Reply HandleControl(const http::request<http::string_body>& request, std::string_view path,
                      std::string_view query);
  void Record(const Outcome& outcome, unsigned status);
  std::string StatsJson() const;

  const bool no_auth_;
  const bool dirty_;
  const int64_t default_limit_;
  const int64_t max_limit_;
  const std::string skip_param_;
  const std::string limit_param_;
  Authenticator authenticator_;
  RateLimiter rate_limiter_;
  ListStore lists_;
  FaultBook faults_;
  PageCache page_cache_;  // invalidated by every mutation and by /_sim/reset

  mutable absl::Mutex stats_mu_;
  int64_t requests_ ABSL_GUARDED_BY(stats_mu_) = 0;
  int64_t list_requests_ ABSL_GUARDED_BY(stats_mu_) = 0;
  int64_t contacts_served_ ABSL_GUARDED_BY(stats_mu_) = 0;
  std::map<unsigned, int64_t> by_status_ ABSL_GUARDED_BY(stats_mu_);
};

}  // namespace contacts::kore_sim

#endif  // CONTACTS_GATEWAY_TOOLS_KORE_SIM_SIMULATOR_H_
