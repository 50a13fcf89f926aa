#include "server/core/trace.h"

#include <random>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace contacts::gateway {
namespace {

constexpr size_t kMaxTracestateBytes = 512;

bool IsLowerHex(std::string_view text) {
  for (char c : text) {
    if (!absl::ascii_isdigit(static_cast<unsigned char>(c)) && (c < 'a' || c > 'f')) return false;
  }
  return true;
}

bool AllZero(std::string_view text) {
  return text.find_first_not_of('0') == std::string_view::npos;
}

}  // namespace

std::string RandomHex(size_t bytes) {
  thread_local std::mt19937_64 random(std::random_device{}());
  std::string out;
  do {
    out.clear();
    for (size_t i = 0; i < bytes; i += 8) {
      absl::StrAppend(&out, absl::Hex(random(), absl::kZeroPad16));
    }
    out.resize(2 * bytes);
  } while (AllZero(out));
  return out;
}

std::optional<TraceContext> TraceContext::Parse(std::string_view traceparent,
                                                std::string_view tracestate) {
  // version "-" trace-id "-" parent-id "-" trace-flags, 55 characters for version 00; a later
  // version may append "-" and more.
  if (traceparent.size() < 55 || traceparent[2] != '-' || traceparent[35] != '-' ||
      traceparent[52] != '-') {
    return std::nullopt;
  }
  const std::string_view version = traceparent.substr(0, 2);
  const std::string_view trace_id = traceparent.substr(3, 32);
  const std::string_view span_id = traceparent.substr(36, 16);
  const std::string_view flags = traceparent.substr(53, 2);
  if (!IsLowerHex(version) || version == "ff" || !IsLowerHex(trace_id) || !IsLowerHex(span_id) ||
      !IsLowerHex(flags) || AllZero(trace_id) || AllZero(span_id)) {
    return std::nullopt;
  }
  if (traceparent.size() > 55 && (version == "00" || traceparent[55] != '-')) return std::nullopt;
  TraceContext context;
  context.trace_id = std::string(trace_id);
  context.span_id = std::string(span_id);
  context.flags = static_cast<uint8_t>(std::stoi(std::string(flags), nullptr, 16));
  bool printable = tracestate.size() <= kMaxTracestateBytes;
  for (char c : tracestate) printable = printable && c >= ' ' && c <= '~';
  if (printable) context.tracestate = std::string(tracestate);
  return context;
}

TraceContext TraceContext::New() {
  TraceContext context;
  context.trace_id = RandomHex(16);
  context.span_id = RandomHex(8);
  context.flags = 1;
  return context;
}

TraceContext TraceContext::Child() const {
  TraceContext child = *this;
  child.span_id = RandomHex(8);
  return child;
}

std::string TraceContext::Traceparent() const {
  return absl::StrFormat("00-%s-%s-%02x", trace_id, span_id, flags);
}

}  // namespace contacts::gateway
