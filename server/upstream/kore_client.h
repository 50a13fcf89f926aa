#ifndef CONTACTS_GATEWAY_SERVER_UPSTREAM_KORE_CLIENT_H_
#define CONTACTS_GATEWAY_SERVER_UPSTREAM_KORE_CLIENT_H_

#include <utility>  // std::exchange, which Boost 1.74 awaitable.hpp uses without including

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ssl/context.hpp>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "server/core/page_source.h"

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
  // Connections open or opening at once, idle ones included; further fetches queue (FIFO) for one.
  size_t max_connections = 64;
};

// The request target for one page: path with percent-encoded ids, and the query.
std::string ContactsTarget(const UpstreamUrl& url, const PageRequest& request,
                           std::string_view skip_param, std::string_view limit_param);

// The rate-limit headers of an answer (RateLimit-Remaining and RateLimit-Reset, or the
// X-RateLimit-* twins), each absent or unreadable value left out. A reset above 10^9 is read as
// Unix seconds (as GitHub and others send it), else as seconds from `now`.
RateLimitHint ParseRateLimitHeaders(std::string_view remaining, std::string_view reset,
                                    absl::Time now);

// PageSource over HTTP/1.1 (Boost.Beast) and TLS (OpenSSL: peer and host-name verification, SNI,
// TLS 1.2 minimum). Keeps idle keep-alive connections for reuse, bounds every operation by a
// timeout and the request's deadline, caps the response size. A cancelled request closes its
// connection at once. At most max_connections connections are open or opening; a fetch that finds
// none free waits in a FIFO queue for a kept-alive connection or a free slot, and ends there with
// kCancelled when cancelled, kDeadlineExceeded when its deadline passes. The answer's rate-limit
// headers go into Page::rate_limit, or on errors into the payloads named in page.h (with
// Retry-After). Callbacks run on the threads of the io_context it was created with, which must
// outlive it (stop and join the io_context before destroying the client). Thread-safe.
class KoreClient final : public PageSource {
 public:
  // Errors: kInvalidArgument for a bad URL, unreadable CA file or max_connections of 0.
  static absl::StatusOr<std::unique_ptr<KoreClient>> Create(boost::asio::io_context& io,
                                                            KoreClientOptions options);
  // Queued fetches are dropped without their callbacks, as are fetches in flight with the stopped
  // io_context.
  ~KoreClient() override;

  void Fetch(PageRequest request, std::shared_ptr<Cancellation> cancel, Callback done) override;

 private:
  struct Connection;
  struct Pool;
  struct Slot;
  struct Waiter;
  KoreClient(boost::asio::io_context& io, KoreClientOptions options, UpstreamUrl url);

  // Starts the fetch on `connection`, or on a new connection that takes a slot already counted.
  void Start(PageRequest request, std::shared_ptr<Cancellation> cancel, Callback done,
             std::shared_ptr<Connection> connection, bool reused);
  // Hands a kept-alive connection to the first queued fetch, or keeps it idle, or closes it.
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
  // Slots, idle connections and queued fetches; shared with the connections and the queued
  // fetches' timers and cancellation callbacks, which may outlive the client.
  const std::shared_ptr<Pool> pool_;
};

}  // namespace contacts::gateway

#endif  // CONTACTS_GATEWAY_SERVER_UPSTREAM_KORE_CLIENT_H_
