// kore-sim: a simulated Kore.ai getAllContacts upstream for tests and benchmarks. See --help.

#include <cstdio>
#include <string>
#include <string_view>
#include <vector>

#include "tools/kore-sim/config.h"
#include "tools/kore-sim/server.h"
#include "tools/kore-sim/simulator.h"

int main(int argc, char** argv) {
  using namespace contacts::kore_sim;
  const std::vector<std::string_view> args(argv + 1, argv + argc);
  absl::StatusOr<ParsedFlags> flags = ParseFlags(args);
  if (!flags.ok()) {
    std::fprintf(stderr, "kore-sim: %s\n", std::string(flags.status().message()).c_str());
    return 2;
  }
  if (flags->help) {
    std::fputs(HelpText().c_str(), stdout);
    return 0;
  }
  const Config& config = flags->config;
  Simulator simulator(config);
  Server server(config, simulator);
  if (absl::Status started = server.Start(); !started.ok()) {
    std::fprintf(stderr, "kore-sim: %s\n", std::string(started.message()).c_str());
    return 1;
  }
  std::printf("kore-sim listening on %s (%s)\n", server.Address().c_str(),
              server.tls() ? "https" : "http");
  std::fflush(stdout);
  server.Run();
  return 0;
}
