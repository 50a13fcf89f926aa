// contacts-gateway: serves contacts.v1.ContactService until SIGTERM or SIGINT.
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "server/config.h"
#include "server/log.h"
#include "server/service/gateway_server.h"

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

  absl::StatusOr<std::unique_ptr<GatewayServer>> gateway = GatewayServer::Start(*config);
  if (!gateway.ok()) {
    std::cerr << "contacts-gateway: error: " << gateway.status().message() << "\n";
    return 1;
  }
  std::string where = absl::StrCat(config->listen.substr(0, config->listen.rfind(':')), ":",
                                   (*gateway)->port());
  std::cout << "contacts-gateway listening on " << where << std::endl;
  Log(Severity::kInfo,
      absl::StrCat("serving contacts.v1.ContactService on ", where, config->tls.cert_file.empty() ? " (plaintext)" : " (TLS)",
                   ", upstream ", config->upstream.base_url,
                   config->client_id.empty() && config->credentials_file.empty()
                       ? ", pass-through credentials only"
                       : ", minting JWTs for authorized callers"));

  int signal = 0;
  sigwait(&signals, &signal);
  Log(Severity::kInfo, absl::StrCat("signal ", signal, ": draining for up to ",
                                    absl::FormatDuration(config->drain_timeout),
                                    "; a second signal exits at once"));
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
