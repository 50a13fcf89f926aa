#include "server/upstream/https_client.h"

#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <exception>
#include <list>
#include <optional>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "server/core/encoding.h"
#include "server/core/metrics.h"

namespace contacts::gateway {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;

constexpr char kUserAgent[] = "contacts-gateway/0.1";
// A queued request with a deadline further away than this waits at most this long.
constexpr absl::Duration kLongestQueueWait = absl::Hours(24 * 365);
// Beast reads at most the buffer's free capacity per call: a few hundred bytes for a buffer sized
// by the header alone, i.e. a hundred system calls for a 1000-contact page.
constexpr size_t kReadChunk = 64 << 10;

std::optional<asio::ip::address> IpLiteral(const std::string& host) {
  boost::system::error_code ec;
  asio::ip::address address = asio::ip::make_address(host, ec);
  if (ec) return std::nullopt;
  return address;
}

// How long until `until`; zero when it has passed.
std::chrono::steady_clock::duration Left(absl::Time until) {
  return absl::ToChronoNanoseconds(std::max(absl::ZeroDuration(), until - absl::Now()));
}

absl::Status Cancelled() { return absl::CancelledError("the call was cancelled"); }

// The transport error of `step` as a status: kDeadlineExceeded when the request's deadline ran
// out, kUnavailable otherwise (worth another attempt).
absl::Status TransportError(std::string_view step, const boost::system::error_code& ec,
                            absl::Time deadline) {
  if (ec == beast::error::timeout || ec == asio::error::timed_out) {
    if (absl::Now() >= deadline) {
      return absl::DeadlineExceededError(absl::StrCat(
          "the call's deadline passed while waiting for the upstream (", AsAbsl(step), ")"));
    }
    return absl::UnavailableError(absl::StrCat("upstream timed out (", AsAbsl(step), ")"));
  }
  return absl::UnavailableError(absl::StrCat("upstream ", AsAbsl(step), " failed: ", ec.message()));
}

// Reads one response; a declared Content-Length above the parser's body limit fails with
// http::error::body_limit as soon as the header is in (Beast would otherwise wait for the body).
template <typename Stream>
asio::awaitable<void> ReadResponse(Stream& stream, beast::flat_buffer& buffer,
                                   http::response_parser<http::string_body>& parser,
                                   size_t max_body, size_t padding, boost::system::error_code& ec) {
  co_await http::async_read_header(stream, buffer, parser,
                                   asio::redirect_error(asio::use_awaitable, ec));
  if (ec || parser.is_done()) co_return;
  boost::optional<uint64_t> length = parser.content_length();
  if (length.value_or(0) > max_body) {
    ec = http::error::body_limit;
    co_return;
  }
  if (length) parser.get().body().reserve(*length + padding);
  buffer.reserve(buffer.size() + std::min<size_t>(length.value_or(kReadChunk), kReadChunk));
  co_await http::async_read(stream, buffer, parser, asio::redirect_error(asio::use_awaitable, ec));
}

void AsioResolve(
    asio::io_context& io, const std::string& host, const std::string& port,
    absl::AnyInvocable<void(boost::system::error_code, tcp::resolver::results_type) &&> done) {
  auto resolver = std::make_shared<tcp::resolver>(io);
  resolver->async_resolve(
      host, port,
      [resolver, done = std::move(done)](boost::system::error_code ec,
                                         tcp::resolver::results_type results) mutable {
        std::move(done)(ec, std::move(results));
      });
}

}  // namespace

std::string_view HttpResponse::Header(std::string_view name) const {
  for (const auto& [key, value] : headers) {
    if (absl::EqualsIgnoreCase(key, AsAbsl(name))) return value;
  }
  return {};
}

absl::StatusOr<BaseUrl> ParseBaseUrl(std::string_view url, bool allow_plain_http) {
  auto error = [url](std::string_view what) {
    return absl::InvalidArgumentError(absl::StrCat("upstream URL ", AsAbsl(url), AsAbsl(what)));
  };
  BaseUrl out;
  std::string_view rest;
  if (url.substr(0, 8) == "https://") {
    rest = url.substr(8);
  } else if (url.substr(0, 7) == "http://") {
    if (!allow_plain_http) {
      return error(
          " is plain http://; use https://, or allow plain HTTP explicitly for a local simulator");
    }
    out.tls = false;
    rest = url.substr(7);
  } else {
    return error(" must start with https://");
  }
  size_t slash = rest.find('/');
  std::string_view authority = rest.substr(0, slash);
  if (slash != std::string_view::npos) {
    std::string_view path = rest.substr(slash);
    while (!path.empty() && path.back() == '/') path.remove_suffix(1);
    out.base_path = std::string(path);
  }
  if (authority.find_first_of("@?#") != std::string_view::npos ||
      out.base_path.find_first_of("?#") != std::string::npos) {
    return error(" may hold only scheme, host, port and a path prefix");
  }
  std::string_view port;
  if (!authority.empty() && authority.front() == '[') {
    size_t close = authority.find(']');
    if (close == std::string_view::npos) return error(": unclosed '['");
    out.host = std::string(authority.substr(1, close - 1));
    std::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') return error(": bad port");
      port = after.substr(1);
    }
  } else {
    size_t colon = authority.rfind(':');
    out.host = std::string(authority.substr(0, colon));
    if (colon != std::string_view::npos) port = authority.substr(colon + 1);
  }
  if (out.host.empty()) return error(" has no host");
  int port_number = 0;
  if (port.empty()) {
    out.port_number = out.tls ? 443 : 80;
  } else if (absl::SimpleAtoi(AsAbsl(port), &port_number) && port_number > 0 &&
             port_number < 65536) {
    out.port_number = static_cast<uint16_t>(port_number);
  } else {
    return error(": bad port");
  }
  out.port = absl::StrCat(out.port_number);
  return out;
}

// The connection pool's books. The client, its connections (through their slots) and its queued
// requests' timers and cancellation callbacks share it, so it outlives the client; `client` is
// null once the client is gone, and then nothing new starts.
struct HttpsClient::Pool {
  explicit Pool(asio::io_context& io) : io(io) {}

  asio::io_context& io;
  absl::Mutex mu;
  HttpsClient* client ABSL_GUARDED_BY(mu) = nullptr;
  size_t open ABSL_GUARDED_BY(mu) = 0;  // slots taken: connections open or opening, idle too
  std::vector<std::shared_ptr<Connection>> idle ABSL_GUARDED_BY(mu);
  std::list<std::shared_ptr<Waiter>> waiters ABSL_GUARDED_BY(mu);  // urgent ones first

  // Pops the first queued request; its slot or connection is the caller's to give it.
  std::shared_ptr<Waiter> PopLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu);
  // Gives a slot back: to the first queued request (on a new connection), else for good.
  void Release();
  // Ends a request that is still queued with `status` (on the calling thread, an io_context one).
  void Abandon(const std::weak_ptr<Waiter>& weak, absl::Status status);
};

// One slot of the pool, counted in Pool::open before it is made; given back when destroyed, which
// is when the connection holding it is, whatever ended its use. Move-only.
struct HttpsClient::Slot {
  explicit Slot(std::shared_ptr<Pool> pool) : pool(std::move(pool)) {}
  Slot(Slot&&) noexcept = default;
  Slot& operator=(Slot&&) = delete;
  ~Slot() {
    if (pool) pool->Release();
  }
  std::shared_ptr<Pool> pool;
};

// A request waiting for a connection. Pool::waiters owns it while it is queued; its deadline timer
// and cancellation callback hold it weakly. Whoever takes it off the queue (under Pool::mu) owns
// `done` and forgets `handle`.
struct HttpsClient::Waiter {
  Waiter(asio::io_context& io, HttpRequest request, std::shared_ptr<Cancellation> cancel,
         Callback done)
      : request(std::move(request)),
        cancel(std::move(cancel)),
        done(std::move(done)),
        deadline(io) {}

  HttpRequest request;
  std::shared_ptr<Cancellation> cancel;
  Callback done;
  asio::steady_timer deadline;      // armed and cancelled under Pool::mu only
  Cancellation::Handle handle = 0;  // set under Pool::mu before anyone can take it off the queue
  bool queued = false;              // Pool::mu
  std::list<std::shared_ptr<Waiter>>::iterator position;  // in Pool::waiters while queued
};

std::shared_ptr<HttpsClient::Waiter> HttpsClient::Pool::PopLocked() {
  std::shared_ptr<Waiter> waiter = std::move(waiters.front());
  waiters.pop_front();
  waiter->queued = false;
  waiter->deadline.cancel();
  return waiter;
}

void HttpsClient::Pool::Release() {
  std::shared_ptr<Waiter> next;
  HttpsClient* owner = nullptr;
  {
    absl::MutexLock lock(&mu);
    if (client == nullptr || waiters.empty()) {
      --open;
      Metrics().upstream_connections.Add(-1);
      return;
    }
    next = PopLocked();
    owner = client;  // alive: it is destroyed only after its io_context's threads are joined
  }
  next->cancel->Forget(next->handle);
  owner->Start(std::move(next->request), std::move(next->cancel), std::move(next->done), nullptr,
               false);
}

void HttpsClient::Pool::Abandon(const std::weak_ptr<Waiter>& weak, absl::Status status) {
  std::shared_ptr<Waiter> waiter = weak.lock();
  if (!waiter) return;
  {
    absl::MutexLock lock(&mu);
    if (!waiter->queued) return;
    waiters.erase(waiter->position);
    waiter->queued = false;
    waiter->deadline.cancel();
  }
  waiter->cancel->Forget(waiter->handle);
  std::move(waiter->done)(std::move(status));
}

// One connection: plain TCP or TLS over TCP, with the read buffer that must survive between
// requests on a keep-alive connection. Used by one request at a time, on its strand. Holds one
// slot of the pool, given back when the connection is destroyed.
struct HttpsClient::Connection : std::enable_shared_from_this<Connection> {
  Connection(asio::io_context& io, ssl::context* tls, Slot slot)
      : slot(std::move(slot)), strand(asio::make_strand(io)), wake(strand), tls(tls) {
    Reset();
  }
  // A fresh stream (a TLS session cannot be reused once its connection failed).
  void Reset() {
    if (tls) {
      secure = std::make_unique<beast::ssl_stream<beast::tcp_stream>>(strand, *tls);
    } else {
      plain = std::make_unique<beast::tcp_stream>(strand);
    }
    buffer.clear();
    open = false;
  }
  beast::tcp_stream& tcp() { return secure ? beast::get_lowest_layer(*secure) : *plain; }
  void Close() {
    tcp().close();
    open = false;
  }

  Slot slot;  // first: given back last, after the socket is closed
  asio::strand<asio::io_context::executor_type> strand;
  asio::steady_timer wake;  // the name lookup's wait: ends on its answer, timeout or cancellation
  std::shared_ptr<const void> lookup;  // the lookup being waited for, if any
  ssl::context* tls;
  std::unique_ptr<beast::tcp_stream> plain;
  std::unique_ptr<beast::ssl_stream<beast::tcp_stream>> secure;
  beast::flat_buffer buffer;
  bool open = false;
};

absl::StatusOr<std::unique_ptr<HttpsClient>> HttpsClient::Create(asio::io_context& io,
                                                                 HttpsClientOptions options) {
  absl::StatusOr<BaseUrl> url = ParseBaseUrl(options.base_url, options.allow_plain_http);
  if (!url.ok()) return url.status();
  if (options.max_connections == 0) {
    return absl::InvalidArgumentError("max_connections must be at least 1");
  }
  if (!options.resolver) {
    options.resolver = [&io](const std::string& host, const std::string& port, auto done) {
      AsioResolve(io, host, port, std::move(done));
    };
  }
  std::unique_ptr<HttpsClient> client(new HttpsClient(io, std::move(options), *std::move(url)));
  if (client->url_.tls) {
    auto tls = std::make_unique<ssl::context>(ssl::context::tls_client);
    if (SSL_CTX_set_min_proto_version(tls->native_handle(), TLS1_2_VERSION) != 1) {
      return absl::InternalError("cannot require TLS 1.2 for the upstream");
    }
    tls->set_verify_mode(ssl::verify_peer);
    boost::system::error_code ec;
    tls->set_default_verify_paths(ec);
    if (!client->options_.ca_file.empty()) {
      tls->load_verify_file(client->options_.ca_file, ec);
      if (ec) {
        return absl::InvalidArgumentError(absl::StrCat(
            "cannot read the upstream CA file ", client->options_.ca_file, ": ", ec.message()));
      }
    }
    client->tls_ = std::move(tls);
  }
  return client;
}

namespace {
std::string HostHeader(const BaseUrl& url) {
  std::string host =
      url.host.find(':') != std::string::npos ? absl::StrCat("[", url.host, "]") : url.host;
  const bool default_port = url.port == (url.tls ? "443" : "80");
  return default_port ? host : absl::StrCat(host, ":", url.port);
}
}  // namespace

HttpsClient::HttpsClient(asio::io_context& io, HttpsClientOptions options, BaseUrl url)
    : io_(io),
      options_(std::move(options)),
      url_(std::move(url)),
      host_header_(HostHeader(url_)),
      pool_(std::make_shared<Pool>(io)) {
  absl::MutexLock lock(&pool_->mu);
  pool_->client = this;
}

HttpsClient::~HttpsClient() {
  std::vector<std::shared_ptr<Connection>> idle;
  std::list<std::shared_ptr<Waiter>> waiters;
  {
    absl::MutexLock lock(&pool_->mu);
    pool_->client = nullptr;
    idle.swap(pool_->idle);
    waiters.swap(pool_->waiters);
    for (const std::shared_ptr<Waiter>& waiter : waiters) {
      waiter->queued = false;
      waiter->deadline.cancel();
    }
  }
  for (const std::shared_ptr<Waiter>& waiter : waiters) waiter->cancel->Forget(waiter->handle);
  // The idle connections close and give their slots back here, outside the lock.
}

void HttpsClient::Get(HttpRequest request, std::shared_ptr<Cancellation> cancel, Callback done) {
  std::shared_ptr<Connection> connection;
  {
    absl::MutexLock lock(&pool_->mu);
    if (pool_->waiters.empty() && !pool_->idle.empty()) {
      connection = std::move(pool_->idle.back());
      pool_->idle.pop_back();
    } else if (pool_->waiters.empty() && pool_->open < options_.max_connections) {
      ++pool_->open;
      Metrics().upstream_connections.Add(1);
    } else {
      auto waiter =
          std::make_shared<Waiter>(io_, std::move(request), std::move(cancel), std::move(done));
      std::weak_ptr<Waiter> weak = waiter;
      waiter->queued = true;
      // Urgent requests (a stream's first page) go after the urgent ones already waiting.
      auto at = pool_->waiters.end();
      if (waiter->request.urgent) {
        at = std::find_if(pool_->waiters.begin(), pool_->waiters.end(),
                          [](const std::shared_ptr<Waiter>& w) { return !w->request.urgent; });
      }
      waiter->position = pool_->waiters.insert(at, waiter);
      if (waiter->request.deadline != absl::InfiniteFuture()) {
        waiter->deadline.expires_after(
            Left(std::min(waiter->request.deadline, absl::Now() + kLongestQueueWait)));
        waiter->deadline.async_wait(
            [pool = pool_, weak, max = options_.max_connections](boost::system::error_code ec) {
              if (ec) return;  // cancelled: the request left the queue another way
              pool->Abandon(weak, absl::DeadlineExceededError(absl::StrCat(
                                      "the call's deadline passed while waiting for an upstream "
                                      "connection (all ",
                                      max, " in use; see --upstream-max-connections)")));
            });
      }
      // Runs at once when already cancelled: it only posts, so it may run under the lock.
      waiter->handle = waiter->cancel->OnCancel([pool = pool_, weak] {
        asio::post(pool->io, [pool, weak] { pool->Abandon(weak, Cancelled()); });
      });
      return;
    }
  }
  const bool reused = connection != nullptr;
  Start(std::move(request), std::move(cancel), std::move(done), std::move(connection), reused);
}

void HttpsClient::Start(HttpRequest request, std::shared_ptr<Cancellation> cancel, Callback done,
                        std::shared_ptr<Connection> connection, bool reused) {
  if (!connection) {
    try {
      connection = std::make_shared<Connection>(io_, tls_.get(), Slot(pool_));
    } catch (const std::exception& e) {  // the slot went back with the Slot
      asio::post(io_, [done = std::move(done), what = std::string(e.what())]() mutable {
        std::move(done)(
            absl::InternalError(absl::StrCat("cannot create an upstream connection: ", what)));
      });
      return;
    }
  }
  asio::co_spawn(connection->strand,
                 Exchange(std::move(request), std::move(cancel), connection, reused),
                 [done = std::move(done)](std::exception_ptr error,
                                          absl::StatusOr<HttpResponse> response) mutable {
                   if (error) response = absl::InternalError("unexpected exception upstream");
                   std::move(done)(std::move(response));
                 });
}

void HttpsClient::ReturnConnection(std::shared_ptr<Connection> connection) {
  std::shared_ptr<Waiter> next;
  {
    absl::MutexLock lock(&pool_->mu);
    if (!pool_->waiters.empty()) {
      next = pool_->PopLocked();
    } else if (pool_->idle.size() < options_.max_idle_connections) {
      pool_->idle.push_back(std::move(connection));
      return;
    }
  }
  // Without a taker the connection closes, and gives its slot back, with its last reference.
  if (!next) return;
  next->cancel->Forget(next->handle);
  Start(std::move(next->request), std::move(next->cancel), std::move(next->done),
        std::move(connection), true);
}

asio::awaitable<absl::StatusOr<tcp::resolver::results_type>> HttpsClient::Resolve(
    Connection& connection, absl::Time deadline) {
  if (std::optional<asio::ip::address> ip = IpLiteral(url_.host)) {
    // No lookup (asio's resolver would hand it to a thread of its own).
    co_return tcp::resolver::results_type::create(tcp::endpoint(*ip, url_.port_number), url_.host,
                                                  url_.port);
  }
  // The lookup may never answer (getaddrinfo cannot be interrupted): wait for it on a timer that
  // its answer, the connect timeout, the deadline or a cancellation ends, and leave it behind if
  // it is late. The answer goes to `lookup`, which outlives this wait if need be.
  struct Lookup {
    bool done = false;
    boost::system::error_code ec;
    tcp::resolver::results_type results;
  };
  auto lookup = std::make_shared<Lookup>();
  connection.lookup = lookup;
  const absl::Time until = std::min(deadline, absl::Now() + options_.connect_timeout);
  connection.wake.expires_after(Left(until));
  options_.resolver(url_.host, url_.port,
                    [lookup, weak = connection.weak_from_this(), strand = connection.strand](
                        boost::system::error_code ec, tcp::resolver::results_type results) mutable {
                      asio::post(strand,
                                 [lookup, weak, ec, results = std::move(results)]() mutable {
                                   lookup->done = true;
                                   lookup->ec = ec;
                                   lookup->results = std::move(results);
                                   std::shared_ptr<Connection> c = weak.lock();
                                   if (c && c->lookup == lookup) c->wake.cancel();
                                 });
                    });
  boost::system::error_code ec;
  co_await connection.wake.async_wait(asio::redirect_error(asio::use_awaitable, ec));
  connection.lookup.reset();
  const std::string step = absl::StrCat("name lookup of ", url_.host);
  if (!lookup->done) {
    if (ec == asio::error::operation_aborted) co_return Cancelled();
    co_return TransportError(step, asio::error::timed_out, deadline);
  }
  if (lookup->ec) co_return TransportError(step, lookup->ec, deadline);
  co_return std::move(lookup->results);
}

absl::Status HttpsClient::StartTls(Connection& connection) {
  SSL* ssl = connection.secure->native_handle();
  if (IpLiteral(url_.host)) {
    if (X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), url_.host.c_str()) != 1) {
      return absl::InternalError(
          absl::StrCat("cannot verify the upstream certificate against ", url_.host));
    }
  } else if (SSL_set_tlsext_host_name(ssl, url_.host.c_str()) != 1 ||
             SSL_set1_host(ssl, url_.host.c_str()) != 1) {
    return absl::InternalError(
        absl::StrCat("cannot set up TLS host-name checks for the upstream ", url_.host));
  }
  return absl::OkStatus();
}

asio::awaitable<absl::Status> HttpsClient::Open(Connection& connection, absl::Time deadline) {
  connection.Reset();
  const absl::Time until = std::min(deadline, absl::Now() + options_.connect_timeout);
  absl::StatusOr<tcp::resolver::results_type> endpoints = co_await Resolve(connection, deadline);
  if (!endpoints.ok()) co_return endpoints.status();
  boost::system::error_code ec;
  connection.tcp().expires_after(Left(until));
  co_await connection.tcp().async_connect(*endpoints,
                                          asio::redirect_error(asio::use_awaitable, ec));
  if (ec)
    co_return TransportError(absl::StrCat("connect to ", url_.host, ":", url_.port), ec, deadline);
  if (connection.secure) {
    if (absl::Status tls = StartTls(connection); !tls.ok()) co_return tls;
    co_await connection.secure->async_handshake(ssl::stream_base::client,
                                                asio::redirect_error(asio::use_awaitable, ec));
    if (ec) {
      if (long verify = SSL_get_verify_result(connection.secure->native_handle());
          verify != X509_V_OK) {
        // Not transient: retrying cannot help until the CA or the URL is fixed.
        co_return absl::FailedPreconditionError(absl::StrCat(
            "upstream TLS certificate of ", url_.host, " rejected: ",
            X509_verify_cert_error_string(verify), " (check --upstream and --upstream-ca-file)"));
      }
      co_return TransportError("TLS handshake", ec, deadline);
    }
  }
  connection.open = true;
  co_return absl::OkStatus();
}

asio::awaitable<absl::StatusOr<HttpResponse>> HttpsClient::Exchange(
    HttpRequest request, std::shared_ptr<Cancellation> cancel,
    std::shared_ptr<Connection> connection, bool reused) {
  // Cancelling closes the socket and ends the lookup's wait on the strand, which ends any pending
  // operation at once.
  std::weak_ptr<Connection> weak = connection;
  Cancellation::Handle handle = cancel->OnCancel([weak] {
    if (std::shared_ptr<Connection> c = weak.lock()) {
      asio::post(c->strand, [c] {
        c->tcp().close();
        c->wake.cancel();
      });
    }
  });
  absl::Cleanup forget = [&] { cancel->Forget(handle); };

  const absl::Time deadline = request.deadline;
  http::request<http::empty_body> req{http::verb::get, url_.base_path + request.target, 11};
  req.set(http::field::host, host_header_);
  req.set(http::field::user_agent, kUserAgent);
  for (const auto& [name, value] : request.headers) req.set(name, value);
  req.keep_alive(true);

  for (int attempt = 0;; ++attempt) {
    if (cancel->cancelled()) co_return Cancelled();
    if (!connection->open) {
      absl::Status opened = co_await Open(*connection, deadline);
      if (cancel->cancelled()) co_return Cancelled();
      if (!opened.ok()) co_return opened;
    }
    boost::system::error_code ec;
    connection->tcp().expires_after(
        Left(std::min(deadline, absl::Now() + options_.request_timeout)));
    http::response_parser<http::string_body> parser;
    parser.body_limit(options_.max_response_bytes);
    parser.header_limit(static_cast<uint32_t>(options_.max_header_bytes));
    auto exchange = [&](auto& stream) -> asio::awaitable<void> {
      co_await http::async_write(stream, req, asio::redirect_error(asio::use_awaitable, ec));
      if (!ec) {
        co_await ReadResponse(stream, connection->buffer, parser, options_.max_response_bytes,
                              options_.body_padding, ec);
      }
    };
    if (connection->secure) {
      co_await exchange(*connection->secure);
    } else {
      co_await exchange(*connection->plain);
    }
    if (cancel->cancelled()) co_return Cancelled();
    if (ec) {
      connection->Close();
      // A kept-alive connection the upstream closed while idle: once more on a fresh one.
      if (reused && attempt == 0 && !parser.got_some() && ec != beast::error::timeout) continue;
      if (ec == http::error::body_limit) {
        co_return absl::InternalError(
            absl::StrCat("upstream response exceeds ", options_.max_response_bytes, " bytes"));
      }
      if (ec == http::error::header_limit) {
        co_return absl::InternalError(
            absl::StrCat("upstream response headers exceed ", options_.max_header_bytes, " bytes"));
      }
      co_return TransportError("response", ec, deadline);
    }
    http::response<http::string_body> message = parser.release();
    HttpResponse response;
    response.status = static_cast<int>(message.result_int());
    for (const auto& field : message) {
      response.headers.emplace_back(std::string(field.name_string()), std::string(field.value()));
    }
    response.body = std::move(message.body());
    std::move(forget).Invoke();  // before the connection can serve another request
    if (message.keep_alive()) {
      ReturnConnection(connection);
    } else {
      connection->Close();
    }
    co_return response;
  }
}

}  // namespace contacts::gateway
