#include "server/app/config.h"

#include <fstream>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "server/fleet/redis_connection.h"

namespace contacts::gateway {
namespace {

// One configuration setting: its flag name, the kind of value it takes, what it does, and how it
// is stored. `set` returns an error message, or "" when the value was taken.
struct Setting {
  std::string name;
  std::string value;  // e.g. "HOST:PORT"; empty for a boolean flag
  std::string help;
  std::function<std::string(Config&, const std::string&)> set;
  std::function<std::string(const Config&)> show;  // the default, for --help; null: not shown
};

std::string ParseBool(const std::string& text, bool* out) {
  std::string v = absl::AsciiStrToLower(text);
  if (v == "" || v == "true" || v == "1" || v == "yes") {
    *out = true;
  } else if (v == "false" || v == "0" || v == "no") {
    *out = false;
  } else {
    return "expected true or false";
  }
  return "";
}

template <typename Int>
std::string ParseInt(const std::string& text, Int low, Int high, Int* out) {
  int64_t v = 0;
  if (!absl::SimpleAtoi(text, &v) || v < static_cast<int64_t>(low) ||
      v > static_cast<int64_t>(high)) {
    return absl::StrCat("expected a whole number from ", low, " to ", high);
  }
  *out = static_cast<Int>(v);
  return "";
}

// "30s", "1m", "250ms", or a bare number of seconds.
std::string ParseSeconds(const std::string& text, absl::Duration* out) {
  double seconds = 0;
  if (absl::SimpleAtod(text, &seconds) && seconds >= 0) {
    *out = absl::Seconds(seconds);
    return "";
  }
  absl::Duration d;
  if (absl::ParseDuration(text, &d) && d >= absl::ZeroDuration()) {
    *out = d;
    return "";
  }
  return "expected a duration such as 30s, 1m or 250ms";
}

// "acct-1=30,acct-2=0": per-account requests per minute, added to `out`.
std::string ParseAccountLimits(const std::string& text,
                               absl::flat_hash_map<std::string, int64_t>* out) {
  for (absl::string_view item : absl::StrSplit(text, ',', absl::SkipWhitespace())) {
    std::pair<absl::string_view, absl::string_view> kv =
        absl::StrSplit(item, absl::MaxSplits('=', 1));
    std::string account(absl::StripAsciiWhitespace(kv.first));
    int64_t per_minute = 0;
    if (account.empty() || !ParseInt(std::string(absl::StripAsciiWhitespace(kv.second)), int64_t{0},
                                     int64_t{1000000}, &per_minute)
                                .empty()) {
      return "expected ACCOUNT=N with N a whole number from 0 to 1000000, comma-separated";
    }
    (*out)[account] = per_minute;
  }
  return "";
}

std::string Seconds(absl::Duration d) { return absl::FormatDuration(d); }

std::string ReadSecretFile(const std::string& path, std::string* out) {
  std::ifstream in(path);
  if (!in) return "cannot read the file";
  std::stringstream content;
  content << in.rdbuf();
  *out = std::string(absl::StripTrailingAsciiWhitespace(content.str()));
  if (out->empty()) return "the file is empty";
  return "";
}

std::string ReadResumeTokenKeys(const std::string& path, StreamOptions* out) {
  std::string text;
  if (std::string problem = ReadSecretFile(path, &text); !problem.empty()) return problem;
  absl::StatusOr<std::shared_ptr<const ResumeTokenKeys>> keys = ResumeTokenKeys::Parse(text);
  if (!keys.ok()) return std::string(keys.status().message());
  out->resume_token_keys = *std::move(keys);
  return "";
}

#define STRING(field)                   \
  [](Config& c, const std::string& v) { \
    c.field = v;                        \
    return std::string();               \
  },                                    \
      [](const Config& c) { return c.field; }
#define INT(field, low, high)                                                      \
  [](Config& c, const std::string& v) {                                            \
    return ParseInt(v, decltype(c.field){low}, decltype(c.field){high}, &c.field); \
  },                                                                               \
      [](const Config& c) { return absl::StrCat(c.field); }
#define BOOL(field)                                                       \
  [](Config& c, const std::string& v) { return ParseBool(v, &c.field); }, \
      [](const Config& c) { return std::string(c.field ? "true" : "false"); }
#define DURATION(field)                                                      \
  [](Config& c, const std::string& v) { return ParseSeconds(v, &c.field); }, \
      [](const Config& c) { return Seconds(c.field); }

// Every flag, in --help order. A table rather than logic, one entry per flag: it grows with the
// flags, and splitting it would only scatter them.
const std::vector<Setting>& Settings() {
  static const auto* settings = new std::vector<Setting>{
      {"listen", "HOST:PORT",
       "Address to serve gRPC on; [::] is every IPv6 and IPv4 address, port 0 picks a free port.",
       STRING(listen)},
      {"max-connection-age", "DURATION",
       "Close client connections after this age (GOAWAY, with +-10% jitter) so that clients "
       "reconnect and spread over new replicas; calls in flight go on. 0 = never.",
       DURATION(connections.max_age)},
      {"max-connection-age-grace", "DURATION",
       "Time calls in flight get after that GOAWAY before they are cut; inf (the default) never "
       "cuts them: a stream of hours is not ended by connection aging.",
       DURATION(connections.max_age_grace)},
      {"keepalive-min-ping-interval", "DURATION",
       "Shortest interval between client keepalive pings accepted; a client pinging more often is "
       "cut off.",
       DURATION(connections.min_ping_interval)},
      {"keepalive-permit-without-calls", "", "Accept keepalive pings on connections without calls.",
       BOOL(connections.permit_pings_without_calls)},
      {"max-concurrent-streams", "N",
       "Most calls at once on one client connection (more wait for a slot).",
       INT(connections.max_concurrent_streams, 1, 1 << 20)},
      {"max-request-bytes", "N",
       "Largest request message a caller may send (a request is a few hundred bytes; larger ones "
       "end with RESOURCE_EXHAUSTED).",
       INT(connections.max_request_bytes, 256, 1 << 20)},
      {"memory-quota", "BYTES",
       "Memory gRPC may use for all client connections and calls together (socket reads, HTTP/2 "
       "buffers, calls); under pressure it refuses streams and closes connections.",
       INT(connections.memory_quota, size_t{1} << 20, size_t{1} << 40)},
      {"max-connection-idle", "DURATION",
       "Close client connections without calls for this long (GOAWAY); 0 = never.",
       DURATION(connections.max_idle)},
      {"admin-listen", "HOST:PORT",
       "Address of the admin HTTP port (GET /metrics for Prometheus, GET /healthz); port 0 picks a "
       "free "
       "port, empty turns it off.",
       STRING(admin_listen)},
      {"probe-listen", "HOST:PORT",
       "Address of a plaintext gRPC port that serves only grpc.health.v1 (the same statuses as "
       "--listen), for Kubernetes gRPC probes while --listen serves TLS, e.g. [::]:50052; empty: "
       "none.",
       STRING(probe_listen)},
      {"metrics-accounts", "N",
       "Label the per-account metrics (429s, rate budget waits) with the first N accounts seen; "
       "later accounts are counted as account=\"(other)\"; 0 = no per-account series.",
       INT(metrics_accounts, 0, 1000)},
      {"upstream", "URL",
       "Kore.ai base URL, e.g. https://platform.kore.ai (regional and on-prem hosts too).",
       STRING(upstream.http.base_url)},
      {"upstream-ca-file", "FILE",
       "Extra PEM CA bundle trusted for the upstream, besides the system roots.",
       STRING(upstream.http.ca_file)},
      {"upstream-allow-plain-http", "",
       "Allow an http:// upstream: only for a local simulator such as kore-sim.",
       BOOL(upstream.http.allow_plain_http)},
      {"upstream-skip-param", "NAME",
       "Query parameter that carries the page offset (undocumented upstream).",
       STRING(upstream.skip_param)},
      {"upstream-limit-param", "NAME",
       "Query parameter that carries the page size (undocumented upstream).",
       STRING(upstream.limit_param)},
      {"upstream-connect-timeout", "DURATION", "Limit for name lookup, connect and TLS handshake.",
       DURATION(upstream.http.connect_timeout)},
      {"upstream-timeout", "DURATION", "Limit for one upstream request, first byte to last.",
       DURATION(upstream.http.request_timeout)},
      {"upstream-max-response-bytes", "N", "Largest upstream response body accepted.",
       INT(upstream.http.max_response_bytes, 1024, 1 << 30)},
      {"upstream-max-connections", "N",
       "Most upstream connections open at once (idle keep-alive ones included); further requests "
       "wait "
       "for one, first come first served, within their deadline.",
       INT(upstream.http.max_connections, 1, 100000)},
      {"retry-attempts", "N", "Attempts per upstream page, the first included (1 = no retries).",
       INT(retry.max_attempts, 1, 100)},
      {"retry-initial-backoff", "DURATION", "First retry waits up to this (full jitter, doubling).",
       DURATION(retry.initial_backoff)},
      {"retry-max-backoff", "DURATION", "Longest wait between two attempts without Retry-After.",
       DURATION(retry.max_backoff)},
      {"retry-after-cap", "DURATION", "Longest upstream Retry-After honoured.",
       DURATION(retry.max_retry_after)},
      {"rate-limit", "N",
       "Upstream requests per minute per account (token bucket shared by all streams); 0 = no "
       "limit.",
       INT(rate.per_minute, 0, 1000000)},
      {"rate-limit-burst", "N",
       "Requests an account may send at once after a quiet spell; with 1, no minute ever holds "
       "more than "
       "--rate-limit requests.",
       INT(rate.burst, 1, 100000)},
      {"account-rate-limit", "ACCOUNT=N[,ACCOUNT=N...]",
       "Per-account --rate-limit (the request's account_id); repeatable; N = 0 means no limit.",
       [](Config& c, const std::string& v) { return ParseAccountLimits(v, &c.rate.per_account); },
       [](const Config&) { return std::string(); }},
      {"rejected-credentials-ttl", "DURATION",
       "How long a caller's own JWT that the upstream refused (401/403) for an account is refused "
       "by the gateway itself, without spending the account's budget; 0 = never remembered.",
       DURATION(credential_memory.ttl)},
      {"rejected-credentials-max", "N",
       "Most JWT verdicts remembered (as hashes) at once; the oldest go first.",
       INT(credential_memory.max_entries, 1, 10000000)},
      {"page-cache-bytes", "N",
       "Memory for recently fetched pages, shared by streams of the same list; 0 = no cache "
       "(identical requests in flight are shared anyway).",
       INT(cache.max_bytes, 0, size_t{1} << 40)},
      {"page-cache-ttl", "DURATION", "How long a cached page may be served.", DURATION(cache.ttl)},
      {"client-id", "ID",
       "Client (app) id of the Kore.ai app; the gateway then mints the JWTs itself.",
       STRING(client_id)},
      {"client-secret", "SECRET",
       "Client secret of that app. Prefer --client-secret-file or the environment variable: "
       "command lines are visible to other users of the machine.",
       [](Config& c, const std::string& v) {
         c.client_secret = v;
         return std::string();
       },
       nullptr},
      {"client-secret-file", "FILE",
       "File holding the client secret (e.g. a mounted Kubernetes Secret).",
       [](Config& c, const std::string& v) { return ReadSecretFile(v, &c.client_secret); },
       nullptr},
      {"resume-token-key-file", "FILE",
       "Keys that sign resume tokens (HMAC-SHA256), one per line, at least 32 bytes each, the "
       "signing key first (others are still accepted, for rotation); the same file for every "
       "replica. Without it a random key per process: tokens do not survive a restart.",
       [](Config& c, const std::string& v) { return ReadResumeTokenKeys(v, &c.stream); },
       [](const Config&) { return std::string(); }},
      {"credentials-file", "FILE",
       "JSON file of per-account upstream credentials and the callers allowed to use them (see "
       "README); re-read when it changes.",
       STRING(credentials_file)},
      {"credentials-reload-interval", "DURATION",
       "How often --credentials-file is checked for changes.",
       DURATION(credentials_reload_interval)},
      {"allow-unauthenticated-callers", "",
       "INSECURE, for local development and demos: callers that do not authenticate may use the "
       "gateway's upstream credentials for any account.",
       BOOL(authz.allow_unauthenticated)},
      {"max-streams-per-caller", "N",
       "Concurrent streams one caller may hold: an authenticated one, or one that sends its own "
       "JWT (told apart by its verified identity, else by the JWT).",
       INT(authz.max_streams_per_caller, 1, 1000000)},
      {"pass-through-requires-auth", "auto|true|false",
       "Callers that send their own JWT must also authenticate to the gateway (bearer token or "
       "mTLS) with a caller rule that lists the account; auto: whenever --credentials-file lists "
       "callers.",
       [](Config& c, const std::string& v) {
         static const std::pair<const char*, PassThroughAuth> kValues[] = {
             {"auto", PassThroughAuth::kAuto},
             {"true", PassThroughAuth::kRequired},
             {"false", PassThroughAuth::kOptional}};
         for (auto [name, value] : kValues) {
           if (absl::AsciiStrToLower(v) == name) {
             c.authz.pass_through_auth = value;
             return std::string();
           }
         }
         return std::string("expected auto, true or false");
       },
       [](const Config& c) {
         switch (c.authz.pass_through_auth) {
           case PassThroughAuth::kRequired:
             return std::string("true");
           case PassThroughAuth::kOptional:
             return std::string("false");
           default:
             return std::string("auto");
         }
       }},
      {"tls-cert", "FILE", "PEM certificate chain to serve gRPC over TLS (plaintext without it).",
       STRING(tls.cert_file)},
      {"tls-key", "FILE", "PEM private key of --tls-cert.", STRING(tls.key_file)},
      {"tls-client-ca", "FILE", "PEM CA bundle that verifies client certificates (mutual TLS).",
       STRING(tls.client_ca_file)},
      {"tls-require-client-cert", "",
       "Refuse callers without a client certificate from --tls-client-ca.",
       BOOL(tls.require_client_cert)},
      {"tls-reload-interval", "DURATION",
       "How often the --tls-* files are re-read (whole seconds, at least 1s).",
       DURATION(tls.reload_interval)},
      {"max-metadata-bytes", "N", "Largest request metadata (headers) a caller may send.",
       INT(max_metadata_bytes, 1024, 1 << 20)},
      {"jwt-subject", "TEXT", "The `sub` claim of minted JWTs.", STRING(jwt.subject)},
      {"jwt-ttl", "DURATION", "Lifetime of minted JWTs (`iat`/`exp` claims); 0 leaves both out.",
       DURATION(jwt.ttl)},
      {"jwt-jti", "", "Put a unique `jti` in every minted JWT (apps with \"Enforce JTI\").",
       BOOL(jwt.with_jti)},
      {"page-size", "N",
       "Contacts per upstream page when the caller does not say; 0 = the largest page the "
       "upstream serves, up to --max-page-size (asked for first, then learned per account).",
       INT(stream.default_page_size, 0, 100000)},
      {"max-page-size", "N",
       "Largest page size a caller may ask for, and the most any upstream request asks for.",
       INT(stream.max_page_size, 1, 100000)},
      {"batch-size", "N", "Contacts per response message when the caller does not say.",
       INT(stream.default_batch_size, 1, 100000)},
      {"max-batch-size", "N", "Largest batch a caller may ask for.",
       INT(stream.max_batch_size, 1, 100000)},
      {"prefetch-pages", "N",
       "Pages in flight or buffered ahead of each caller, at most (the prefetch window); once the "
       "list's "
       "size is known they are fetched in parallel.",
       INT(stream.prefetch_pages, 1, 64)},
      {"max-pages", "N", "Most upstream pages one stream may fetch (guard against endless paging).",
       INT(stream.max_pages, 1, int64_t{1} << 40)},
      {"seam-overlap", "N",
       "Contacts re-read at each page seam to notice a list that shifted under the stream; 0 = "
       "off.",
       INT(stream.seam_overlap, 0, 1000)},
      {"shared-state", "URL",
       "Redis through which replicas share each account's upstream budget (and, with "
       "--shared-state-pages, fetched pages): redis://[USER@]HOST[:PORT][/DB], or rediss:// for "
       "TLS. Empty = every process on its own.",
       STRING(shared_state.url)},
      {"shared-state-ca-file", "FILE",
       "Extra PEM CA bundle trusted for rediss://, besides the system roots.",
       STRING(shared_state.ca_file)},
      {"shared-state-password-file", "FILE",
       "File holding the Redis password (AUTH; with a USER@ in the URL, that ACL user's). Or set "
       "CONTACTS_GATEWAY_SHARED_STATE_PASSWORD; never a flag.",
       [](Config& c, const std::string& v) { return ReadSecretFile(v, &c.shared_state.password); },
       nullptr},
      {"shared-state-prefix", "TEXT",
       "Prefix of every Redis key and channel, so fleets may share one Redis.",
       STRING(shared_state.prefix)},
      {"shared-state-connect-timeout", "DURATION",
       "Limit for connecting to Redis (TCP, TLS, AUTH, SELECT); then retried with backoff.",
       DURATION(shared_state.connect_timeout)},
      {"shared-state-timeout", "DURATION",
       "Limit for one Redis command; a slower Redis counts as away (each replica keeps to its "
       "share) until it answers in time again.",
       DURATION(shared_state.command_timeout)},
      {"shared-state-heartbeat", "DURATION",
       "How often each replica tells Redis it is alive; one silent for 3 of these no longer "
       "counts in the fleet's size.",
       DURATION(shared_state.heartbeat)},
      {"shared-state-min-replicas", "N",
       "Replicas assumed at least when a replica's share is worked out without Redis (e.g. the "
       "Deployment's replica count, for a start while Redis is away).",
       INT(shared_state.min_replicas, 1, 100000)},
      {"shared-state-pages", "",
       "Share fetched pages between replicas through Redis too, for --page-cache-ttl (they hold "
       "phone numbers: see SECURITY.md).",
       BOOL(shared_state.pages)},
      {"shared-state-lease", "DURATION",
       "With --shared-state-pages: a replica fetching a page holds it this long at most before "
       "another takes over (a crashed fetcher).",
       DURATION(shared_state.lease)},
      {"shared-state-max-page-bytes", "N",
       "With --shared-state-pages: larger pages are not shared.",
       INT(shared_state.max_page_bytes, 1024, size_t{64} << 20)},
      {"io-threads", "N", "Threads doing upstream I/O.", INT(io_threads, 1, 64)},
      {"memory-trim-interval", "DURATION",
       "How often the gateway checks whether malloc holds much free memory (over 16 MiB) and gives "
       "it back to the system (after a burst of load); 0 = never.",
       DURATION(memory_trim_interval)},
      {"drain-timeout", "DURATION",
       "On SIGTERM/SIGINT, how long streams in flight may take to finish.",
       DURATION(drain_timeout)},
      {"log-level", "LEVEL", "debug, info, warning or error (JSON lines on stdout).",
       [](Config& c, const std::string& v) {
         static const std::pair<const char*, Severity> kLevels[] = {{"debug", Severity::kDebug},
                                                                    {"info", Severity::kInfo},
                                                                    {"warning", Severity::kWarning},
                                                                    {"error", Severity::kError}};
         for (auto [name, level] : kLevels) {
           if (v == name) {
             c.log_level = level;
             return std::string();
           }
         }
         return std::string("expected debug, info, warning or error");
       },
       [](const Config&) { return std::string("info"); }},
  };
  return *settings;
}

#undef STRING
#undef INT
#undef BOOL
#undef DURATION

std::string EnvName(const std::string& flag) {
  return absl::StrCat("CONTACTS_GATEWAY_",
                      absl::AsciiStrToUpper(absl::StrReplaceAll(flag, {{"-", "_"}})));
}

absl::Status Apply(const Setting& setting, Config& config, const std::string& value,
                   const std::string& from) {
  std::string problem = setting.set(config, value);
  if (problem.empty()) return absl::OkStatus();
  // The value is echoed only for settings whose defaults may be shown, i.e. never for secrets.
  std::string got = setting.show ? absl::StrCat(" (got \"", value, "\")") : "";
  return absl::InvalidArgumentError(absl::StrCat(from, ": ", problem, got));
}

// The rules between flags, one `if` each (a little over 80 lines): a flat list, as Settings() is;
// cut in two, it would be cut at an arbitrary rule.
absl::Status Check(const Config& c) {
  if (c.client_id.empty() != c.client_secret.empty()) {
    return absl::InvalidArgumentError(
        "--client-id and --client-secret (or --client-secret-file) go together: give both or "
        "neither");
  }
  if (c.tls.cert_file.empty() != c.tls.key_file.empty()) {
    return absl::InvalidArgumentError("--tls-cert and --tls-key go together: give both or neither");
  }
  if (c.tls.cert_file.empty() && !c.tls.client_ca_file.empty()) {
    return absl::InvalidArgumentError("--tls-client-ca needs --tls-cert and --tls-key");
  }
  if (c.tls.require_client_cert && c.tls.client_ca_file.empty()) {
    return absl::InvalidArgumentError("--tls-require-client-cert needs --tls-client-ca");
  }
  if (c.authz.pass_through_auth == PassThroughAuth::kRequired && c.credentials_file.empty()) {
    return absl::InvalidArgumentError(
        "--pass-through-requires-auth=true needs --credentials-file with the callers");
  }
  if (c.credentials_reload_interval <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("--credentials-reload-interval: must be above 0");
  }
  if (c.tls.reload_interval < absl::Seconds(1)) {
    return absl::InvalidArgumentError("--tls-reload-interval: at least 1s");
  }
  if (c.stream.default_page_size > c.stream.max_page_size) {
    return absl::InvalidArgumentError(absl::StrCat("--page-size ", c.stream.default_page_size,
                                                   " exceeds --max-page-size ",
                                                   c.stream.max_page_size));
  }
  if (c.stream.default_batch_size > c.stream.max_batch_size) {
    return absl::InvalidArgumentError(absl::StrCat("--batch-size ", c.stream.default_batch_size,
                                                   " exceeds --max-batch-size ",
                                                   c.stream.max_batch_size));
  }
  if (c.listen.rfind(':') == std::string::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("--listen: expected HOST:PORT (got \"", c.listen, "\")"));
  }
  if (!c.admin_listen.empty() && c.admin_listen.rfind(':') == std::string::npos) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--admin-listen: expected HOST:PORT, or empty for none (got \"", c.admin_listen, "\")"));
  }
  if (!c.shared_state.url.empty()) {
    absl::StatusOr<RedisUrl> url = ParseRedisUrl(c.shared_state.url);
    if (!url.ok())
      return absl::InvalidArgumentError(absl::StrCat("--shared-state: ", url.status().message()));
    if (!url->user.empty() && c.shared_state.password.empty()) {
      return absl::InvalidArgumentError(
          "--shared-state names a user but no password is set (--shared-state-password-file or "
          "CONTACTS_GATEWAY_SHARED_STATE_PASSWORD)");
    }
    for (char ch : c.shared_state.prefix) {
      if (!absl::ascii_isalnum(static_cast<unsigned char>(ch)) &&
          std::string_view(":._-").find(ch) == std::string_view::npos) {
        return absl::InvalidArgumentError(
            "--shared-state-prefix: letters, digits and : . _ - only");
      }
    }
    if (c.shared_state.command_timeout <= absl::ZeroDuration() ||
        c.shared_state.connect_timeout <= absl::ZeroDuration() ||
        c.shared_state.heartbeat < absl::Milliseconds(100) ||
        c.shared_state.lease < absl::Milliseconds(100)) {
      return absl::InvalidArgumentError(
          "--shared-state-timeout and --shared-state-connect-timeout must be above 0, "
          "--shared-state-heartbeat and --shared-state-lease at least 100ms");
    }
  } else if (c.shared_state.pages) {
    return absl::InvalidArgumentError("--shared-state-pages needs --shared-state");
  }
  if (!c.probe_listen.empty() && c.probe_listen.rfind(':') == std::string::npos) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--probe-listen: expected HOST:PORT, or empty for none (got \"", c.probe_listen, "\")"));
  }
  if (absl::StatusOr<BaseUrl> url =
          ParseBaseUrl(c.upstream.http.base_url, c.upstream.http.allow_plain_http);
      !url.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--upstream: ", url.status().message(),
        c.upstream.http.allow_plain_http ? "" : " (--upstream-allow-plain-http permits http://)"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<Config> ParseConfig(const std::vector<std::string>& args,
                                   const std::function<const char*(const char*)>& getenv,
                                   bool* help) {
  Config config;
  *help = false;
  for (const Setting& setting : Settings()) {
    std::string env = EnvName(setting.name);
    if (const char* value = getenv(env.c_str()); value != nullptr && *value != '\0') {
      if (absl::Status s = Apply(setting, config, value, env); !s.ok()) return s;
    }
  }
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (arg == "--help" || arg == "-h") {
      *help = true;
      return Config{};
    }
    if (arg.rfind("--", 0) != 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("unexpected argument \"", arg, "\" (see --help)"));
    }
    size_t eq = arg.find('=');
    std::string name = arg.substr(2, eq == std::string::npos ? std::string::npos : eq - 2);
    const Setting* setting = nullptr;
    for (const Setting& s : Settings()) {
      if (s.name == name) setting = &s;
    }
    if (setting == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat("unknown flag --", name, " (see --help)"));
    }
    std::string value;
    if (eq != std::string::npos) {
      value = arg.substr(eq + 1);
    } else if (!setting->value.empty()) {
      if (i + 1 >= args.size()) {
        return absl::InvalidArgumentError(
            absl::StrCat("--", name, " needs a value (", setting->value, ")"));
      }
      value = args[++i];
    }
    if (absl::Status s = Apply(*setting, config, value, "--" + name); !s.ok()) return s;
  }
  // The Redis password is never a flag: the file above, or this variable.
  if (const char* password = getenv("CONTACTS_GATEWAY_SHARED_STATE_PASSWORD");
      config.shared_state.password.empty() && password != nullptr) {
    config.shared_state.password = password;
  }
  if (absl::Status s = Check(config); !s.ok()) return s;
  return config;
}

std::string HelpText() {
  std::string out =
      "contacts-gateway: streams Kore.ai contact lists over gRPC (contacts.v1.ContactService).\n\n"
      "Usage: contacts-gateway [--flag=value ...]\n"
      "Every flag can also be set by the environment variable named under it; a flag wins.\n\n";
  const Config defaults;
  for (const Setting& s : Settings()) {
    absl::StrAppend(&out, "  --", s.name, s.value.empty() ? "" : absl::StrCat("=", s.value),
                    "\n      ", s.help, "\n      env ", EnvName(s.name));
    if (s.show) {
      std::string shown = s.show(defaults);
      absl::StrAppend(&out, ", default ", shown.empty() ? "(none)" : shown);
    }
    out += "\n";
  }
  return out;
}

}  // namespace contacts::gateway
