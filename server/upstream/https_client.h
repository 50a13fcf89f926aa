#ifndef CONTACTS_GATEWAY_SERVER_UPSTREAM_HTTPS_CLIENT_H_
#define CONTACTS_GATEWAY_SERVER_UPSTREAM_HTTPS_CLIENT_H_

#include <utility>  // std::exchange, which Boost 1.74 awaitable.hpp uses without including

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/system/error_code.hpp>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "server/core/cancellation.h"

namespace contacts::gateway {

// A base URL, split. Only https:// unless plain HTTP was explicitly allowed.
struct BaseUrl {
  bool tls = true;
  std::string host;  // name or IP literal, without brackets
  std::string port;  // "443" by default
  uint16_t port_number = 443;
  std::string base_path;  // "" or "/prefix", no trailing slash
};

// Errors: kInvalidArgument naming what is wrong with the URL.
absl::StatusOr<BaseUrl> ParseBaseUrl(std::string_view url, bool allow_plain_http);

// Name lookup: calls `done` once with the addresses of host:port or an error. The default is
// asio's resolver (getaddrinfo on a thread of asio's); tests put in one that never answers.
using Resolver =
    std::function<void(const std::string& host, const std::string& port,
                       absl::AnyInvocable<void(boost::system::error_code,
                                               boost::asio::ip::tcp::resolver::results_type) &&>
                           done)>;

// Every member has an initializer, so that designated initializers may leave any out.
struct HttpsClientOptions {
  std::string base_url{};
  std::string ca_file{};          // extra CA bundle (PEM), trusted besides the system roots
  bool allow_plain_http = false;  // http:// base URLs, for a local simulator only
  absl::Duration connect_timeout = absl::Seconds(5);   // name lookup + connect + TLS handshake
  absl::Duration request_timeout = absl::Seconds(30);  // one exchange, first byte to last
  size_t max_response_bytes = 32 << 20;
  size_t max_header_bytes = 64 << 10;
  size_t max_idle_connections = 16;
  // Connections open or opening at once, idle ones included; further requests queue (FIFO).
  size_t max_connections = 64;
  // Capacity reserved behind a response body (parsers such as simdjson read a little past it).
  size_t body_padding = 0;
  Resolver resolver{};  // empty: asio's
};

struct HttpRequest {
  std::string target;  // path (after the base URL's prefix) and query, already encoded
  std::vector<std::pair<std::string, std::string>> headers;
  absl::Time deadline = absl::InfiniteFuture();  // bounds the queue wait and every step
  bool urgent = false;  // waits for a connection ahead of the requests that are not
};

struct HttpResponse {
  int status = 0;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;  // with options.body_padding bytes of capacity behind it

  // The first header named `name` (case-insensitively), or "".
  std::string_view Header(std::string_view name) const;
};

// A pooled HTTP/1.1 client (Boost.Beast) for one base URL, over TLS (OpenSSL: peer and host-name
// verification, SNI, TLS 1.2 minimum) unless plain HTTP is allowed. Keeps idle keep-alive
// connections for reuse (a kept-alive connection the server closed is retried once on a fresh
// one). Every step — the queue wait, name lookup, connect, TLS handshake, the exchange — ends at
// the request's deadline, its step's timeout, or at once on cancellation, whichever comes first.
// At most max_connections are open or opening; a request that finds none free waits in a queue for
// a kept-alive connection or a free slot: urgent requests first, each kind first come first served.
//
// Errors: kUnavailable (a transport failure or a step's timeout: worth another attempt),
// kDeadlineExceeded (the request's deadline passed), kCancelled, kFailedPrecondition (the server's
// TLS certificate was rejected), kInternal (headers or body above their limits). An HTTP status
// of any value is a response, not an error.
//
// Callbacks run on the threads of the io_context it was created with, which must outlive it (stop
// and join the io_context before destroying the client). Thread-safe.
class HttpsClient {
 public:
  using Callback = absl::AnyInvocable<void(absl::StatusOr<HttpResponse>) &&>;

  // Errors: kInvalidArgument for a bad URL, an unreadable CA file or max_connections of 0.
  static absl::StatusOr<std::unique_ptr<HttpsClient>> Create(boost::asio::io_context& io,
                                                             HttpsClientOptions options);
  // Queued requests are dropped without their callbacks, as are requests in flight with the
  // stopped io_context.
  ~HttpsClient();

  const BaseUrl& url() const { return url_; }

  // Sends one GET request; calls `done` exactly once, never inside Send.
  void Get(HttpRequest request, std::shared_ptr<Cancellation> cancel, Callback done);

 private:
  struct Connection;
  struct Pool;
  struct Slot;
  struct Waiter;
  HttpsClient(boost::asio::io_context& io, HttpsClientOptions options, BaseUrl url);

  // Starts the exchange on `connection`, or on a new connection that takes a slot already counted.
  void Start(HttpRequest request, std::shared_ptr<Cancellation> cancel, Callback done,
             std::shared_ptr<Connection> connection, bool reused);
  // Hands a kept-alive connection to the first queued request, or keeps it idle, or closes it.
  void ReturnConnection(std::shared_ptr<Connection> connection);
  boost::asio::awaitable<absl::StatusOr<HttpResponse>> Exchange(
      HttpRequest request, std::shared_ptr<Cancellation> cancel,
      std::shared_ptr<Connection> connection, bool reused);
  boost::asio::awaitable<absl::Status> Open(Connection& connection, absl::Time deadline);
  boost::asio::awaitable<absl::StatusOr<boost::asio::ip::tcp::resolver::results_type>> Resolve(
      Connection& connection, absl::Time deadline);
  absl::Status StartTls(Connection& connection);

  boost::asio::io_context& io_;
  const HttpsClientOptions options_;
  const BaseUrl url_;
  const std::string host_header_;
  std::unique_ptr<boost::asio::ssl::context> tls_;
  // Slots, idle connections and queued requests; shared with the connections and the queued
  // requests' timers and cancellation callbacks, which may outlive the client.
  const std::shared_ptr<Pool> pool_;
};

}  // namespace contacts::gateway

#endif  // CONTACTS_GATEWAY_SERVER_UPSTREAM_HTTPS_CLIENT_H_
