#ifndef CONTACTS_GATEWAY_SERVER_APP_ADMIN_SERVER_H_
#define CONTACTS_GATEWAY_SERVER_APP_ADMIN_SERVER_H_

#include <boost/asio/io_context.hpp>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"

namespace contacts::gateway {

// The admin HTTP/1.1 port: GET /metrics (Prometheus text format 0.0.4, from `metrics`) and
// GET /healthz (200 "ok" while `serving` is true, else 503). Runs on a thread and io_context of
// its own. Since it may be exposed, it is bounded: 8 KiB of request headers, no body, 10 s to send
// a request, 16 connections at once (more are closed at once).
class AdminServer {
 public:
  // `listen` is HOST:PORT (port 0 picks a free one); [::] (or no host) takes IPv6 and IPv4. Errors:
  // kInvalidArgument for a bad address, kUnavailable when it cannot listen.
  static absl::StatusOr<std::unique_ptr<AdminServer>> Start(const std::string& listen,
                                                            std::function<std::string()> metrics,
                                                            std::function<bool()> serving);
  ~AdminServer();  // stops serving and joins the thread

  int port() const { return port_; }

  struct State;  // what the connections share; defined in the .cc

 private:
  AdminServer() = default;

  boost::asio::io_context io_;
  std::shared_ptr<State> state_;
  std::thread thread_;
  int port_ = 0;
};

}  // namespace contacts::gateway

#endif  // CONTACTS_GATEWAY_SERVER_APP_ADMIN_SERVER_H_
