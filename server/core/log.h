#ifndef CONTACTS_GATEWAY_SERVER_CORE_LOG_H_
#define CONTACTS_GATEWAY_SERVER_CORE_LOG_H_

#include <string>
#include <string_view>

#include "absl/time/time.h"

namespace contacts::gateway {

enum class Severity { kDebug, kInfo, kWarning, kError };

// What a line is about; empty fields are left out of it. Every member has an initializer, so that
// designated initializers may leave any out.
struct LogContext {
  std::string request_id{};  // the caller's x-request-id, or one the gateway made up
  std::string stream_id{};
  std::string list_id{};
  std::string account_id{};
  std::string trace_id{};  // W3C trace context (core/trace.h): the caller's trace, or a new one
  std::string span_id{};   // the stream's own span
};

// One JSON object per line on stdout:
//   {"ts":"2026-11-27T09:00:00.123Z","severity":"INFO","msg":"…","request_id":"…","stream_id":"…",…}
// Lines below the minimum severity are dropped. Thread-safe; lines never interleave.
// Never pass a secret.
void Log(Severity severity, std::string_view message, const LogContext& context = {});
void SetMinLogSeverity(Severity severity);

// The ready line ("listening on …") that scripts and tests wait for: INFO, written whatever the
// minimum severity.
void LogReady(std::string_view message);

// The line Log writes, without the newline.
std::string FormatLogLine(absl::Time time, Severity severity, std::string_view message,
                          const LogContext& context);

// Appends `text` as a JSON string (quoted): ", \ and control characters escaped, bytes that are
// not valid UTF-8 replaced by U+FFFD.
void AppendJsonString(std::string_view text, std::string* out);

}  // namespace contacts::gateway

#endif  // CONTACTS_GATEWAY_SERVER_CORE_LOG_H_
