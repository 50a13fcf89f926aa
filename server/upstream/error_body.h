#ifndef CONTACTS_GATEWAY_SERVER_UPSTREAM_ERROR_BODY_H_
#define CONTACTS_GATEWAY_SERVER_UPSTREAM_ERROR_BODY_H_

// What an upstream body says when it is not the page asked for: the upstream's own error message,
// and the errors the page parser reports about a body it cannot read (error paths only).

#include <cstddef>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "simdjson.h"

namespace contacts::gateway {

// Longest message ParseErrorMessage returns, in bytes.
inline constexpr size_t kMaxUpstreamMessageBytes = 300;

// A human-readable message from an upstream error body: the `errors[].msg` entries (Kore.ai's
// usual shape {"errors":[{"msg":"Invalid JWT token","code":4002}]}) joined with "; ", else the
// top-level "message", else the top-level "status"; "" when the body has none of them or is not
// JSON. Control characters are dropped and the result is cut to at most kMaxUpstreamMessageBytes
// bytes (at a UTF-8 character boundary). Never fails.
std::string ParseErrorMessage(std::string_view body);

// The top-level facts of a body that may be an error: its `status` (as text, when present) and
// the message above.
struct ErrorFacts {
  bool has_status = false;
  std::string status;   // the top-level "status" as text (a non-string is kept as JSON text)
  std::string message;  // what ParseErrorMessage returns
};
ErrorFacts ReadErrorFacts(std::string_view body);

// kInternal "upstream page: status \"<status>\": <message>".
absl::Status StatusFailure(const ErrorFacts& facts);

// A JSON error of `body` described by `text`: kUnavailable ("truncated body: ...", worth another
// attempt) when the body stops inside a string or with objects or arrays still open, else
// kInternal.
absl::Status JsonErrorStatus(std::string_view body, std::string text);

// A short, printable excerpt of `body` from `offset`, for error messages.
std::string Snippet(std::string_view body, size_t offset);

// simdjson's name of `error` (e.g. "UTF8_ERROR").
const char* ErrorName(simdjson::error_code error);

}  // namespace contacts::gateway

#endif  // CONTACTS_GATEWAY_SERVER_UPSTREAM_ERROR_BODY_H_
