#include "server/log.h"

#include <atomic>
#include <cstdio>
#include <string>

#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace contacts::gateway {
namespace {
std::atomic<Severity> min_severity{Severity::kInfo};
constexpr const char* kNames[] = {"DEBUG", "INFO", "WARNING", "ERROR"};
}  // namespace

void SetMinLogSeverity(Severity severity) { min_severity = severity; }

void Log(Severity severity, std::string_view message) {
  if (severity < min_severity.load(std::memory_order_relaxed)) return;
  std::string line = absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ ", absl::Now(), absl::UTCTimeZone());
  line += kNames[static_cast<int>(severity)];
  line += ' ';
  line.append(message);
  line += '\n';
  std::fwrite(line.data(), 1, line.size(), stderr);  // one write: lines never interleave
}

}  // namespace contacts::gateway
