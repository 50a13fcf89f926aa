// contacts-gateway: serves contacts.v1.ContactService until SIGTERM or SIGINT.
#include <atomic>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "server/app/admin_server.h"
#include "server/app/config.h"
#include "server/app/gateway_server.h"
#include "server/core/log.h"
#include "server/core/metrics.h"
#include "server/upstream/jwt.h"

namespace {

std::string HostPort(const std::string& listen, int port) {
  return absl::StrCat(listen.substr(0, listen.rfind(':')), ":", port);
}

}  // namespace

int main(int argc, char** argv) {
  using namespace contacts::gateway;
  bool help = false;
  absl::StatusOr<Config> config =
      ParseConfig(std::vector<std::string>(argv + 1, argv + argc), std::getenv, &help);
  if (help) {
    std::cout << HelpText();
    return 0;
  }
  if (!config.ok()) {
    std::cerr << "contacts-gateway: error: " << config.status().message() << "\n";
    return 2;
  }
  SetMinLogSeverity(config->log_level);

  // Signals are taken by sigwait below, on this thread only; every thread started later
  // inherits the mask.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  // Deadlock detection (on in Debian's Abseil) takes a global lock in every Mutex::Lock; the tests
  // keep it, the server does without.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  // OpenSSL loads its configuration and algorithms on first use: do it now, not in the first
  // stream (it delayed that stream's first upstream request by ~20 ms).
  SignHs256("{}", "{}", "warm-up");

  absl::StatusOr<std::unique_ptr<GatewayServer>> gateway = GatewayServer::Start(*config);
  if (!gateway.ok()) {
    Log(Severity::kError, absl::StrCat("cannot start: ", gateway.status().message()));
    return 1;
  }
  std::atomic<bool> serving{true};
  std::unique_ptr<AdminServer> admin;
  if (!config->admin_listen.empty()) {
    absl::StatusOr<std::unique_ptr<AdminServer>> started = AdminServer::Start(
        config->admin_listen, [] { return Metrics().registry.Render(); },
        [&serving] { return serving.load(); });
    if (!started.ok()) {
      Log(Severity::kError,
          absl::StrCat("cannot start the admin port: ", started.status().message()));
      return 1;
    }
    admin = *std::move(started);
  }
  // The ready line: tests and scripts take the ports from "listening on HOST:PORT" and
  // "admin on HOST:PORT".
  LogReady(absl::StrCat(
      "contacts-gateway listening on ", HostPort(config->listen, (*gateway)->port()),
      config->tls.cert_file.empty() ? " (gRPC, plaintext)" : " (gRPC, TLS)",
      (*gateway)->probe_port() != 0
          ? absl::StrCat(", probe on ", HostPort(config->probe_listen, (*gateway)->probe_port()),
                         " (gRPC health, plaintext)")
          : "",
      admin ? absl::StrCat(", admin on ", HostPort(config->admin_listen, admin->port()),
                           " (/metrics, /healthz)")
            : ", no admin port",
      "; upstream ", config->upstream.http.base_url,
      config->client_id.empty() && config->credentials_file.empty()
          ? ", pass-through credentials only"
          : ", minting JWTs for authorized callers"));

  int signal = 0;
  sigwait(&signals, &signal);
  serving = false;
  Log(Severity::kInfo,
      absl::StrCat("signal ", signal, ": draining for up to ",
                   absl::FormatDuration(config->drain_timeout), "; a second signal exits at once"));
  std::thread second([&signals] {
    int again = 0;
    sigwait(&signals, &again);
    Log(Severity::kWarning, "second signal: exiting at once");
    std::_Exit(1);
  });
  second.detach();
  (*gateway)->Shutdown(config->drain_timeout);
  Log(Severity::kInfo, "stopped");
  return 0;
}
