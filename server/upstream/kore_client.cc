#include "server/upstream/kore_client.h"

#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/tcp.hpp>
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
#include <vector>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/ascii.h"
#include "absl/strings/cord.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/synchronization/mutex.h"
#include "server/core/encoding.h"
#include "server/core/metrics.h"
#include "server/upstream/http_status.h"
#include "server/upstream/page_parser.h"

namespace contacts::gateway {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;

constexpr char kUserAgent[] = "contacts-gateway/0.1";
constexpr size_t kMaxHeaderBytes = 64 << 10;
// A queued fetch with a deadline further away than this waits at most this long.
constexpr absl::Duration kLongestQueueWait = absl::Hours(24 * 365);

void PercentEncode(std::string_view in, std::string* out) {
  for (unsigned char c : in) {
    if (absl::ascii_isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~') {
      out->push_back(static_cast<char>(c));
    } else {
      absl::StrAppend(out, "%", absl::Hex(c, absl::kZeroPad2));
    }
  }
}

bool IsIpLiteral(const std::string& host) {
  boost::system::error_code ec;
  asio::ip::make_address(host, ec);
  return !ec;
}

// Reads one response; a declared Content-Length above the parser's body limit fails with
// http::error::body_limit as soon as the header is in (Beast would otherwise wait for the body).
template <typename Stream>
asio::awaitable<void> ReadResponse(Stream& stream, beast::flat_buffer& buffer,
                                   http::response_parser<http::string_body>& parser,
                                   size_t max_body, boost::system::error_code& ec) {
  co_await http::async_read_header(stream, buffer, parser,
                                   asio::redirect_error(asio::use_awaitable, ec));
  if (ec || parser.is_done()) co_return;
  if (parser.content_length().value_or(0) > max_body) {
    ec = http::error::body_limit;
    co_return;
  }
  // Room for ParsePage's padding behind the body, so that the page is not copied to make it.
  if (auto length = parser.content_length()) {
    parser.get().body().reserve(*length + kPagePaddingBytes);
  }
  // Beast reads at most the buffer's free capacity per call: a few hundred bytes for a buffer
  // sized by the header alone, i.e. a hundred system calls for a 1000-contact page.
  constexpr size_t kReadChunk = 64 << 10;
  buffer.reserve(buffer.size() +
                 std::min<size_t>(parser.content_length().value_or(kReadChunk), kReadChunk));
  co_await http::async_read(stream, buffer, parser, asio::redirect_error(asio::use_awaitable, ec));
}

// How much of `limit` is left before `deadline`; zero when it has passed.
std::chrono::steady_clock::duration Budget(absl::Duration limit, absl::Time deadline) {
  absl::Duration left = std::min(limit, deadline - absl::Now());
  if (left < absl::ZeroDuration()) left = absl::ZeroDuration();
  return absl::ToChronoNanoseconds(left);
}

// The transport error of `step` as a status: kDeadlineExceeded when the caller's deadline ran out,
// kUnavailable otherwise (the caller may retry).
absl::Status TransportError(std::string_view step, const boost::system::error_code& ec,
                            absl::Time deadline) {
  if (ec == beast::error::timeout) {
    if (absl::Now() >= deadline) {
      return absl::DeadlineExceededError(absl::StrCat(
          "the call's deadline passed while waiting for the upstream (", AsAbsl(step), ")"));
    }
    return absl::UnavailableError(absl::StrCat("upstream timed out (", AsAbsl(step), ")"));
  }
  return absl::UnavailableError(absl::StrCat("upstream ", AsAbsl(step), " failed: ", ec.message()));
}

// The upstream's own words, minus anything that is a credential.
std::string Redact(std::string message, const UpstreamCredentials& credentials) {
  if (!credentials.jwt.empty()) absl::StrReplaceAll({{credentials.jwt, "[redacted]"}}, &message);
  return message;
}

}  // namespace

absl::StatusOr<UpstreamUrl> ParseUpstreamUrl(std::string_view url, bool allow_plain_http) {
  UpstreamUrl out;
  std::string_view rest;
  if (url.substr(0, 8) == "https://") {
    rest = url.substr(8);
  } else if (url.substr(0, 7) == "http://") {
    if (!allow_plain_http) {
      return absl::InvalidArgumentError(absl::StrCat(
          "upstream URL ", AsAbsl(url),
          " is plain http://; use https://, or allow plain HTTP explicitly for a local simulator"));
    }
    out.tls = false;
    rest = url.substr(7);
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("upstream URL ", AsAbsl(url), " must start with https://"));
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
    return absl::InvalidArgumentError(absl::StrCat(
        "upstream URL ", AsAbsl(url), " may hold only scheme, host, port and a path prefix"));
  }
  std::string_view port;
  if (!authority.empty() && authority.front() == '[') {
    size_t close = authority.find(']');
    if (close == std::string_view::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat("upstream URL ", AsAbsl(url), ": unclosed '['"));
    }
    out.host = std::string(authority.substr(1, close - 1));
    std::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':')
        return absl::InvalidArgumentError(absl::StrCat("upstream URL ", AsAbsl(url), ": bad port"));
      port = after.substr(1);
    }
  } else {
    size_t colon = authority.rfind(':');
    out.host = std::string(authority.substr(0, colon));
    if (colon != std::string_view::npos) port = authority.substr(colon + 1);
  }
  if (out.host.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("upstream URL ", AsAbsl(url), " has no host"));
  }
  int port_number = 0;
  if (port.empty()) {
    out.port = out.tls ? "443" : "80";
  } else if (absl::SimpleAtoi(AsAbsl(port), &port_number) && port_number > 0 &&
             port_number < 65536) {
    out.port = std::string(port);
  } else {
    return absl::InvalidArgumentError(absl::StrCat("upstream URL ", AsAbsl(url), ": bad port"));
  }
  return out;
}

RateLimitHint ParseRateLimitHeaders(std::string_view remaining, std::string_view reset,
                                    absl::Time now) {
  RateLimitHint hint;
  int64_t value = 0;
  if (absl::SimpleAtoi(AsAbsl(remaining), &value) && value >= 0) hint.remaining = value;
  if (absl::SimpleAtoi(AsAbsl(reset), &value) && value >= 0) {
    constexpr int64_t kUnixSecondsFrom = 1'000'000'000;
    hint.reset = value > kUnixSecondsFrom
                     ? std::max(absl::ZeroDuration(), absl::FromUnixSeconds(value) - now)
                     : absl::Seconds(value);
  }
  return hint;
}

std::string ContactsTarget(const UpstreamUrl& url, const PageRequest& request,
                           std::string_view skip_param, std::string_view limit_param) {
  std::string target = url.base_path;
  target += "/campaign/api/v2/public/";
  PercentEncode(request.stream_id, &target);
  target += "/campaign/contactList/";
  PercentEncode(request.list_id, &target);
  target += "/getAllContacts?accountId=";
  PercentEncode(request.account_id, &target);
  absl::StrAppend(&target, "&", AsAbsl(skip_param), "=", request.skip, "&", AsAbsl(limit_param),
                  "=", request.limit);
  return target;
}

// The connection pool's books. The client, its connections (through their slots) and its queued
// fetches' timers and cancellation callbacks share it, so it outlives the client; `client` is null
// once the client is gone, and then nothing new starts.
struct KoreClient::Pool {
  explicit Pool(asio::io_context& io) : io(io) {}

  asio::io_context& io;
  absl::Mutex mu;
  KoreClient* client ABSL_GUARDED_BY(mu) = nullptr;
  size_t open ABSL_GUARDED_BY(mu) = 0;  // slots taken: connections open or opening, idle ones too
  std::vector<std::shared_ptr<Connection>> idle ABSL_GUARDED_BY(mu);
  std::list<std::shared_ptr<Waiter>> waiters ABSL_GUARDED_BY(mu);  // first come, first served

  // Pops the first queued fetch; its slot or connection is the caller's to give it.
  std::shared_ptr<Waiter> PopLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu);
  // Gives a slot back: to the first queued fetch (on a new connection), else for good.
  void Release();
  // Ends a fetch that is still queued with `status` (on the calling thread, an io_context one).
  void Abandon(const std::weak_ptr<Waiter>& weak, absl::Status status);
};

// One slot of the pool, counted in Pool::open before it is made; given back when destroyed, which
// is when the connection holding it is, whatever ended its use. Move-only.
struct KoreClient::Slot {
  explicit Slot(std::shared_ptr<Pool> pool) : pool(std::move(pool)) {}
  Slot(Slot&&) noexcept = default;
  Slot& operator=(Slot&&) = delete;
  ~Slot() {
    if (pool) pool->Release();
  }
  std::shared_ptr<Pool> pool;
};

// A fetch waiting for a connection. Pool::waiters owns it while it is queued; its deadline timer
// and cancellation callback hold it weakly. Whoever takes it off the queue (under Pool::mu) owns
// `done` and forgets `handle`.
struct KoreClient::Waiter {
  Waiter(asio::io_context& io, PageRequest request, std::shared_ptr<Cancellation> cancel,
         Callback done)
      : request(std::move(request)),
        cancel(std::move(cancel)),
        done(std::move(done)),
        deadline(io) {}

  PageRequest request;
  std::shared_ptr<Cancellation> cancel;
  Callback done;
  asio::steady_timer deadline;      // armed and cancelled under Pool::mu only
  Cancellation::Handle handle = 0;  // set under Pool::mu before anyone can take it off the queue
  bool queued = false;              // Pool::mu
  std::list<std::shared_ptr<Waiter>>::iterator position;  // in Pool::waiters while queued
};

std::shared_ptr<KoreClient::Waiter> KoreClient::Pool::PopLocked() {
  std::shared_ptr<Waiter> waiter = std::move(waiters.front());
  waiters.pop_front();
  waiter->queued = false;
  waiter->deadline.cancel();
  return waiter;
}

void KoreClient::Pool::Release() {
  std::shared_ptr<Waiter> next;
  KoreClient* owner = nullptr;
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

void KoreClient::Pool::Abandon(const std::weak_ptr<Waiter>& weak, absl::Status status) {
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

// One upstream connection: plain TCP or TLS over TCP, with the read buffer that must survive
// between requests on a keep-alive connection. Used by one request at a time, on its strand.
// Holds one slot of the pool, given back when the connection is destroyed.
struct KoreClient::Connection {
  Connection(asio::io_context& io, ssl::context* tls, Slot slot)
      : slot(std::move(slot)), strand(asio::make_strand(io)) {
    if (tls) {
      secure = std::make_unique<beast::ssl_stream<beast::tcp_stream>>(strand, *tls);
    } else {
      plain = std::make_unique<beast::tcp_stream>(strand);
    }
  }
  beast::tcp_stream& tcp() { return secure ? beast::get_lowest_layer(*secure) : *plain; }

  Slot slot;  // first: given back last, after the socket is closed
  asio::strand<asio::io_context::executor_type> strand;
  std::unique_ptr<beast::tcp_stream> plain;
  std::unique_ptr<beast::ssl_stream<beast::tcp_stream>> secure;
  beast::flat_buffer buffer;
  bool open = false;
};

absl::StatusOr<std::unique_ptr<KoreClient>> KoreClient::Create(asio::io_context& io,
                                                               KoreClientOptions options) {
  absl::StatusOr<UpstreamUrl> url = ParseUpstreamUrl(options.base_url, options.allow_plain_http);
  if (!url.ok()) return url.status();
  if (options.max_connections == 0)
    return absl::InvalidArgumentError("max_connections must be at least 1");
  std::unique_ptr<KoreClient> client(new KoreClient(io, std::move(options), *std::move(url)));
  if (client->url_.tls) {
    auto tls = std::make_unique<ssl::context>(ssl::context::tls_client);
    SSL_CTX_set_min_proto_version(tls->native_handle(), TLS1_2_VERSION);
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

KoreClient::KoreClient(asio::io_context& io, KoreClientOptions options, UpstreamUrl url)
    : io_(io),
      options_(std::move(options)),
      url_(std::move(url)),
      pool_(std::make_shared<Pool>(io)) {
  absl::MutexLock lock(&pool_->mu);
  pool_->client = this;
}

KoreClient::~KoreClient() {
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

void KoreClient::Fetch(PageRequest request, std::shared_ptr<Cancellation> cancel, Callback done) {
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
      waiter->position = pool_->waiters.insert(pool_->waiters.end(), waiter);
      if (waiter->request.deadline != absl::InfiniteFuture()) {
        waiter->deadline.expires_after(Budget(kLongestQueueWait, waiter->request.deadline));
        waiter->deadline.async_wait(
            [pool = pool_, weak, max = options_.max_connections](boost::system::error_code ec) {
              if (ec) return;  // cancelled: the fetch left the queue another way
              pool->Abandon(
                  weak, absl::DeadlineExceededError(absl::StrCat(
                            "the call's deadline passed while waiting for an upstream connection "
                            "(all ",
                            max, " in use; see --upstream-max-connections)")));
            });
      }
      // Runs at once when already cancelled: it only posts, so it may run under the lock.
      waiter->handle = waiter->cancel->OnCancel([pool = pool_, weak] {
        asio::post(pool->io, [pool, weak] {
          pool->Abandon(weak, absl::CancelledError("the call was cancelled"));
        });
      });
      return;
    }
  }
  const bool reused = connection != nullptr;
  Start(std::move(request), std::move(cancel), std::move(done), std::move(connection), reused);
}

void KoreClient::Start(PageRequest request, std::shared_ptr<Cancellation> cancel, Callback done,
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
  asio::co_spawn(
      connection->strand, FetchPage(std::move(request), std::move(cancel), connection, reused),
      [done = std::move(done)](std::exception_ptr error, absl::StatusOr<Page> page) mutable {
        if (error) page = absl::InternalError("unexpected exception while fetching a page");
        std::move(done)(std::move(page));
      });
}

void KoreClient::ReturnConnection(std::shared_ptr<Connection> connection) {
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

asio::awaitable<absl::Status> KoreClient::Open(Connection& connection, absl::Time deadline) {
  boost::system::error_code ec;
  tcp::resolver::results_type endpoints;
  if (IsIpLiteral(url_.host)) {  // no lookup (asio's resolver would hand it to a thread of its own)
    endpoints = tcp::resolver::results_type::create(
        tcp::endpoint(asio::ip::make_address(url_.host),
                      static_cast<unsigned short>(std::stoi(url_.port))),
        url_.host, url_.port);
  } else {
    tcp::resolver resolver(connection.strand);
    endpoints = co_await resolver.async_resolve(url_.host, url_.port,
                                                asio::redirect_error(asio::use_awaitable, ec));
    if (ec) co_return TransportError(absl::StrCat("name lookup of ", url_.host), ec, deadline);
  }
  connection.tcp().expires_after(Budget(options_.connect_timeout, deadline));
  co_await connection.tcp().async_connect(endpoints, asio::redirect_error(asio::use_awaitable, ec));
  if (ec)
    co_return TransportError(absl::StrCat("connect to ", url_.host, ":", url_.port), ec, deadline);
  if (connection.secure) {
    SSL* ssl = connection.secure->native_handle();
    if (IsIpLiteral(url_.host)) {
      X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), url_.host.c_str());
    } else {
      SSL_set_tlsext_host_name(ssl, url_.host.c_str());
      SSL_set1_host(ssl, url_.host.c_str());
    }
    co_await connection.secure->async_handshake(ssl::stream_base::client,
                                                asio::redirect_error(asio::use_awaitable, ec));
    if (ec) {
      if (long verify = SSL_get_verify_result(ssl); verify != X509_V_OK) {
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

asio::awaitable<absl::StatusOr<Page>> KoreClient::FetchPage(PageRequest request,
                                                            std::shared_ptr<Cancellation> cancel,
                                                            std::shared_ptr<Connection> connection,
                                                            bool reused) {
  // Cancelling closes the socket on its strand, which ends any pending operation at once.
  std::weak_ptr<Connection> weak = connection;
  Cancellation::Handle handle = cancel->OnCancel([weak] {
    if (std::shared_ptr<Connection> c = weak.lock()) {
      asio::post(c->strand, [c] { c->tcp().close(); });
    }
  });
  absl::Cleanup forget = [&] { cancel->Forget(handle); };

  const absl::Time deadline = request.deadline;
  http::request<http::empty_body> req{
      http::verb::get, ContactsTarget(url_, request, options_.skip_param, options_.limit_param),
      11};
  bool default_port = url_.port == (url_.tls ? "443" : "80");
  std::string host_header =
      url_.host.find(':') != std::string::npos ? absl::StrCat("[", url_.host, "]") : url_.host;
  req.set(http::field::host,
          default_port ? host_header : absl::StrCat(host_header, ":", url_.port));
  req.set(http::field::user_agent, kUserAgent);
  req.set(http::field::accept, "application/json");
  req.set("auth", request.credentials.jwt);
  req.set("iid", request.credentials.app_id);
  req.set("accountId", request.account_id);
  req.keep_alive(true);
  const std::string what =
      absl::StrCat("contact list ", request.list_id, " (skip=", request.skip, ")");

  for (int attempt = 0;; ++attempt) {
    if (cancel->cancelled()) co_return absl::CancelledError("the call was cancelled");
    const absl::Time began = absl::Now();
    if (!connection->open) {
      absl::Status opened = co_await Open(*connection, deadline);
      if (cancel->cancelled()) co_return absl::CancelledError("the call was cancelled");
      if (!opened.ok()) {
        Metrics().UpstreamExchange("transport_error", absl::Now() - began);
        co_return opened;
      }
    }
    boost::system::error_code ec;
    connection->tcp().expires_after(Budget(options_.request_timeout, deadline));
    http::response_parser<http::string_body> parser;
    parser.body_limit(options_.max_response_bytes);
    parser.header_limit(kMaxHeaderBytes);
    if (connection->secure) {
      co_await http::async_write(*connection->secure, req,
                                 asio::redirect_error(asio::use_awaitable, ec));
      if (!ec)
        co_await ReadResponse(*connection->secure, connection->buffer, parser,
                              options_.max_response_bytes, ec);
    } else {
      co_await http::async_write(*connection->plain, req,
                                 asio::redirect_error(asio::use_awaitable, ec));
      if (!ec)
        co_await ReadResponse(*connection->plain, connection->buffer, parser,
                              options_.max_response_bytes, ec);
    }
    if (cancel->cancelled()) co_return absl::CancelledError("the call was cancelled");
    if (ec) {
      connection->tcp().close();
      connection->open = false;
      connection->buffer.clear();
      // A kept-alive connection the upstream closed while idle: once more on a fresh one.
      if (reused && attempt == 0 && !parser.got_some() && ec != beast::error::timeout) continue;
      Metrics().UpstreamExchange("transport_error", absl::Now() - began);
      if (ec == http::error::body_limit) {
        co_return absl::InternalError(absl::StrCat("upstream response for ", what, " exceeds ",
                                                   options_.max_response_bytes, " bytes"));
      }
      if (ec == http::error::header_limit) {
        co_return absl::InternalError(absl::StrCat("upstream response headers for ", what,
                                                   " exceed ", kMaxHeaderBytes, " bytes"));
      }
      co_return TransportError(absl::StrCat("response for ", what), ec, deadline);
    }

    http::response<http::string_body> response = parser.release();
    Metrics().UpstreamExchange(absl::StrCat(response.result_int()), absl::Now() - began);
    if (response.result_int() == 429) Metrics().AccountThrottled(request.account_id);
    std::move(forget).Invoke();  // before the connection can serve another stream
    if (response.keep_alive()) {
      ReturnConnection(connection);
    } else {
      connection->tcp().close();
      connection->open = false;
    }
    auto header = [&response](std::string_view name) -> std::string_view {
      auto it = response.find(beast::string_view(name.data(), name.size()));
      if (it == response.end())
        it = response.find(beast::string_view(absl::StrCat("X-", AsAbsl(name))));
      return it == response.end() ? std::string_view()
                                  : std::string_view(it->value().data(), it->value().size());
    };
    RateLimitHint hint = ParseRateLimitHeaders(header("RateLimit-Remaining"),
                                               header("RateLimit-Reset"), absl::Now());
    if (response.result_int() == 200) {
      absl::StatusOr<Page> page = ParsePage(response.body());
      if (!page.ok()) {
        co_return absl::Status(page.status().code(),
                               absl::StrCat(page.status().message(), " (", what, ")"));
      }
      page->rate_limit = hint;
      co_return page;
    }
    absl::Status status =
        StatusFromHttp(response.result_int(),
                       Redact(ParseErrorMessage(response.body()), request.credentials), what);
    if (auto retry_after = response.find(http::field::retry_after); retry_after != response.end()) {
      status.SetPayload(kRetryAfterPayload, absl::Cord(AsAbsl(retry_after->value())));
    }
    if (hint.remaining)
      status.SetPayload(kRateLimitRemainingPayload, absl::Cord(absl::StrCat(*hint.remaining)));
    if (hint.reset) {
      status.SetPayload(kRateLimitResetPayload,
                        absl::Cord(absl::StrCat(absl::ToInt64Seconds(*hint.reset))));
    }
    co_return status;
  }
}

}  // namespace contacts::gateway
