#ifndef CONTACTS_GATEWAY_TOOLS_KORE_SIM_TEXT_H_
#define CONTACTS_GATEWAY_TOOLS_KORE_SIM_TEXT_H_

// Small text helpers for kore-sim: URL query strings, numbers and JSON strings. Pure functions.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace contacts::kore_sim {

// Decodes %XX escapes (and '+' as a space when `plus_is_space`); nullopt on a broken escape.
std::optional<std::string> PercentDecode(std::string_view text, bool plus_is_space);

// `a=1&b=x%20y` → {{"a","1"},{"b","x y"}} in order; a name without '=' gets an empty value.
// nullopt when an escape is broken.
using QueryParams = std::vector<std::pair<std::string, std::string>>;
std::optional<QueryParams> ParseQuery(std::string_view query);

// The first value of `name`, or nullptr.
const std::string* FindParam(const QueryParams& params, std::string_view name);

// A whole decimal integer with an optional leading '-'; nothing else (no spaces, no '+').
std::optional<int64_t> ParseInt64(std::string_view text);

// Appends `s` as a JSON string literal, quotes included.
void AppendJsonString(std::string& out, std::string_view s);

// A Kore.ai-style error body: {"errors":[{"msg":"<msg>","code":<code>}]}.
std::string KoreErrorBody(std::string_view msg, int code);

}  // namespace contacts::kore_sim

#endif  // CONTACTS_GATEWAY_TOOLS_KORE_SIM_TEXT_H_
