#ifndef CONTACTS_GATEWAY_TOOLS_KORE_SIM_CONFIG_H_
#define CONTACTS_GATEWAY_TOOLS_KORE_SIM_CONFIG_H_

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "tools/kore-sim/fault.h"

namespace contacts::kore_sim {

// Everything kore-sim is told on its command line. Read-only once parsed.
struct Config {
  std::string listen_host = "127.0.0.1";
  uint16_t listen_port = 0;
  int threads = 2;
  int idle_timeout_seconds = 30;
  std::string tls_cert;  // both set: serve HTTPS
  std::string tls_key;

  std::map<std::string, std::string, std::less<>> apps;  // client id → secret
  bool no_auth = false;
  bool require_jti = false;

  std::map<std::string, int64_t, std::less<>> lists;  // --list id → size
  int64_t default_limit = 50;
  int64_t max_limit = 1000;        // larger limits are served this many contacts
  int64_t reject_limit_above = 0;  // larger limits are answered 400; 0: off
  std::string skip_param = "skip";
  std::string limit_param = "limit";
  int64_t rate_limit = 0;            // requests per rate window per account; 0: off
  int64_t rate_window_seconds = 60;  // the rate limit's window, and the per-account statistics'
  int64_t request_log_size = 10000;  // requests kept for GET /_sim/requests; 0: off
  bool dirty = false;
  int64_t page_cache_mib = 64;  // rendered pages kept for reuse; 0: off
  std::vector<FaultRule> faults;
  bool quiet = false;

  bool tls() const { return !tls_cert.empty(); }
};

struct ParsedFlags {
  Config config;
  bool help = false;  // --help was given: print HelpText() and exit 0
};

// Parses argv[1..]. Errors are kInvalidArgument with a one-line message naming the flag.
// Flags take their value as `--flag VALUE` or `--flag=VALUE`.
absl::StatusOr<ParsedFlags> ParseFlags(const std::vector<std::string_view>& args);

std::string HelpText();

}  // namespace contacts::kore_sim

#endif  // CONTACTS_GATEWAY_TOOLS_KORE_SIM_CONFIG_H_
