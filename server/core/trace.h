#ifndef CONTACTS_GATEWAY_SERVER_CORE_TRACE_H_
#define CONTACTS_GATEWAY_SERVER_CORE_TRACE_H_

// W3C Trace Context (https://www.w3.org/TR/trace-context/): the `traceparent` and `tracestate` a
// caller sends are validated, the stream's log lines name the trace, and every upstream request
// carries the same trace with a span of its own. No tracing SDK: only the propagation format.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace contacts::gateway {

struct TraceContext {
  std::string trace_id;    // 32 lower-case hex digits, not all zero
  std::string span_id;     // 16 lower-case hex digits, not all zero: the span this context names
  uint8_t flags = 0;       // trace-flags (bit 0: sampled)
  std::string tracestate;  // vendor data, forwarded unchanged ("" when none or invalid)

  // The caller's context, or nullopt when `traceparent` is missing or malformed (version "ff",
  // wrong lengths, upper-case or non-hex digits, an all-zero id; a future version's extra fields
  // are allowed). An invalid tracestate alone is dropped (over 512 bytes, or not printable ASCII).
  static std::optional<TraceContext> Parse(std::string_view traceparent,
                                           std::string_view tracestate);
  // A new trace: random ids, sampled.
  static TraceContext New();

  // The same trace with a new random span (this context's span becomes its parent).
  TraceContext Child() const;
  // "00-<trace_id>-<span_id>-<flags>".
  std::string Traceparent() const;
};

// `bytes` random bytes as lower-case hex, never all zero (a thread-local generator).
std::string RandomHex(size_t bytes);

}  // namespace contacts::gateway

#endif  // CONTACTS_GATEWAY_SERVER_CORE_TRACE_H_
