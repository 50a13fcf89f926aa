#ifndef CONTACTS_GATEWAY_TOOLS_KORE_SIM_SERVER_H_
#define CONTACTS_GATEWAY_TOOLS_KORE_SIM_SERVER_H_

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "boost/asio/awaitable.hpp"
#include "boost/asio/io_context.hpp"
#include "boost/asio/ip/tcp.hpp"
#include "boost/asio/ssl/context.hpp"
#include "tools/kore-sim/config.h"
#include "tools/kore-sim/simulator.h"

namespace contacts::kore_sim {

// Serves a Simulator over HTTP/1.1, plain or TLS: one acceptor, one coroutine per connection
// (keep-alive, idle read timeout, one request at a time), and `threads` threads running the
// io_context. Each connection's coroutine runs on its own strand, so it never runs on two threads
// at once. Owns the io_context, the acceptor and the TLS context; borrows the Simulator, which
// must outlive the Server. Start() and Run() are called from one thread (main); Stop() from any.
class Server {
 public:
  Server(const Config& config, Simulator& simulator);
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Loads the TLS files and binds the listening socket. Errors: kInvalidArgument (bad host or
  // TLS files), kUnavailable (cannot bind).
  absl::Status Start();

  // The bound address as HOST:PORT ([HOST]:PORT for IPv6); valid after Start().
  std::string Address() const;
  bool tls() const { return tls_context_ != nullptr; }

  // Serves until SIGINT, SIGTERM or Stop(), on `threads` threads (the caller's is one of them).
  void Run();
  void Stop();

 private:
  boost::asio::awaitable<void> AcceptLoop();

  const Config& config_;
  Simulator& simulator_;
  boost::asio::io_context io_context_;
  boost::asio::ip::tcp::acceptor acceptor_;
  std::unique_ptr<boost::asio::ssl::context> tls_context_;  // null: plain HTTP
};

}  // namespace contacts::kore_sim

#endif  // CONTACTS_GATEWAY_TOOLS_KORE_SIM_SERVER_H_
