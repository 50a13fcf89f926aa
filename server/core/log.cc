#include "server/core/log.h"

#include <atomic>
#include <cstdio>

#include "absl/strings/str_format.h"
#include "absl/time/clock.h"

namespace contacts::gateway {
namespace {

std::atomic<Severity> min_severity{Severity::kInfo};
constexpr const char* kNames[] = {"DEBUG", "INFO", "WARNING", "ERROR"};

// The length of the valid UTF-8 sequence at the start of `s`, or 0 (RFC 3629: no overlong forms,
// no surrogates, nothing above U+10FFFF).
size_t Utf8Length(std::string_view s) {
  auto byte = [&](size_t i) { return static_cast<unsigned char>(s[i]); };
  auto continuation = [&](size_t i) { return i < s.size() && (byte(i) & 0xC0) == 0x80; };
  unsigned char c = byte(0);
  if (c < 0x80) return 1;
  if (c >= 0xC2 && c <= 0xDF) return continuation(1) ? 2 : 0;
  if (c >= 0xE0 && c <= 0xEF) {
    if (!continuation(1) || !continuation(2)) return 0;
    if (c == 0xE0 && byte(1) < 0xA0) return 0;   // overlong
    if (c == 0xED && byte(1) >= 0xA0) return 0;  // surrogate
    return 3;
  }
  if (c >= 0xF0 && c <= 0xF4) {
    if (!continuation(1) || !continuation(2) || !continuation(3)) return 0;
    if (c == 0xF0 && byte(1) < 0x90) return 0;   // overlong
    if (c == 0xF4 && byte(1) >= 0x90) return 0;  // above U+10FFFF
    return 4;
  }
  return 0;
}

void AppendField(std::string_view key, std::string_view value, std::string* out) {
  if (value.empty()) return;
  *out += ',';
  AppendJsonString(key, out);
  *out += ':';
  AppendJsonString(value, out);
}

void Write(std::string line) {
  line += '\n';
  flockfile(stdout);
  std::fwrite(line.data(), 1, line.size(), stdout);
  std::fflush(stdout);
  funlockfile(stdout);
}

}  // namespace

void AppendJsonString(std::string_view text, std::string* out) {
  *out += '"';
  while (!text.empty()) {
    unsigned char c = static_cast<unsigned char>(text.front());
    size_t length = Utf8Length(text);
    if (length == 0) {
      *out += "\xEF\xBF\xBD";  // U+FFFD
      length = 1;
    } else if (c == '"' || c == '\\') {
      *out += '\\';
      *out += static_cast<char>(c);
    } else if (c == '\n') {
      *out += "\\n";
    } else if (c == '\r') {
      *out += "\\r";
    } else if (c == '\t') {
      *out += "\\t";
    } else if (c < 0x20 || c == 0x7F) {
      *out += absl::StrFormat("\\u%04x", c);
    } else {
      out->append(text.substr(0, length));
    }
    text.remove_prefix(length);
  }
  *out += '"';
}

std::string FormatLogLine(absl::Time time, Severity severity, std::string_view message,
                          const LogContext& context) {
  std::string line = "{\"ts\":\"";
  line += absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", time, absl::UTCTimeZone());
  line += "\",\"severity\":\"";
  line += kNames[static_cast<int>(severity)];
  line += "\",\"msg\":";
  AppendJsonString(message, &line);
  AppendField("request_id", context.request_id, &line);
  AppendField("stream_id", context.stream_id, &line);
  AppendField("list_id", context.list_id, &line);
  AppendField("account_id", context.account_id, &line);
  AppendField("trace_id", context.trace_id, &line);
  AppendField("span_id", context.span_id, &line);
  line += '}';
  return line;
}

void SetMinLogSeverity(Severity severity) { min_severity = severity; }

void Log(Severity severity, std::string_view message, const LogContext& context) {
  if (severity < min_severity.load(std::memory_order_relaxed)) return;
  Write(FormatLogLine(absl::Now(), severity, message, context));
}

void LogReady(std::string_view message) {
  Write(FormatLogLine(absl::Now(), Severity::kInfo, message, {}));
}

}  // namespace contacts::gateway
