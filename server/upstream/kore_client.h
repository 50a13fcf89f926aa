#ifndef CONTACTS_GATEWAY_SERVER_UPSTREAM_KORE_CLIENT_H_
#define CONTACTS_GATEWAY_SERVER_UPSTREAM_KORE_CLIENT_H_

#include <utility>  // std::exchange, which Boost 1.74 awaitable.hpp uses without including

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ssl/context.hpp>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "server/stream/page_source.h"

namespace contacts::gateway {

// The upstream's base URL, split. Only https:// unless plain HTTP was explicitly allowed.
struct UpstreamUrl {
  bool tls = true;
  std::string host;       // name or IP literal, without brackets
  std::string port;       // "443" by default
  std::string base_path;  // "" or "/prefix", no trailing slash
};

// Errors: kInvalidArgument naming what is wrong with the URL.
absl::StatusOr<UpstreamUrl> ParseUpstreamUrl(std::string_view url, bool allow_plain_http);

struct KoreClientOptions {
  std::string base_url = "https://platform.kore.ai";
  std::string ca_file;            // extra CA bundle (PEM), trusted besides the system roots
  bool allow_plain_http = false;  // http:// base URLs, for a local kore-sim only
  std::string skip_param = "skip";
  std::string limit_param = "limit";
  absl::Duration connect_timeout = absl::Seconds(5);   // resolve + connect + TLS handshake
  absl::Duration request_timeout = absl::Seconds(30);  // one request, first byte to last
  size_t max_response_bytes = 32 << 20;
  size_t max_idle_connections = 16;
};

// The request target for one page: path with percent-encoded ids, and the query.
std::string ContactsTarget(const UpstreamUrl& url, const PageRequest& request,
                           std::string_view skip_param, std::string_view limit_param);

// The rate-limit headers of an answer (RateLimit-Remaining and RateLimit-Reset, or the
// X-RateLimit-* twins), each absent or unreadable value left out. A reset above 10^9 is read as
// Unix seconds (as GitHub and others send it), else as seconds from `now`.
RateLimitHint ParseRateLimitHeaders(std::string_view remaining, std::string_view reset, absl::Time now);

// PageSource over HTTP/1.1 (Boost.Beast) and TLS (OpenSSL: peer and host-name verification, SNI,
// TLS 1.2 minimum). Keeps idle keep-alive connections for reuse, bounds every operation by a
// timeout and the request's deadline, caps the response size. A cancelled request closes its
// connection at once. The answer's rate-limit headers go into Page::rate_limit, or on errors into
// the payloads named in page.h (with Retry-After). Callbacks run on the threads of the io_context it was created with, which
// must outlive it (stop and join the io_context before destroying the client). Thread-safe.
class KoreClient final : public PageSource {
 public:
  // Errors: kInvalidArgument for a bad URL or unreadable CA file.
  static absl::StatusOr<std::unique_ptr<KoreClient>> Create(boost::asio::io_context& io,
                                                            KoreClientOptions options);
  ~KoreClient() override;

  void Fetch(PageRequest request, std::shared_ptr<Cancellation> cancel, Callback done) override;

 private:
  struct Connection;
  KoreClient(boost::asio::io_context& io, KoreClientOptions options, UpstreamUrl url);

  std::shared_ptr<Connection> TakeConnection(bool* reused);
  void ReturnConnection(std::shared_ptr<Connection> connection);
  boost::asio::awaitable<absl::StatusOr<Page>> FetchPage(PageRequest request,
                                                         std::shared_ptr<Cancellation> cancel,
                                                         std::shared_ptr<Connection> connection,
                                                         bool reused);
  boost::asio::awaitable<absl::Status> Open(Connection& connection, absl::Time deadline);

  boost::asio::io_context& io_;
  const KoreClientOptions options_;
  const UpstreamUrl url_;
  std::unique_ptr<boost::asio::ssl::context> tls_;
  absl::Mutex mu_;
  std::vector<std::shared_ptr<Connection>> idle_ ABSL_GUARDED_BY(mu_);
};

}  // namespace contacts::gateway

#endif  // CONTACTS_GATEWAY_SERVER_UPSTREAM_KORE_CLIENT_H_
