#include "tools/kore-sim/simulator.h"

#include <array>
#include <ctime>
#include <memory>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "tools/kore-sim/contact_render.h"
#include "tools/kore-sim/text.h"

namespace contacts::kore_sim {
namespace {

constexpr std::string_view kJson = "application/json; charset=utf-8";
constexpr std::string_view kText = "text/plain; charset=utf-8";
constexpr std::string_view kRateLimitMessage =
    "You've exceeded the per-minute rate limit. Please wait for sometime before retrying.";
// What a kind=malformed fault answers: a complete body that is not JSON.
constexpr std::string_view kMalformedBody =
    R"({"status":"success","data":{"results":[{"_id": nonsense}],"skip":0}})";
constexpr std::string_view kSimPrefix = "/_sim/";
constexpr std::string_view kListsPrefix = "/_sim/lists/";

using Request = http::request<http::string_body>;

Reply MakeReply(const Request& request, unsigned status, std::string body,
                std::string_view content_type) {
  Reply reply;
  http::response<http::string_body>& response = reply.response;
  response.version(request.version());
  response.result(status);
  response.set(http::field::server, "kore-sim");
  response.set(http::field::content_type, content_type);
  response.keep_alive(request.keep_alive());
  response.body() = std::move(body);
  response.prepare_payload();
  return reply;
}

Reply KoreError(const Request& request, unsigned status, std::string_view msg, int code) {
  return MakeReply(request, status, KoreErrorBody(msg, code), kJson);
}

// Status messages are written for clients (they never hold tokens or secrets).
std::string_view MessageOf(const absl::Status& status) {
  return std::string_view(status.message().data(), status.message().size());
}

Reply KoreError(const Request& request, unsigned status, std::string_view msg) {
  return KoreError(request, status, msg, static_cast<int>(status));
}

// RFC 9110 IMF-fixdate, e.g. "Sun, 06 Nov 1994 08:49:37 GMT".
std::string HttpDate(std::time_t t) {
  static constexpr std::array<const char*, 7> kDays = {"Sun", "Mon", "Tue", "Wed",
                                                       "Thu", "Fri", "Sat"};
  static constexpr std::array<const char*, 12> kMonths = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                                          "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  std::tm tm{};
  gmtime_r(&t, &tm);
  std::array<char, 40> buf;
  std::snprintf(buf.data(), buf.size(), "%s, %02d %s %04d %02d:%02d:%02d GMT", kDays[tm.tm_wday],
                tm.tm_mday, kMonths[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min,
                tm.tm_sec);
  return buf.data();
}

// The list id when `path` is .../public/{streamId}/campaign/contactList/{listId}/getAllContacts.
std::optional<std::string> MatchContactsPath(std::string_view path) {
  static constexpr std::array<std::string_view, 10> kShape = {
      "", "campaign", "api", "v2", "public", "*", "campaign", "contactList", "*", "getAllContacts"};
  std::vector<std::string_view> segments;
  for (size_t start = 0;;) {
    size_t slash = path.find('/', start);
    segments.push_back(path.substr(start, slash - start));
    if (slash == std::string_view::npos) break;
    start = slash + 1;
  }
  if (segments.size() != kShape.size()) return std::nullopt;
  for (size_t i = 0; i < kShape.size(); ++i) {
    if (kShape[i] == "*" ? segments[i].empty() : segments[i] != kShape[i]) return std::nullopt;
  }
  return PercentDecode(segments[8], false);
}

// Reads a count-like parameter: absent → `absent`; otherwise a non-negative integer or nullopt.
std::optional<int64_t> NonNegativeParam(const QueryParams& params, std::string_view name,
                                        int64_t absent) {
  const std::string* value = FindParam(params, name);
  if (value == nullptr) return absent;
  std::optional<int64_t> number = ParseInt64(*value);
  if (!number || *number < 0) return std::nullopt;
  return number;
}

}  // namespace

Simulator::Simulator(const Config& config)
    : no_auth_(config.no_auth),
      dirty_(config.dirty),
      default_limit_(config.default_limit),
      initial_limits_{config.max_limit, config.reject_limit_above},
      rate_window_seconds_(config.rate_window_seconds),
      skip_param_(config.skip_param),
      limit_param_(config.limit_param),
      authenticator_(config.apps, config.require_jti),
      rate_limiter_(config.rate_limit, std::chrono::seconds(config.rate_window_seconds)),
      lists_(config.lists),
      page_cache_(config.page_cache_mib << 20),
      account_stats_(std::chrono::seconds(config.rate_window_seconds)),
      request_log_(config.request_log_size),
      limits_(initial_limits_) {
  for (const FaultRule& rule : config.faults) faults_.Add(rule);
}

Reply Simulator::Handle(const Request& request) {
  const std::string_view target = request.target();
  const size_t question = target.find('?');
  const std::string_view path = target.substr(0, question);
  const std::string_view query =
      question == std::string_view::npos ? std::string_view() : target.substr(question + 1);
  if (path.starts_with(kSimPrefix)) return HandleControl(request, path, query);

  Outcome outcome;
  Reply reply = HandleContacts(request, path, query, outcome);
  Record(outcome, reply.response.result_int());
  return reply;
}

Reply Simulator::HandleContacts(const Request& request, std::string_view path,
                                std::string_view query, Outcome& outcome) {
  std::optional<std::string> list_id = MatchContactsPath(path);
  if (!list_id) return KoreError(request, 404, "Not found");
  outcome.list_request = true;
  // What the request log keeps, whatever the answer. A malformed query is answered below, in its
  // place among the checks.
  std::optional<QueryParams> params = ParseQuery(query);
  RequestLog::Entry& entry = outcome.entry;
  entry.time = absl::Now();
  entry.method = std::string(request.method_string());
  entry.list = *list_id;
  for (auto [name, value] :
       {std::pair{"traceparent", &entry.traceparent}, std::pair{"tracestate", &entry.tracestate}}) {
    if (auto header = request.find(name); header != request.end()) {
      *value = std::string(header->value());
    }
  }
  if (params) {
    if (const std::string* account = FindParam(*params, "accountId")) entry.account = *account;
    if (const std::string* skip = FindParam(*params, skip_param_)) entry.skip = ParseInt64(*skip);
    if (const std::string* limit = FindParam(*params, limit_param_)) {
      entry.limit = ParseInt64(*limit);
    }
  }

  if (request.method() != http::verb::get) {
    Reply reply = KoreError(request, 405, "Method not allowed");
    reply.response.set(http::field::allow, "GET");
    return reply;
  }
  if (!no_auth_) {
    absl::Status auth = authenticator_.Check(request["auth"], request["iid"], absl::Now());
    if (!auth.ok()) {
      return KoreError(request, 401, MessageOf(auth), 4002);
    }
  }
  if (!params) return KoreError(request, 400, "Malformed query string");
  const std::string* account = FindParam(*params, "accountId");
  if (account == nullptr || account->empty()) {
    return KoreError(request, 400, "accountId query parameter is required");
  }
  if (request["accountId"] != *account) {
    return KoreError(request, 400, "accountId header and query parameter differ");
  }
  outcome.account_checked = true;
  RateLimiter::Decision admission = rate_limiter_.Admit(*account, RateLimiter::Clock::now());
  if (!admission.admitted) {
    Reply reply = KoreError(request, 429, kRateLimitMessage);
    reply.response.set(http::field::retry_after, std::to_string(admission.retry_after_seconds));
    return reply;
  }
  if (!lists_.Exists(*list_id)) return KoreError(request, 404, "Contact list not found");
  std::optional<int64_t> skip = NonNegativeParam(*params, skip_param_, 0);
  if (!skip) {
    return KoreError(request, 400, absl::StrCat(skip_param_, " must be a non-negative integer"));
  }
  std::optional<int64_t> limit = NonNegativeParam(*params, limit_param_, default_limit_);
  if (!limit) {
    return KoreError(request, 400, absl::StrCat(limit_param_, " must be a non-negative integer"));
  }
  if (*limit == 0) *limit = default_limit_;
  Limits limits;
  {
    absl::MutexLock lock(&limits_mu_);
    limits = limits_;
  }
  if (limits.reject_above > 0 && *limit > limits.reject_above) {
    return KoreError(request, 400,
                     absl::StrCat(limit_param_, " must be between 1 and ", limits.reject_above));
  }
  // A capped page answers as a full page of the served size would: `limit` and `totalPages` are
  // those of the served size, `hasMore` is true while contacts follow.
  if (*limit > limits.max_limit) *limit = limits.max_limit;

  // Fault rules apply only to requests that passed every check above.
  std::optional<FaultRule> fault = faults_.Match(*list_id, *skip);
  std::chrono::milliseconds delay{0};
  bool empty_page = false, truncate = false, reset = false;
  if (fault) {
    switch (fault->kind) {
      case FaultKind::kStatus: {
        Reply reply = KoreError(request, static_cast<unsigned>(fault->code),
                                "Simulated upstream error", fault->code);
        if (fault->retry_after_seconds) {
          reply.response.set(http::field::retry_after,
                             fault->retry_after_date
                                 ? HttpDate(std::time(nullptr) + *fault->retry_after_seconds)
                                 : std::to_string(*fault->retry_after_seconds));
        }
        return reply;
      }
      case FaultKind::kMalformed:
        return MakeReply(request, 200, std::string(kMalformedBody), kJson);
      case FaultKind::kMutate:
        // A mutation that does not fit the list (e.g. `at` beyond its end) is skipped.
        (void)lists_.Mutate(*list_id, fault->op, fault->at, fault->n);
        page_cache_.Invalidate();
        break;
      case FaultKind::kIgnorePaging:
        *skip = 0;
        break;
      case FaultKind::kLatency:
        delay = std::chrono::milliseconds(fault->latency_ms);
        break;
      case FaultKind::kEmptyPage:
        empty_page = true;
        break;
      case FaultKind::kTruncate:
        truncate = true;
        break;
      case FaultKind::kReset:
        reset = true;
        break;
    }
  }

  // Only pages no fault altered are cached (a latency fault delays the page but not its body).
  const bool cacheable = !fault || fault->kind == FaultKind::kLatency;
  const uint64_t generation = page_cache_.Generation();
  PageCache::Body rendered = cacheable ? page_cache_.Find(*list_id, *skip, *limit) : nullptr;
  if (rendered == nullptr) {
    std::optional<ListStore::Page> page = lists_.ReadPage(*list_id, *skip, *limit);
    if (!page) return KoreError(request, 404, "Contact list not found");
    PageAnswer answer{.list_hash = page->list_hash,
                      .contacts = page->contacts,
                      .skip = *skip,
                      .limit = *limit,
                      .total = page->total,
                      .has_more = *skip + static_cast<int64_t>(page->contacts.size()) < page->total,
                      .dirty = dirty_};
    if (empty_page) {
      answer.contacts = {};
      answer.has_more = true;
    }
    rendered = std::make_shared<const PageCache::Rendered>(
        PageCache::Rendered{RenderPage(answer), static_cast<int64_t>(answer.contacts.size())});
    if (cacheable) page_cache_.Store(*list_id, *skip, *limit, generation, rendered);
  }
  Reply reply;
  if (truncate) {
    reply = MakeReply(request, 200, rendered->body.substr(0, rendered->body.size() / 2), kJson);
  } else {
    reply = MakeReply(request, 200, "", kJson);
    reply.response.content_length(rendered->body.size());
    reply.page = rendered;  // sent from the cache without a copy
  }
  reply.delay = delay;
  reply.reset_midway = reset;
  if (!truncate && !reset) outcome.contacts = rendered->contacts;
  return reply;
}

Reply Simulator::HandleControl(const Request& request, std::string_view path,
                               std::string_view query) {
  const http::verb method = request.method();
  auto wrong_method = [&](std::string_view allowed) {
    Reply reply = KoreError(request, 405, "Method not allowed");
    reply.response.set(http::field::allow, allowed);
    return reply;
  };

  if (path == "/_sim/stats") {
    if (method != http::verb::get) return wrong_method("GET");
    return MakeReply(request, 200, StatsJson(), kJson);
  }
  if (path == "/_sim/reset") {
    if (method != http::verb::post) return wrong_method("POST");
    faults_.Clear();
    rate_limiter_.Reset();
    lists_.Reset();
    page_cache_.Invalidate();
    account_stats_.Reset();
    request_log_.Clear();
    {
      absl::MutexLock lock(&limits_mu_);
      limits_ = initial_limits_;
    }
    {
      absl::MutexLock lock(&stats_mu_);
      requests_ = list_requests_ = contacts_served_ = 0;
      by_status_.clear();
    }
    return MakeReply(request, 200, R"({"reset":true})", kJson);
  }
  if (path == "/_sim/config") {
    if (method == http::verb::get) return MakeReply(request, 200, ConfigJson(), kJson);
    if (method != http::verb::post) return wrong_method("GET, POST");
    return HandleConfig(request, query);
  }
  if (path == "/_sim/requests") {
    if (method != http::verb::get) return wrong_method("GET");
    std::optional<QueryParams> params = ParseQuery(query);
    if (!params) return KoreError(request, 400, "Malformed query string");
    for (const auto& [name, value] : *params) {
      if (name != "list" && name != "account") {
        return KoreError(request, 400,
                         absl::StrCat("unknown parameter '", name, "' (filters: list, account)"));
      }
    }
    return MakeReply(request, 200,
                     request_log_.ToJson(FindParam(*params, "list"), FindParam(*params, "account")),
                     kJson);
  }
  if (path == "/_sim/faults") {
    if (method == http::verb::get) return MakeReply(request, 200, faults_.ToJson(), kJson);
    if (method == http::verb::delete_) {
      faults_.Clear();
      return MakeReply(request, 200, "[]", kJson);
    }
    if (method != http::verb::post) return wrong_method("GET, POST, DELETE");
    absl::StatusOr<FaultRule> rule =
        ParseFaultSpec(query.empty() ? std::string_view(request.body()) : query);
    if (!rule.ok()) {
      return KoreError(request, 400, MessageOf(rule.status()));
    }
    std::string body = R"({"added":)";
    AppendJsonString(body, rule->spec);
    body += "}";
    faults_.Add(*std::move(rule));
    return MakeReply(request, 200, std::move(body), kJson);
  }
  if (path.starts_with(kListsPrefix)) {
    std::string_view rest = path.substr(kListsPrefix.size());
    const size_t slash = rest.rfind('/');
    std::optional<std::string> list_id = slash == std::string_view::npos
                                             ? std::nullopt
                                             : PercentDecode(rest.substr(0, slash), false);
    const std::string_view action =
        slash == std::string_view::npos ? std::string_view() : rest.substr(slash + 1);
    if (list_id && !list_id->empty() && action == "ids") {
      if (method != http::verb::get) return wrong_method("GET");
      std::optional<std::string> ids = lists_.RenderIds(*list_id);
      if (!ids) return KoreError(request, 404, "Contact list not found");
      return MakeReply(request, 200, *std::move(ids), kText);
    }
    if (list_id && !list_id->empty() && action == "mutate") {
      if (method != http::verb::post) return wrong_method("POST");
      std::optional<QueryParams> params = ParseQuery(query);
      if (!params) return KoreError(request, 400, "Malformed query string");
      const std::string* op = FindParam(*params, "op");
      if (op == nullptr || (*op != "insert" && *op != "delete")) {
        return KoreError(request, 400, "op must be insert or delete");
      }
      std::optional<int64_t> at = NonNegativeParam(*params, "at", 0);
      std::optional<int64_t> n = NonNegativeParam(*params, "n", 1);
      if (!at || !n) return KoreError(request, 400, "at and n must be non-negative integers");
      absl::StatusOr<int64_t> size = lists_.Mutate(
          *list_id, *op == "insert" ? MutationOp::kInsert : MutationOp::kDelete, *at, *n);
      page_cache_.Invalidate();
      if (!size.ok()) {
        const unsigned status = absl::IsNotFound(size.status()) ? 404 : 400;
        return KoreError(request, status, MessageOf(size.status()));
      }
      return MakeReply(request, 200, absl::StrCat(R"({"size":)", *size, "}"), kJson);
    }
  }
  return KoreError(request, 404, "Not found");
}

Reply Simulator::HandleConfig(const Request& request, std::string_view query) {
  std::optional<QueryParams> params = ParseQuery(query);
  if (!params || params->empty()) {
    return KoreError(request, 400, "expected max_limit=N and/or reject_limit_above=N");
  }
  std::optional<int64_t> max_limit, reject_above;
  for (const auto& [name, value] : *params) {
    std::optional<int64_t> number = ParseInt64(value);
    if (name == "max_limit" && number && *number >= 1) {
      max_limit = number;
    } else if (name == "reject_limit_above" && number && *number >= 0) {
      reject_above = number;
    } else if (name == "max_limit" || name == "reject_limit_above") {
      return KoreError(request, 400,
                       absl::StrCat(name, name == "max_limit" ? " must be an integer >= 1"
                                                              : " must be an integer >= 0"));
    } else {
      return KoreError(request, 400,
                       absl::StrCat("unknown parameter '", name,
                                    "' (expected max_limit and/or reject_limit_above)"));
    }
  }
  {
    absl::MutexLock lock(&limits_mu_);
    if (max_limit) limits_.max_limit = *max_limit;
    if (reject_above) limits_.reject_above = *reject_above;
  }
  return MakeReply(request, 200, ConfigJson(), kJson);
}

std::string Simulator::ConfigJson() const {
  absl::MutexLock lock(&limits_mu_);
  return absl::StrCat(R"({"default_limit":)", default_limit_, R"(,"max_limit":)", limits_.max_limit,
                      R"(,"reject_limit_above":)", limits_.reject_above, "}");
}

void Simulator::Record(Outcome& outcome, unsigned status) {
  if (outcome.account_checked) account_stats_.Record(outcome.entry.account, status);
  if (outcome.list_request) {
    outcome.entry.status = status;
    request_log_.Add(std::move(outcome.entry));
  }
  absl::MutexLock lock(&stats_mu_);
  ++requests_;
  if (outcome.list_request) ++list_requests_;
  contacts_served_ += outcome.contacts;
  ++by_status_[status];
}

std::string Simulator::StatsJson() const {
  const std::string accounts = account_stats_.ToJson();
  absl::MutexLock lock(&stats_mu_);
  std::string out =
      absl::StrCat(R"({"requests":)", requests_, R"(,"list_requests":)", list_requests_,
                   R"(,"contacts_served":)", contacts_served_, R"(,"by_status":{)");
  bool first = true;
  for (const auto& [status, count] : by_status_) {
    absl::StrAppend(&out, first ? "" : ",", "\"", status, "\":", count);
    first = false;
  }
  // Last, so that the first "requests" in the body stays the total (tests search for it).
  absl::StrAppend(&out, R"(},"rate_window_seconds":)", rate_window_seconds_, R"(,"accounts":)",
                  accounts, "}");
  return out;
}

}  // namespace contacts::kore_sim
