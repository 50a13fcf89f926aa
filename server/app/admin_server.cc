#include "server/app/admin_server.h"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ip/v6_only.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include "absl/strings/str_cat.h"

namespace contacts::gateway {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

constexpr size_t kMaxHeaderBytes = 8 << 10;
constexpr auto kRequestTimeout = std::chrono::seconds(10);
constexpr int kMaxConnections = 16;

}  // namespace

struct AdminServer::State {
  explicit State(asio::io_context& io) : acceptor(io) {}
  std::function<std::string()> metrics;
  std::function<bool()> serving;
  tcp::acceptor acceptor;
  int connections = 0;  // on the server's thread only
};

namespace {

http::response<http::string_body> Respond(AdminServer::State& state,
                                          const http::request<http::empty_body>& request) {
  http::response<http::string_body> response{http::status::ok, request.version()};
  response.keep_alive(request.keep_alive());
  response.set(http::field::content_type, "text/plain; charset=utf-8");
  std::string_view path = request.target().substr(0, request.target().find('?'));
  if (request.method() != http::verb::get) {
    response.result(http::status::method_not_allowed);
    response.set(http::field::allow, "GET");
    response.body() = "only GET\n";
  } else if (path == "/metrics") {
    response.set(http::field::content_type, "text/plain; version=0.0.4; charset=utf-8");
    response.body() = state.metrics();
  } else if (path == "/healthz") {
    bool serving = state.serving();
    response.result(serving ? http::status::ok : http::status::service_unavailable);
    response.body() = serving ? "ok\n" : "shutting down\n";
  } else {
    response.result(http::status::not_found);
    response.body() = "not found: try /metrics or /healthz\n";
  }
  response.prepare_payload();
  return response;
}

asio::awaitable<void> Serve(std::shared_ptr<AdminServer::State> state, tcp::socket socket) {
  beast::tcp_stream stream(std::move(socket));
  beast::flat_buffer buffer(2 * kMaxHeaderBytes);  // bounded: a larger request is an error
  for (;;) {
    boost::system::error_code ec;
    http::request_parser<http::empty_body> parser;
    parser.header_limit(kMaxHeaderBytes);
    stream.expires_after(kRequestTimeout);
    co_await http::async_read(stream, buffer, parser,
                              asio::redirect_error(asio::use_awaitable, ec));
    if (ec == http::error::header_limit) {
      http::response<http::string_body> too_large{http::status::request_header_fields_too_large,
                                                  11};
      too_large.keep_alive(false);
      too_large.prepare_payload();
      co_await http::async_write(stream, too_large, asio::redirect_error(asio::use_awaitable, ec));
      break;
    }
    if (ec) break;  // closed, timed out, or not HTTP
    http::response<http::string_body> response = Respond(*state, parser.get());
    co_await http::async_write(stream, response, asio::redirect_error(asio::use_awaitable, ec));
    if (ec || !response.keep_alive()) break;
  }
  boost::system::error_code ignored;
  stream.socket().shutdown(tcp::socket::shutdown_send, ignored);
  --state->connections;
}

asio::awaitable<void> Accept(std::shared_ptr<AdminServer::State> state) {
  asio::steady_timer pause(state->acceptor.get_executor());
  for (;;) {
    boost::system::error_code ec;
    tcp::socket socket =
        co_await state->acceptor.async_accept(asio::redirect_error(asio::use_awaitable, ec));
    if (ec == asio::error::operation_aborted) co_return;
    if (ec) {  // e.g. out of file descriptors: do not spin
      pause.expires_after(std::chrono::milliseconds(100));
      co_await pause.async_wait(asio::redirect_error(asio::use_awaitable, ec));
      continue;
    }
    if (state->connections >= kMaxConnections) continue;  // `socket` closes
    ++state->connections;
    asio::co_spawn(state->acceptor.get_executor(), Serve(state, std::move(socket)), asio::detached);
  }
}

}  // namespace

absl::StatusOr<std::unique_ptr<AdminServer>> AdminServer::Start(
    const std::string& listen, std::function<std::string()> metrics,
    std::function<bool()> serving) {
  size_t colon = listen.rfind(':');
  if (colon == std::string::npos) {
    return absl::InvalidArgumentError(absl::StrCat("admin address ", listen, " is not HOST:PORT"));
  }
  std::string host = listen.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  std::unique_ptr<AdminServer> server(new AdminServer());
  boost::system::error_code ec;
  tcp::resolver resolver(server->io_);
  tcp::resolver::results_type endpoints =
      resolver.resolve(host.empty() ? "::" : host, listen.substr(colon + 1),
                       tcp::resolver::passive | tcp::resolver::numeric_service, ec);
  if (ec || endpoints.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("admin address ", listen, ": ", ec.message()));
  }
  server->state_ = std::make_shared<State>(server->io_);
  server->state_->metrics = std::move(metrics);
  server->state_->serving = std::move(serving);
  tcp::acceptor& acceptor = server->state_->acceptor;
  tcp::endpoint endpoint = endpoints.begin()->endpoint();
  // [::] takes IPv4 connections too (v6_only off); on a host without IPv6, 0.0.0.0 instead.
  const bool any_v6 = endpoint.address().is_v6() && endpoint.address().is_unspecified();
  acceptor.open(endpoint.protocol(), ec);
  if (ec && any_v6) {
    endpoint = tcp::endpoint(tcp::v4(), endpoint.port());
    ec.clear();
    acceptor.open(endpoint.protocol(), ec);
  }
  if (!ec && endpoint.address().is_v6()) acceptor.set_option(asio::ip::v6_only(!any_v6), ec);
  if (!ec) acceptor.set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec) acceptor.bind(endpoint, ec);
  if (!ec) acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec)
    return absl::UnavailableError(absl::StrCat("cannot listen on ", listen, ": ", ec.message()));
  server->port_ = acceptor.local_endpoint().port();
  asio::co_spawn(server->io_, Accept(server->state_), asio::detached);
  server->thread_ = std::thread([io = &server->io_] { io->run(); });
  return server;
}

AdminServer::~AdminServer() {
  io_.stop();
  if (thread_.joinable()) thread_.join();
}

}  // namespace contacts::gateway
