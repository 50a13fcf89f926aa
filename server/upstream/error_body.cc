#include "server/upstream/error_body.h"

#include "absl/strings/str_cat.h"
#include "server/core/encoding.h"

namespace contacts::gateway {
namespace {

// Longest snippet of the body quoted in an error message.
constexpr size_t kSnippetBytes = 24;

// Drops control characters and cuts to at most max_bytes at a UTF-8 character boundary.
std::string Sanitize(std::string_view text, size_t max_bytes) {
  std::string out;
  out.reserve(text.size() < max_bytes ? text.size() : max_bytes);
  for (char c : text) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f) continue;
    out.push_back(c);
  }
  if (out.size() > max_bytes) {
    size_t cut = max_bytes;
    // Step back over continuation bytes (10xxxxxx) so no character is split.
    while (cut > 0 && (static_cast<unsigned char>(out[cut]) & 0xC0) == 0x80) --cut;
    out.resize(cut);
  }
  return out;
}

// Whether `body` stops inside a string or with objects or arrays still open: cut off on the way.
bool EndsInsideTheDocument(std::string_view body) {
  int depth = 0;
  bool in_string = false, escaped = false;
  for (char c : body) {
    if (in_string) {
      if (escaped) {
        escaped = false;
      } else if (c == '\\') {
        escaped = true;
      } else if (c == '"') {
        in_string = false;
      }
    } else if (c == '"') {
      in_string = true;
    } else if (c == '{' || c == '[') {
      ++depth;
    } else if (c == '}' || c == ']') {
      --depth;
    }
  }
  return in_string || depth > 0;
}

}  // namespace

// A short, printable excerpt of body starting at offset, for error messages.
std::string Snippet(std::string_view body, size_t offset) {
  if (offset >= body.size()) return "";
  std::string_view rest = body.substr(offset, kSnippetBytes);
  std::string out;
  for (char c : rest) {
    const auto u = static_cast<unsigned char>(c);
    out.push_back(u >= 0x20 && u < 0x7f ? c : '?');
  }
  return out;
}

const char* ErrorName(simdjson::error_code error) {
  switch (error) {
    case simdjson::SUCCESS:
      return "SUCCESS";
    case simdjson::CAPACITY:
      return "CAPACITY";
    case simdjson::MEMALLOC:
      return "MEMALLOC";
    case simdjson::TAPE_ERROR:
      return "TAPE_ERROR";
    case simdjson::DEPTH_ERROR:
      return "DEPTH_ERROR";
    case simdjson::STRING_ERROR:
      return "STRING_ERROR";
    case simdjson::T_ATOM_ERROR:
      return "T_ATOM_ERROR";
    case simdjson::F_ATOM_ERROR:
      return "F_ATOM_ERROR";
    case simdjson::N_ATOM_ERROR:
      return "N_ATOM_ERROR";
    case simdjson::NUMBER_ERROR:
      return "NUMBER_ERROR";
    case simdjson::UTF8_ERROR:
      return "UTF8_ERROR";
    case simdjson::EMPTY:
      return "EMPTY";
    case simdjson::UNESCAPED_CHARS:
      return "UNESCAPED_CHARS";
    case simdjson::UNCLOSED_STRING:
      return "UNCLOSED_STRING";
    case simdjson::INCORRECT_TYPE:
      return "INCORRECT_TYPE";
    case simdjson::NUMBER_OUT_OF_RANGE:
      return "NUMBER_OUT_OF_RANGE";
    case simdjson::INCOMPLETE_ARRAY_OR_OBJECT:
      return "INCOMPLETE_ARRAY_OR_OBJECT";
    case simdjson::TRAILING_CONTENT:
      return "TRAILING_CONTENT";
    case simdjson::INSUFFICIENT_PADDING:
      return "INSUFFICIENT_PADDING";
    case simdjson::OUT_OF_BOUNDS:
      return "OUT_OF_BOUNDS";
    case simdjson::OUT_OF_ORDER_ITERATION:
      return "OUT_OF_ORDER_ITERATION";
    default:
      return "ERROR";
  }
}

// A body cut off on the way is kUnavailable (worth another attempt, and the caller may resume);
// any other JSON error is kInternal.
absl::Status JsonErrorStatus(std::string_view body, std::string text) {
  if (EndsInsideTheDocument(body))
    return absl::UnavailableError(absl::StrCat("truncated body: ", AsAbsl(text)));
  return absl::InternalError(text);
}

ErrorFacts ReadErrorFacts(std::string_view body) {
  ErrorFacts facts;
  simdjson::padded_string padded(body.data(), body.size());
  simdjson::dom::parser parser;
  simdjson::dom::element root;
  if (parser.parse(padded).get(root) != simdjson::SUCCESS) return facts;
  simdjson::dom::object object;
  if (root.get_object().get(object) != simdjson::SUCCESS) return facts;

  std::string joined;
  simdjson::dom::array errors;
  if (object.at_key("errors").get_array().get(errors) == simdjson::SUCCESS) {
    for (simdjson::dom::element entry : errors) {
      std::string_view msg;
      if (entry.get_string().get(msg) != simdjson::SUCCESS &&
          entry.at_key("msg").get_string().get(msg) != simdjson::SUCCESS) {
        continue;
      }
      if (msg.empty()) continue;
      if (!joined.empty()) joined.append("; ");
      joined.append(msg.data(), msg.size());
      if (joined.size() > 4 * kMaxUpstreamMessageBytes) break;
    }
  }
  std::string_view text;
  simdjson::dom::element status;
  bool status_is_string = false;
  if (object.at_key("status").get(status) == simdjson::SUCCESS && !status.is_null()) {
    facts.has_status = true;
    if (status.get_string().get(text) == simdjson::SUCCESS) {
      status_is_string = true;
      facts.status = Sanitize(text, 64);
    } else {
      facts.status = Sanitize(simdjson::minify(status), 64);
    }
  }
  if (joined.empty() && object.at_key("message").get_string().get(text) == simdjson::SUCCESS) {
    joined.assign(text.data(), text.size());
  }
  if (joined.empty() && status_is_string) joined = facts.status;
  facts.message = Sanitize(joined, kMaxUpstreamMessageBytes);
  return facts;
}

absl::Status StatusFailure(const ErrorFacts& facts) {
  std::string text = absl::StrCat("upstream page: status \"", AsAbsl(facts.status), "\"");
  if (!facts.message.empty() && facts.message != facts.status) {
    text.append(": ").append(facts.message);
  }
  return absl::InternalError(text);
}

std::string ParseErrorMessage(std::string_view body) { return ReadErrorFacts(body).message; }

}  // namespace contacts::gateway
