#include "tools/kore-sim/server.h"

#include <chrono>
#include <csignal>
#include <cstdio>
#include <exception>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "boost/asio/co_spawn.hpp"
#include "boost/asio/redirect_error.hpp"
#include "boost/asio/signal_set.hpp"
#include "boost/asio/steady_timer.hpp"
#include "boost/asio/strand.hpp"
#include "boost/asio/this_coro.hpp"
#include "boost/asio/use_awaitable.hpp"
#include "boost/asio/write.hpp"
#include "boost/beast/core.hpp"
#include "boost/beast/http.hpp"
#include "boost/beast/ssl.hpp"

namespace contacts::kore_sim {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace ssl = boost::asio::ssl;
using tcp = boost::asio::ip::tcp;
using Request = http::request<http::string_body>;

constexpr std::chrono::seconds kWriteTimeout{30};
constexpr std::chrono::seconds kHandshakeTimeout{10};
constexpr uint64_t kMaxRequestBody = 1 << 20;

// What every connection coroutine needs; the Simulator outlives them all.
struct SessionContext {
  Simulator* simulator;
  std::chrono::seconds idle_timeout;
  bool quiet;
};

// How a connection ends: kGraceful shuts down (TLS close_notify / TCP FIN after the last
// response), kAbort just closes (after an error, a timeout or a kind=reset fault).
enum class Ending { kGraceful, kAbort };

auto Redirect(beast::error_code& ec) { return asio::redirect_error(asio::use_awaitable, ec); }

void LogRequest(const Request& request, unsigned status, std::chrono::steady_clock::duration took,
                std::string_view note) {
  const std::string_view target = request.target();
  const std::string_view path = target.substr(0, target.find('?'));
  const std::string_view method = request.method_string();
  std::string line;
  line.reserve(path.size() + 40);
  line.append(method).append(" ").append(path).append(" ").append(std::to_string(status));
  char ms[32];
  std::snprintf(ms, sizeof(ms), " %.1fms", std::chrono::duration<double, std::milli>(took).count());
  line.append(ms).append(note).append("\n");
  std::fwrite(line.data(), 1, line.size(), stderr);
}

// Completion of a connection coroutine: nothing is expected to throw; if something does (e.g.
// std::bad_alloc), say so instead of losing it.
void ReportException(std::exception_ptr error) {
  if (!error) return;
  try {
    std::rethrow_exception(error);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "kore-sim: connection failed: %s\n", e.what());
  } catch (...) {
    std::fprintf(stderr, "kore-sim: connection failed with an unknown exception\n");
  }
}

// Serves requests on `stream` one at a time until the peer closes, the idle timeout fires, a
// response asks to close, or a fault resets the connection.
template <class Stream>
asio::awaitable<Ending> ServeRequests(Stream& stream, SessionContext context) {
  auto& socket_layer = beast::get_lowest_layer(stream);
  beast::flat_buffer buffer;
  beast::error_code ec;
  for (;;) {
    http::request_parser<http::string_body> parser;
    parser.body_limit(kMaxRequestBody);
    socket_layer.expires_after(context.idle_timeout);
    co_await http::async_read(stream, buffer, parser, Redirect(ec));
    if (ec == http::error::end_of_stream) co_return Ending::kGraceful;
    if (ec) co_return Ending::kAbort;  // timeout, reset by peer, or not HTTP

    const auto start = std::chrono::steady_clock::now();
    const Request& request = parser.get();
    Reply reply = context.simulator->Handle(request);
    if (reply.delay.count() > 0) {
      asio::steady_timer timer(co_await asio::this_coro::executor, reply.delay);
      co_await timer.async_wait(Redirect(ec));
    }
    socket_layer.expires_after(kWriteTimeout);
    const std::string& body = reply.page ? reply.page->body : reply.response.body();
    if (reply.reset_midway) {
      // The header promises the whole body; about half of it follows, then the connection ends.
      http::response_serializer<http::string_body> serializer(reply.response);
      co_await http::async_write_header(stream, serializer, Redirect(ec));
      if (!ec) {
        co_await asio::async_write(stream, asio::buffer(body.data(), body.size() / 2),
                                   Redirect(ec));
      }
      if (!context.quiet) {
        LogRequest(request, reply.response.result_int(), std::chrono::steady_clock::now() - start,
                   " (reset midway)");
      }
      co_return Ending::kAbort;
    }
    if (reply.page) {
      http::response_serializer<http::string_body> serializer(reply.response);
      co_await http::async_write_header(stream, serializer, Redirect(ec));
      if (!ec) co_await asio::async_write(stream, asio::buffer(body), Redirect(ec));
    } else {
      co_await http::async_write(stream, reply.response, Redirect(ec));
    }
    if (!context.quiet) {
      LogRequest(request, reply.response.result_int(), std::chrono::steady_clock::now() - start,
                 ec ? " (write failed)" : "");
    }
    if (ec) co_return Ending::kAbort;
    if (!reply.response.keep_alive()) co_return Ending::kGraceful;
  }
}

asio::awaitable<void> ServePlain(tcp::socket socket, SessionContext context) {
  beast::tcp_stream stream(std::move(socket));
  const Ending ending = co_await ServeRequests(stream, context);
  beast::error_code ec;
  if (ending == Ending::kGraceful) stream.socket().shutdown(tcp::socket::shutdown_send, ec);
  stream.socket().close(ec);
}

asio::awaitable<void> ServeTls(tcp::socket socket, ssl::context& tls, SessionContext context) {
  beast::ssl_stream<beast::tcp_stream> stream(std::move(socket), tls);
  beast::error_code ec;
  beast::get_lowest_layer(stream).expires_after(kHandshakeTimeout);
  co_await stream.async_handshake(ssl::stream_base::server, Redirect(ec));
  if (!ec) {
    const Ending ending = co_await ServeRequests(stream, context);
    if (ending == Ending::kGraceful) {
      beast::get_lowest_layer(stream).expires_after(kHandshakeTimeout);
      co_await stream.async_shutdown(Redirect(ec));
    }
  }
  beast::get_lowest_layer(stream).socket().close(ec);
}

}  // namespace

Server::Server(const Config& config, Simulator& simulator)
    : config_(config), simulator_(simulator), acceptor_(io_context_) {}

absl::Status Server::Start() {
  if (config_.tls()) {
    tls_context_ = std::make_unique<ssl::context>(ssl::context::tls_server);
    tls_context_->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                              ssl::context::no_sslv3 | ssl::context::no_tlsv1 |
                              ssl::context::no_tlsv1_1);
    beast::error_code ec;
    tls_context_->use_certificate_chain_file(config_.tls_cert, ec);
    if (ec) {
      return absl::InvalidArgumentError(
          absl::StrCat("cannot load --tls-cert ", config_.tls_cert, ": ", ec.message()));
    }
    tls_context_->use_private_key_file(config_.tls_key, ssl::context::pem, ec);
    if (ec) {
      return absl::InvalidArgumentError(
          absl::StrCat("cannot load --tls-key ", config_.tls_key, ": ", ec.message()));
    }
  }

  beast::error_code ec;
  const std::string host = config_.listen_host == "localhost" ? "127.0.0.1" : config_.listen_host;
  const asio::ip::address address = asio::ip::make_address(host, ec);
  if (ec) {
    return absl::InvalidArgumentError(
        absl::StrCat("--listen: '", config_.listen_host, "' is not an IP address"));
  }
  const tcp::endpoint endpoint(address, config_.listen_port);
  acceptor_.open(endpoint.protocol(), ec);
  if (!ec) acceptor_.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) acceptor_.bind(endpoint, ec);
  if (!ec) acceptor_.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    return absl::UnavailableError(absl::StrCat("cannot listen on ", config_.listen_host, ":",
                                               config_.listen_port, ": ", ec.message()));
  }
  return absl::OkStatus();
}

std::string Server::Address() const {
  beast::error_code ec;
  const tcp::endpoint endpoint = acceptor_.local_endpoint(ec);
  const std::string host = endpoint.address().to_string();
  return endpoint.address().is_v6() ? absl::StrCat("[", host, "]:", endpoint.port())
                                    : absl::StrCat(host, ":", endpoint.port());
}

void Server::Run() {
  asio::signal_set signals(io_context_, SIGINT, SIGTERM);
  signals.async_wait([this](const beast::error_code& ec, int) {
    if (!ec) Stop();
  });
  asio::co_spawn(io_context_, AcceptLoop(), ReportException);

  std::vector<std::thread> threads;
  for (int i = 1; i < config_.threads; ++i) threads.emplace_back([this] { io_context_.run(); });
  io_context_.run();
  for (std::thread& thread : threads) thread.join();
}

void Server::Stop() { io_context_.stop(); }

asio::awaitable<void> Server::AcceptLoop() {
  const SessionContext context{.simulator = &simulator_,
                               .idle_timeout = std::chrono::seconds(config_.idle_timeout_seconds),
                               .quiet = config_.quiet};
  for (;;) {
    tcp::socket socket(asio::make_strand(io_context_));
    beast::error_code ec;
    co_await acceptor_.async_accept(socket, Redirect(ec));
    if (ec == asio::error::operation_aborted) co_return;
    if (ec) {
      // Typically out of file descriptors: say so, and breathe before trying again.
      std::fprintf(stderr, "kore-sim: accept failed: %s\n", ec.message().c_str());
      asio::steady_timer pause(io_context_, std::chrono::milliseconds(100));
      co_await pause.async_wait(Redirect(ec));
      continue;
    }
    socket.set_option(tcp::no_delay(true), ec);
    const asio::any_io_executor executor = socket.get_executor();
    if (tls_context_) {
      asio::co_spawn(executor, ServeTls(std::move(socket), *tls_context_, context),
                     ReportException);
    } else {
      asio::co_spawn(executor, ServePlain(std::move(socket), context), ReportException);
    }
  }
}

}  // namespace contacts::kore_sim
