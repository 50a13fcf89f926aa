#ifndef CONTACTS_GATEWAY_SERVER_UPSTREAM_KORE_CLIENT_H_
#define CONTACTS_GATEWAY_SERVER_UPSTREAM_KORE_CLIENT_H_

#include <boost/asio/io_context.hpp>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "server/core/page_source.h"
#include "server/upstream/https_client.h"

namespace contacts::gateway {

struct KoreClientOptions {
  HttpsClientOptions http{.base_url = "https://platform.kore.ai"};
  std::string skip_param = "skip";  // paging parameter names: undocumented upstream, configurable
  std::string limit_param = "limit";
};

// The request target for one page: path with percent-encoded ids, and the query.
std::string ContactsTarget(const PageRequest& request, std::string_view skip_param,
                           std::string_view limit_param);

// The rate-limit facts of an answer: its status (429, or the upstream's rate-limit message in
// `body_message`), Retry-After (seconds or an HTTP-date), RateLimit-Remaining and RateLimit-Reset
// (or the X-RateLimit-* twins), each absent or unreadable value left out. A reset above 10^9 is
// read as Unix seconds (as GitHub and others send it), else as seconds from `now`.
RateLimitFacts ParseRateLimitFacts(const HttpResponse& response, std::string_view body_message,
                                   absl::Time now);

// The Kore.ai adapter: PageSource over the getAllContacts endpoint (docs/upstream.md). Builds the
// request (target, `auth`/`iid`/`accountId` headers), sends it through an HttpsClient, maps the
// answer — 200 to a parsed Page, any other status to the codes of http_status.h with the
// upstream's own message (never a credential), rate-limit headers to PageResult::rate_limit — and
// counts each exchange in the upstream metrics. Thread-safe; callbacks run on `io`'s threads, which
// must outlive it.
class KoreClient final : public PageSource {
 public:
  // Errors: those of HttpsClient::Create.
  static absl::StatusOr<std::unique_ptr<KoreClient>> Create(boost::asio::io_context& io,
                                                            KoreClientOptions options);

  void Fetch(PageRequest request, std::shared_ptr<Cancellation> cancel, Callback done) override;

 private:
  KoreClient(KoreClientOptions options, std::unique_ptr<HttpsClient> http)
      : options_(std::move(options)), http_(std::move(http)) {}

  const KoreClientOptions options_;
  const std::unique_ptr<HttpsClient> http_;
};

}  // namespace contacts::gateway

#endif  // CONTACTS_GATEWAY_SERVER_UPSTREAM_KORE_CLIENT_H_
