#include "server/upstream/kore_client.h"

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "server/core/encoding.h"
#include "server/core/error_reason.h"
#include "server/core/metrics.h"
#include "server/upstream/http_status.h"
#include "server/upstream/page_parser.h"

namespace contacts::gateway {
namespace {

// RFC 3986: unreserved characters as they are, every other byte as %XX (upper-case hex).
void PercentEncode(std::string_view in, std::string* out) {
  constexpr char kHex[] = "0123456789ABCDEF";
  for (unsigned char c : in) {
    if (absl::ascii_isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~') {
      out->push_back(static_cast<char>(c));
    } else {
      out->append({'%', kHex[c >> 4], kHex[c & 15]});
    }
  }
}

// The upstream's own words, minus anything that is a credential.
std::string Redact(std::string message, const UpstreamCredentials& credentials) {
  if (!credentials.jwt.empty()) absl::StrReplaceAll({{credentials.jwt, "[redacted]"}}, &message);
  return message;
}

// A failure that is not an HTTP answer (the exchange or the body), with what was being fetched
// appended to its message and its reason: the upstream is unreachable or slow, or its certificate
// was rejected, or what it sent cannot be read.
absl::Status About(const absl::Status& status, std::string_view what) {
  const char* why = reason::kUpstreamUnreadable;
  switch (status.code()) {
    case absl::StatusCode::kUnavailable:
      why = reason::kUpstreamUnavailable;
      break;
    case absl::StatusCode::kDeadlineExceeded:
      why = reason::kDeadlineExceeded;
      break;
    case absl::StatusCode::kCancelled:
      why = reason::kCancelled;
      break;
    case absl::StatusCode::kFailedPrecondition:
      why = reason::kUpstreamCertificate;
      break;
    default:
      break;
  }
  return WithReason(
      absl::Status(status.code(), absl::StrCat(status.message(), " (", AsAbsl(what), ")")), why);
}

}  // namespace

std::string ContactsTarget(const PageRequest& request, std::string_view skip_param,
                           std::string_view limit_param) {
  std::string target = "/campaign/api/v2/public/";
  PercentEncode(request.stream_id, &target);
  target += "/campaign/contactList/";
  PercentEncode(request.list_id, &target);
  target += "/getAllContacts?accountId=";
  PercentEncode(request.account_id, &target);
  absl::StrAppend(&target, "&", AsAbsl(skip_param), "=", request.skip, "&", AsAbsl(limit_param),
                  "=", request.limit);
  return target;
}

RateLimitFacts ParseRateLimitFacts(const HttpResponse& response, std::string_view body_message,
                                   absl::Time now) {
  RateLimitFacts facts;
  facts.throttled = response.status != 200 && StatusCodeFromHttp(response.status, body_message) ==
                                                  absl::StatusCode::kResourceExhausted;
  if (std::string_view retry_after = response.Header("Retry-After"); !retry_after.empty()) {
    facts.retry_after = ParseRetryAfter(retry_after, now);
  }
  auto header = [&response](std::string_view name) {
    std::string_view value = response.Header(name);
    return value.empty() ? response.Header(absl::StrCat("X-", AsAbsl(name))) : value;
  };
  int64_t value = 0;
  if (absl::SimpleAtoi(AsAbsl(header("RateLimit-Remaining")), &value) && value >= 0) {
    facts.remaining = value;
  }
  if (absl::SimpleAtoi(AsAbsl(header("RateLimit-Reset")), &value) && value >= 0) {
    constexpr int64_t kUnixSecondsFrom = 1'000'000'000;
    facts.reset = value > kUnixSecondsFrom
                      ? std::max(absl::ZeroDuration(), absl::FromUnixSeconds(value) - now)
                      : absl::Seconds(value);
  }
  return facts;
}

absl::StatusOr<std::unique_ptr<KoreClient>> KoreClient::Create(boost::asio::io_context& io,
                                                               KoreClientOptions options) {
  options.http.body_padding = kPagePaddingBytes;  // ParsePage parses the body in place
  absl::StatusOr<std::unique_ptr<HttpsClient>> http = HttpsClient::Create(io, options.http);
  if (!http.ok()) return http.status();
  return std::unique_ptr<KoreClient>(new KoreClient(std::move(options), *std::move(http)));
}

void KoreClient::Fetch(PageRequest request, std::shared_ptr<Cancellation> cancel, Callback done) {
  HttpRequest http;
  http.target = ContactsTarget(request, options_.skip_param, options_.limit_param);
  http.headers = {{"Accept", "application/json"},
                  {"auth", request.credentials.jwt},
                  {"iid", request.credentials.app_id},
                  {"accountId", request.account_id}};
  if (!request.trace.trace_id.empty()) {  // the stream's trace, a span of this request's own
    http.headers.emplace_back("traceparent", request.trace.Child().Traceparent());
    if (!request.trace.tracestate.empty()) {
      http.headers.emplace_back("tracestate", request.trace.tracestate);
    }
  }
  http.deadline = request.deadline;
  http.urgent = request.first_page;  // time to first message does not wait for running streams
  const absl::Time began = absl::Now();
  http_->Get(
      std::move(http), std::move(cancel),
      [request = std::move(request), began,
       done = std::move(done)](absl::StatusOr<HttpResponse> response) mutable {
        const std::string what =
            absl::StrCat("contact list ", request.list_id, ", skip=", request.skip);
        const absl::Time now = absl::Now();
        if (!response.ok()) {
          if (response.status().code() != absl::StatusCode::kCancelled) {
            Metrics().UpstreamExchange("transport_error", now - began);
          }
          std::move(done)(PageResult{About(response.status(), what), {}});
          return;
        }
        Metrics().UpstreamExchange(absl::StrCat(response->status), now - began);
        if (response->status == 429) Metrics().AccountThrottled(request.account_id);
        if (response->status == 200) {
          absl::StatusOr<Page> page = ParsePage(response->body);
          if (!page.ok()) page = About(page.status(), what);
          std::move(done)(PageResult{std::move(page), ParseRateLimitFacts(*response, "", now)});
          return;
        }
        std::string message = Redact(ParseErrorMessage(response->body), request.credentials);
        std::move(done)(PageResult{StatusFromHttp(response->status, message, what),
                                   ParseRateLimitFacts(*response, message, now)});
      });
}

}  // namespace contacts::gateway
