#include "tools/kore-sim/config.h"

#include <algorithm>
#include <iterator>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "boost/asio/ip/address.hpp"
#include "tools/kore-sim/list_store.h"
#include "tools/kore-sim/text.h"

namespace contacts::kore_sim {
namespace {

absl::string_view Av(std::string_view s) { return absl::string_view(s.data(), s.size()); }

absl::Status FlagError(std::string_view flag, std::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat(Av(flag), ": ", Av(why)));
}

absl::StatusOr<int64_t> IntValue(std::string_view flag, std::string_view value, int64_t min,
                                 int64_t max) {
  std::optional<int64_t> v = ParseInt64(value);
  if (!v || *v < min || *v > max) {
    return FlagError(
        flag, absl::StrCat("expected an integer in ", min, "..", max, ", got '", Av(value), "'"));
  }
  return *v;
}

// HOST:PORT, HOST:PORT with HOST in brackets for IPv6 ([::1]:8080).
absl::Status ParseListen(std::string_view value, Config& config) {
  const size_t colon = value.rfind(':');
  if (colon == std::string_view::npos || colon == 0) {
    return FlagError("--listen", absl::StrCat("expected HOST:PORT, got '", Av(value), "'"));
  }
  std::string_view host = value.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  boost::system::error_code ec;
  if (host != "localhost") boost::asio::ip::make_address(std::string(host), ec);
  if (ec) {
    return FlagError("--listen",
                     absl::StrCat("'", Av(host), "' is not an IP address or localhost"));
  }
  absl::StatusOr<int64_t> port = IntValue("--listen", value.substr(colon + 1), 0, 65535);
  if (!port.ok()) return port.status();
  config.listen_host = std::string(host);
  config.listen_port = static_cast<uint16_t>(*port);
  return absl::OkStatus();
}

// NAME=VALUE with a non-empty NAME.
absl::StatusOr<std::pair<std::string, std::string>> Assignment(std::string_view flag,
                                                               std::string_view value,
                                                               std::string_view shape) {
  const size_t eq = value.find('=');
  if (eq == std::string_view::npos || eq == 0) {
    return FlagError(flag, absl::StrCat("expected ", Av(shape), ", got '", Av(value), "'"));
  }
  return std::make_pair(std::string(value.substr(0, eq)), std::string(value.substr(eq + 1)));
}

}  // namespace

absl::StatusOr<ParsedFlags> ParseFlags(const std::vector<std::string_view>& args) {
  ParsedFlags parsed;
  Config& config = parsed.config;
  for (size_t i = 0; i < args.size(); ++i) {
    std::string_view arg = args[i];
    if (!arg.starts_with("--")) {
      return absl::InvalidArgumentError(absl::StrCat("unexpected argument '", Av(arg), "'"));
    }
    std::string_view flag = arg;
    std::optional<std::string_view> inline_value;
    if (size_t eq = arg.find('='); eq != std::string_view::npos) {
      flag = arg.substr(0, eq);
      inline_value = arg.substr(eq + 1);
    }

    // Boolean flags.
    bool* boolean = nullptr;
    if (flag == "--help" || flag == "-h") {
      parsed.help = true;
      continue;
    }
    if (flag == "--no-auth") boolean = &config.no_auth;
    if (flag == "--require-jti") boolean = &config.require_jti;
    if (flag == "--dirty") boolean = &config.dirty;
    if (flag == "--quiet") boolean = &config.quiet;
    if (boolean != nullptr) {
      if (inline_value) return FlagError(flag, "takes no value");
      *boolean = true;
      continue;
    }

    // Flags with a value.
    static constexpr std::string_view kValueFlags[] = {
        "--listen",      "--threads",        "--idle-timeout",
        "--tls-cert",    "--tls-key",        "--app",
        "--list",        "--default-limit",  "--max-limit",
        "--skip-param",  "--limit-param",    "--rate-limit",
        "--fault",       "--page-cache-mib", "--reject-limit-above",
        "--rate-window", "--request-log"};
    if (std::find(std::begin(kValueFlags), std::end(kValueFlags), flag) == std::end(kValueFlags)) {
      return absl::InvalidArgumentError(absl::StrCat("unknown flag '", Av(flag), "' (see --help)"));
    }
    std::string_view value;
    if (inline_value) {
      value = *inline_value;
    } else if (i + 1 < args.size()) {
      value = args[++i];
    } else {
      return FlagError(flag, "needs a value (see --help)");
    }
    absl::StatusOr<int64_t> number;
    absl::StatusOr<std::pair<std::string, std::string>> assignment;
    if (flag == "--listen") {
      if (absl::Status s = ParseListen(value, config); !s.ok()) return s;
    } else if (flag == "--threads") {
      if (!(number = IntValue(flag, value, 1, 256)).ok()) return number.status();
      config.threads = static_cast<int>(*number);
    } else if (flag == "--idle-timeout") {
      if (!(number = IntValue(flag, value, 1, 3600)).ok()) return number.status();
      config.idle_timeout_seconds = static_cast<int>(*number);
    } else if (flag == "--tls-cert") {
      config.tls_cert = std::string(value);
    } else if (flag == "--tls-key") {
      config.tls_key = std::string(value);
    } else if (flag == "--app") {
      if (!(assignment = Assignment(flag, value, "CLIENT_ID=SECRET")).ok()) {
        return assignment.status();
      }
      if (assignment->second.empty()) return FlagError(flag, "the secret is empty");
      config.apps[assignment->first] = assignment->second;
    } else if (flag == "--list") {
      if (!(assignment = Assignment(flag, value, "ID=N")).ok()) return assignment.status();
      if (!(number = IntValue(flag, assignment->second, 0, ListStore::kMaxGeneratedSize)).ok()) {
        return number.status();
      }
      config.lists[assignment->first] = *number;
    } else if (flag == "--default-limit") {
      if (!(number = IntValue(flag, value, 1, 1'000'000)).ok()) return number.status();
      config.default_limit = *number;
    } else if (flag == "--max-limit") {
      if (!(number = IntValue(flag, value, 1, 1'000'000)).ok()) return number.status();
      config.max_limit = *number;
    } else if (flag == "--reject-limit-above") {
      if (!(number = IntValue(flag, value, 0, 1'000'000)).ok()) return number.status();
      config.reject_limit_above = *number;
    } else if (flag == "--skip-param" || flag == "--limit-param") {
      if (value.empty()) return FlagError(flag, "the name is empty");
      (flag == "--skip-param" ? config.skip_param : config.limit_param) = std::string(value);
    } else if (flag == "--rate-limit") {
      if (!(number = IntValue(flag, value, 0, 1'000'000'000)).ok()) return number.status();
      config.rate_limit = *number;
    } else if (flag == "--rate-window") {
      if (!(number = IntValue(flag, value, 1, 86400)).ok()) return number.status();
      config.rate_window_seconds = *number;
    } else if (flag == "--request-log") {
      if (!(number = IntValue(flag, value, 0, 1'000'000)).ok()) return number.status();
      config.request_log_size = *number;
    } else if (flag == "--page-cache-mib") {
      if (!(number = IntValue(flag, value, 0, 65536)).ok()) return number.status();
      config.page_cache_mib = *number;
    } else if (flag == "--fault") {
      absl::StatusOr<FaultRule> rule = ParseFaultSpec(value);
      if (!rule.ok()) {
        const absl::string_view message = rule.status().message();
        return FlagError(flag, std::string_view(message.data(), message.size()));
      }
      config.faults.push_back(*std::move(rule));
    }
  }

  if (config.tls_cert.empty() != config.tls_key.empty()) {
    return absl::InvalidArgumentError("--tls-cert and --tls-key must be given together");
  }
  if (config.default_limit > config.max_limit) {
    return absl::InvalidArgumentError("--default-limit must not exceed --max-limit");
  }
  if (config.reject_limit_above > 0 && config.default_limit > config.reject_limit_above) {
    return absl::InvalidArgumentError("--default-limit must not exceed --reject-limit-above");
  }
  if (config.skip_param == config.limit_param) {
    return absl::InvalidArgumentError("--skip-param and --limit-param must differ");
  }
  if (config.apps.empty()) config.apps["cs-demo"] = "demo-secret";
  return parsed;
}

std::string HelpText() {
  return R"(kore-sim: a simulated Kore.ai "Get All Contacts of a Contact List" (v2) upstream.

Serves   GET /campaign/api/v2/public/{streamId}/campaign/contactList/{listId}/getAllContacts
             ?accountId=ACCOUNT&skip=N&limit=N
with headers `auth` (HS256 JWT whose `appId` claim names an app), `iid` (= appId), `accountId`
(= the query's accountId), plus a control API under /_sim/ (no auth). When ready it prints one line
to stdout:  kore-sim listening on HOST:PORT (http|https)

Checks, in order (errors as {"errors":[{"msg":"...","code":N}]}):
  path (404 "Not found"), method GET (405), auth JWT valid for its appId's secret (401, code
  4002 "Invalid JWT token"), iid = appId (401), exp not past (401 "JWT expired"), jti (401, with
  --require-jti), accountId query present (400) and equal to the accountId header (400), rate
  limit (429), list exists (404 "Contact list not found"), skip/limit non-negative integers (400),
  limit not above --reject-limit-above (400 "limit must be between 1 and N"), then fault rules,
  then the 200 page.

Server
  --listen HOST:PORT     address to bind (default 127.0.0.1:0; port 0 picks a free port;
                         IPv6 as [::1]:PORT)
  --threads N            I/O threads (default 2)
  --idle-timeout SEC     close a connection idle this long between requests (default 30)
  --tls-cert FILE        PEM certificate chain; with --tls-key, serve HTTPS
  --tls-key FILE         PEM private key
  --quiet                no per-request log line on stderr (default: method, path, status, ms;
                         never headers or tokens)
  --request-log N        keep the last N requests on the contacts path for GET /_sim/requests
                         (default 10000; 0 = off)

Authentication
  --app ID=SECRET        an app (client id and secret) whose tokens are accepted; repeatable
                         (default: one app cs-demo=demo-secret)
  --no-auth              skip the auth/iid/exp/jti checks
  --require-jti          "Enforce JTI": reject tokens without a `jti` claim or whose jti was seen

Lists and paging
  --list ID=N            a contact list ID with N contacts (N <= 10000000); repeatable. Any id
                         cl-sim-<N> also exists with N contacts; other ids answer 404
  --default-limit N      page size when the request has no limit, or limit=0 (default 50)
  --max-limit N          larger limits are served N contacts (default 1000): the page says
                         "limit":N and totalPages for N, and "hasMore":true while contacts follow,
                         as a full page of N would
  --reject-limit-above N a limit above N (the default limit, when the request has none) is
                         answered 400 with {"errors":[{"msg":"limit must be between 1 and N",
                         "code":400}]} (default 0 = off); checked before --max-limit
  --skip-param NAME      query parameter for the offset (default skip)
  --limit-param NAME     query parameter for the page size (default limit)
  --rate-limit N         N admitted requests per rate window per accountId, sliding window; more
                         get 429 with Retry-After (default 0 = off)
  --rate-window SEC      the rate limit's window (default 60), e.g. --rate-limit 20
                         --rate-window 2 for 20 requests per 2 s; also the window of the
                         per-account max_in_window in /_sim/stats
  --dirty                realistic dirt: every 7th contact without phoneNumber, every 11th with
                         "updatedAt": null, every 5th without milliseconds, skip/limit/totalResults
                         as strings on odd pages, an unknown "attributes" field on each contact
  --page-cache-mib N     keep up to N MiB of rendered pages and serve them again (default 64;
                         0 = off); pages a fault alters are not cached, a mutation or
                         /_sim/reset empties the cache

Faults
  --fault SPEC           add a fault rule at start-up (repeatable), SPEC as for POST /_sim/faults,
                         e.g. --fault 'kind=status&code=503&count=2'
      kind=status|latency|reset|truncate|malformed|ignore-paging|empty-page|mutate   (required)
      count=N            requests it hits (default 1; -1 = forever)
      after=N            let N matching requests through first (default 0)
      list=ID, skip=N    only requests for that list / with that skip
      code=N             status for kind=status (default 503)
      retry_after=SEC    add Retry-After to a kind=status answer; retry_after_date=1 sends it as
                         an HTTP-date
      ms=N               delay for kind=latency (default 1000)
      op=insert|delete, at=I, n=N   the mutation for kind=mutate (n default 1)
    Rules are tried in order on requests that passed every check; the first that hits applies.
    status: that HTTP status with {"errors":[{"msg":"Simulated upstream error","code":N}]};
    latency: wait, then answer; reset: full Content-Length, half the body, close;
    truncate: body cut in half with a matching Content-Length; malformed: a 200 that is not JSON;
    ignore-paging: answer as if skip were 0; empty-page: 200 with no results and hasMore true;
    mutate: mutate the list, then answer.

Control API (same port)
  GET    /_sim/stats                     {"requests":N,"list_requests":N,"contacts_served":N,
                                          "by_status":{"200":N,...},"rate_window_seconds":W,
                                          "accounts":{"ACCOUNT":{"requests":N,"rate_limited":N,
                                          "max_in_window":N},...}}: requests = all requests
                                          outside /_sim/, list_requests = those on the contacts
                                          path, contacts_served = contacts in complete 200 pages;
                                          per account, the requests that reached the rate-limit
                                          check (admitted or not), those answered 429 (the
                                          limit's or a fault's), and the most of them within any
                                          sliding window of W seconds
  GET    /_sim/requests[?list=ID&account=ID]
                                         the last --request-log requests on the contacts path,
                                          oldest first: {"capacity":N,"dropped":N,"requests":[
                                          {"seq":N,"time":"...Z","method":"GET","list":ID,
                                          "account":ID,"skip":N,"limit":N,"status":N,
                                          "traceparent":S,"tracestate":S},...]}; skip and limit
                                          as asked (null: absent or not an integer), trace
                                          headers null when absent; never auth or other headers
  GET    /_sim/config                    {"default_limit":N,"max_limit":N,"reject_limit_above":N}
  POST   /_sim/config?max_limit=N&reject_limit_above=N
                                         change either or both from now on (0 = off for
                                          reject_limit_above); answers the new config
  POST   /_sim/reset                     clear stats, faults, rate-limit state, list mutations,
                                          the request log; restore the config to the flags'

  GET    /_sim/faults                    the fault rules with their counters
  POST   /_sim/faults?SPEC               add a rule (SPEC as above)
  DELETE /_sim/faults                    remove all rules
  GET    /_sim/lists/ID/ids              the list's current ids, one per line
  POST   /_sim/lists/ID/mutate?op=insert|delete&at=I&n=N   mutate now; answers {"size":N}
                                          (insert: n fresh ids c-<hash>-n<seq> before index I;
                                          delete: up to n contacts from index I)

  --help                 this text
Exit status: 0 after SIGINT/SIGTERM, 1 when it cannot start, 2 on a bad flag.
)";
}

}  // namespace contacts::kore_sim
