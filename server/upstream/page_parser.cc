#include "server/upstream/page_parser.h"

#include <charconv>
#include <cmath>
#include <cstring>
#include <initializer_list>
#include <optional>
#include <utility>

#include "absl/status/status.h"
#include "simdjson.h"

namespace contacts::gateway {
namespace {

namespace od = simdjson::ondemand;

// google.protobuf.Timestamp's range: 0001-01-01T00:00:00Z .. 9999-12-31T23:59:59.999999999Z.
constexpr int64_t kMinTimestampSeconds = -62135596800;
constexpr int64_t kMaxTimestampSeconds = 253402300799;
// Longest snippet of the body quoted in an error message.
constexpr size_t kSnippetBytes = 24;

// ---------------------------------------------------------------------------------------------
// Small text helpers (error paths only, except where noted).

std::string Cat(std::initializer_list<std::string_view> parts) {
  size_t size = 0;
  for (std::string_view part : parts) size += part.size();
  std::string out;
  out.reserve(size);
  for (std::string_view part : parts) out.append(part.data(), part.size());
  return out;
}

std::string Num(size_t n) { return std::to_string(n); }

bool IsSpace(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

std::string_view Trim(std::string_view s) {
  while (!s.empty() && IsSpace(s.front())) s.remove_prefix(1);
  while (!s.empty() && IsSpace(s.back())) s.remove_suffix(1);
  return s;
}

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    char x = a[i];
    char y = b[i];
    if (x >= 'A' && x <= 'Z') x = static_cast<char>(x - 'A' + 'a');
    if (y >= 'A' && y <= 'Z') y = static_cast<char>(y - 'A' + 'a');
    if (x != y) return false;
  }
  return true;
}

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

// A body cut off on the way is kUnavailable (worth another attempt, and the caller may resume);
// any other JSON error is kInternal.
absl::Status JsonErrorStatus(std::string_view body, std::string text) {
  if (EndsInsideTheDocument(body)) return absl::UnavailableError(Cat({"truncated body: ", text}));
  return absl::InternalError(text);
}

// ---------------------------------------------------------------------------------------------
// Timestamps (hot path).

// The digit value of c, or a value above 9 if c is not a digit.
inline unsigned DigitValue(char c) {
  return static_cast<unsigned>(static_cast<unsigned char>(c)) - unsigned{'0'};
}

inline bool IsDigit(char c) { return DigitValue(c) <= 9; }

inline bool IsLeapYear(int year) { return (year % 4 == 0 && year % 100 != 0) || year % 400 == 0; }

// Parses "hh:mm" or "hhmm" (the whole of text) into seconds; false if malformed.
bool ParseOffset(const char* p, size_t size, int* seconds) {
  unsigned h0, h1, m0, m1;
  if (size == 5 && p[2] == ':') {
    h0 = DigitValue(p[0]), h1 = DigitValue(p[1]), m0 = DigitValue(p[3]), m1 = DigitValue(p[4]);
  } else if (size == 4) {
    h0 = DigitValue(p[0]), h1 = DigitValue(p[1]), m0 = DigitValue(p[2]), m1 = DigitValue(p[3]);
  } else {
    return false;
  }
  if ((h0 > 9) | (h1 > 9) | (m0 > 9) | (m1 > 9)) return false;
  const unsigned hours = h0 * 10 + h1;
  const unsigned minutes = m0 * 10 + m1;
  if (hours > 23 || minutes > 59) return false;
  *seconds = static_cast<int>(hours * 3600 + minutes * 60);
  return true;
}

inline uint64_t Load8(const char* p) {
  uint64_t v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}

// True if the bytes of v that mask selects are all ASCII digits ('0'..'9').
inline bool DigitsAt(uint64_t v, uint64_t mask) {
  const uint64_t x = (v & mask) | (0x3030303030303030ULL & ~mask);  // others read as '0'
  return ((x & 0xF0F0F0F0F0F0F0F0ULL) |
          (((x + 0x0606060606060606ULL) & 0xF0F0F0F0F0F0F0F0ULL) >> 4)) == 0x3333333333333333ULL;
}

inline int Byte(uint64_t v, int index) { return static_cast<int>((v >> (8 * index)) & 0xFF); }

// Hot path: two per contact. The fixed "YYYY-MM-DDThh:mm" prefix is checked eight bytes at a
// time (SWAR, little-endian).
bool ParseTimestampParts(std::string_view text, int64_t* seconds, int32_t* nanos) {
  static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "SWAR code assumes little-endian");
  const size_t n = text.size();
  if (n < 19) return false;
  const char* p = text.data();
  const uint64_t a = Load8(p);      // "YYYY-MM-"
  const uint64_t b = Load8(p + 8);  // "DDThh:mm"
  constexpr uint64_t kDigitsA = 0x00FFFF00FFFFFFFFULL;
  constexpr uint64_t kDigitsB = 0xFFFF00FFFF00FFFFULL;
  const char t = p[10];
  // Every check is evaluated (no branches): '&' on bools, the calls made first.
  const bool digits_a = DigitsAt(a, kDigitsA);
  const bool digits_b = DigitsAt(b, kDigitsB);
  const bool digit_s0 = IsDigit(p[17]);
  const bool digit_s1 = IsDigit(p[18]);
  const bool shape_ok = digits_a & digits_b & digit_s0 & digit_s1 &
                        ((a & 0xFF0000FF00000000ULL) == 0x2D00002D00000000ULL) &
                        ((b & 0x0000FF0000000000ULL) == 0x00003A0000000000ULL) &
                        ((t == 'T') | (t == 't') | (t == ' ')) & (p[16] == ':');
  if (!shape_ok) return false;
  // Per-byte digit values; separators first read as '0' so that no byte borrows.
  const uint64_t da =
      ((a & kDigitsA) | (0x3030303030303030ULL & ~kDigitsA)) - 0x3030303030303030ULL;
  const uint64_t db =
      ((b & kDigitsB) | (0x3030303030303030ULL & ~kDigitsB)) - 0x3030303030303030ULL;
  const int year = Byte(da, 0) * 1000 + Byte(da, 1) * 100 + Byte(da, 2) * 10 + Byte(da, 3);
  const int month = Byte(da, 5) * 10 + Byte(da, 6);
  const int day = Byte(db, 0) * 10 + Byte(db, 1);
  const int hour = Byte(db, 3) * 10 + Byte(db, 4);
  const int minute = Byte(db, 6) * 10 + Byte(db, 7);
  const int second = static_cast<int>(DigitValue(p[17]) * 10 + DigitValue(p[18]));
  static constexpr int kDaysInMonth[13] = {0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  static constexpr int kDaysBeforeMonth[13] = {0,   0,   31,  59,  90,  120, 151,
                                               181, 212, 243, 273, 304, 334};
  if (year < 1 || month < 1 || month > 12 || day < 1 || hour > 23 || minute > 59 || second > 59) {
    return false;
  }
  const bool leap = IsLeapYear(year);
  if (day > kDaysInMonth[month] + (month == 2 && leap)) return false;

  size_t i = 19;
  int32_t fraction = 0;
  if (i < n && (p[i] == '.' || p[i] == ',')) {
    ++i;
    const size_t start = i;
    while (i < n && IsDigit(p[i])) {
      if (i - start == 9) return false;  // finer than nanoseconds
      fraction = fraction * 10 + static_cast<int32_t>(DigitValue(p[i]));
      ++i;
    }
    if (i == start) return false;
    static constexpr int32_t kScale[10] = {1,     100000000, 10000000, 1000000, 100000,
                                           10000, 1000,      100,      10,      1};
    fraction *= kScale[i - start];
  }
  int offset_seconds = 0;
  if (i < n) {
    const char zone = p[i];
    if ((zone == 'Z' || zone == 'z') && i + 1 == n) {
      // UTC
    } else if (zone == '+' || zone == '-') {
      if (!ParseOffset(p + i + 1, n - i - 1, &offset_seconds)) return false;
      if (zone == '-') offset_seconds = -offset_seconds;
    } else {
      return false;
    }
  }
  // Days since 1970-01-01: whole years since 0001-01-01 with their leap days, minus 719162
  // (the days from 0001-01-01 to 1970-01-01).
  const int64_t years = year - 1;
  const int64_t days = years * 365 + years / 4 - years / 100 + years / 400 +
                       kDaysBeforeMonth[month] + (month > 2 && leap) + day - 1 - 719162;
  const int64_t result = days * 86400 + hour * 3600 + minute * 60 + second - offset_seconds;
  if (result < kMinTimestampSeconds || result > kMaxTimestampSeconds) return false;
  *seconds = result;
  *nanos = fraction;
  return true;
}

bool EpochMillisToParts(int64_t millis, int64_t* seconds, int32_t* nanos) {
  int64_t s = millis / 1000;
  int64_t ms = millis % 1000;
  if (ms < 0) {
    ms += 1000;
    s -= 1;
  }
  if (s < kMinTimestampSeconds || s > kMaxTimestampSeconds) return false;
  *seconds = s;
  *nanos = static_cast<int32_t>(ms * 1000000);
  return true;
}

bool EpochMillisToParts(double millis, int64_t* seconds, int32_t* nanos) {
  if (!std::isfinite(millis)) return false;
  const double s = std::floor(millis / 1000.0);
  if (s < static_cast<double>(kMinTimestampSeconds) ||
      s > static_cast<double>(kMaxTimestampSeconds)) {
    return false;
  }
  auto n = static_cast<int64_t>(std::llround((millis - s * 1000.0) * 1e6));
  if (n < 0) n = 0;
  if (n > 999999999) n = 999999999;
  *seconds = static_cast<int64_t>(s);
  *nanos = static_cast<int32_t>(n);
  return true;
}

// ---------------------------------------------------------------------------------------------
// Upstream error bodies (error paths only).

struct ErrorFacts {
  bool has_status = false;
  std::string status;   // the top-level "status" as text (a non-string is kept as JSON text)
  std::string message;  // what ParseErrorMessage returns
};

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
  std::string text = Cat({"upstream page: status \"", facts.status, "\""});
  if (!facts.message.empty() && facts.message != facts.status) {
    text.append(": ").append(facts.message);
  }
  return absl::InternalError(text);
}

// ---------------------------------------------------------------------------------------------
// The page reader (hot path).

struct PagingFacts {
  std::optional<int64_t> skip;
  std::optional<int64_t> limit;
  std::optional<bool> has_more;
  std::optional<int64_t> total_pages;
  std::optional<int64_t> total_results;
};

enum class TimeField { kCreate, kUpdate };

// On-demand reads atoms lazily and reports a misspelled one ("tru", "nul") as INCORRECT_TYPE;
// this tells such a token (not JSON at all) from a well-formed value of the wrong kind.
simdjson::error_code CheckAtom(od::value& value, od::json_type type) {
  if (type == od::json_type::null) {
    return Trim(value.raw_json_token()) == "null" ? simdjson::SUCCESS : simdjson::N_ATOM_ERROR;
  }
  if (type == od::json_type::boolean) {
    const std::string_view token = Trim(value.raw_json_token());
    if (token == "true" || token == "false") return simdjson::SUCCESS;
    return token.empty() || token[0] == 't' ? simdjson::T_ATOM_ERROR : simdjson::F_ATOM_ERROR;
  }
  return simdjson::SUCCESS;
}

class PageReader {
 public:
  PageReader(std::string_view body, od::document& doc) : body_(body), doc_(doc) {}

  absl::Status Read(Page* page) {
    od::json_type top_type;
    simdjson::error_code error = doc_.type().get(top_type);
    if (error) return JsonError("", error);
    if (top_type != od::json_type::object) {
      return absl::InternalError("upstream page: expected a JSON object at the top level");
    }
    od::object top;
    if ((error = doc_.get_object().get(top))) return JsonError("", error);

    PagingFacts top_facts;
    PagingFacts data_facts;
    bool have_data_results = false;
    for (auto result : top) {
      od::field field;
      if ((error = std::move(result).get(field))) return JsonError("", error);
      const od::raw_json_string key = field.key();
      od::value& value = field.value();
      absl::Status status;
      if (key == "data") {
        status = ReadData(value, &data_facts, &page->contacts, &have_data_results);
      } else if (key == "results") {
        if (have_data_results) continue;  // data.results wins
        status = ReadResults(value, "results", &page->contacts);
      } else if (key == "status") {
        status = CheckStatus(value);
      } else {
        status = ReadPagingFact(key, value, "", &top_facts);
      }
      if (!status.ok()) return status;
    }
    const char* trailing = nullptr;
    if (doc_.current_location().get(trailing) == simdjson::SUCCESS) {
      return absl::InternalError(
          Cat({"upstream page: trailing content after the JSON object at byte ",
               Num(static_cast<size_t>(trailing - body_.data())), ": '",
               Snippet(body_, static_cast<size_t>(trailing - body_.data())), "'"}));
    }
    page->skip = data_facts.skip ? data_facts.skip : top_facts.skip;
    page->limit = data_facts.limit ? data_facts.limit : top_facts.limit;
    page->has_more = data_facts.has_more ? data_facts.has_more : top_facts.has_more;
    page->total_pages = data_facts.total_pages ? data_facts.total_pages : top_facts.total_pages;
    page->total_results =
        data_facts.total_results ? data_facts.total_results : top_facts.total_results;
    return absl::OkStatus();
  }

  bool status_failed() const { return status_failed_; }

 private:
  // "not valid JSON" (or an I/O-level simdjson error) found while reading `where`.
  absl::Status JsonError(std::string_view where, simdjson::error_code error) {
    std::string text = Cat({"upstream page: ", where, where.empty() ? "" : ": ", "not valid JSON (",
                            ErrorName(error), ": ", simdjson::error_message(error), ")"});
    const char* location = nullptr;
    if (doc_.current_location().get(location) == simdjson::SUCCESS && location >= body_.data() &&
        location <= body_.data() + body_.size()) {
      const auto offset = static_cast<size_t>(location - body_.data());
      text.append(Cat({" near byte ", Num(offset), ": '", Snippet(body_, offset), "'"}));
    }
    return JsonErrorStatus(body_, std::move(text));
  }

  // `where` holds a value that is valid JSON but of the wrong kind.
  absl::Status ShapeError(std::string_view where, std::string_view expected) {
    return absl::InternalError(Cat({"upstream page: ", where, ": expected ", expected}));
  }

  // A value of the wrong kind: a JSON error if it is not even a valid atom, else a shape error.
  absl::Status WrongKind(od::value& value, od::json_type type, std::string_view where,
                         std::string_view expected) {
    simdjson::error_code error = CheckAtom(value, type);
    if (type == od::json_type::number) {
      od::number ignored;
      error = value.get_number().get(ignored);
    }
    if (error && error != simdjson::INCORRECT_TYPE) return JsonError(where, error);
    return ShapeError(where, expected);
  }

  // An error in one value: a shape error for INCORRECT_TYPE, else a JSON error.
  absl::Status ValueError(std::string_view where, simdjson::error_code error,
                          std::string_view expected) {
    if (error == simdjson::INCORRECT_TYPE) return ShapeError(where, expected);
    return JsonError(where, error);
  }

  static std::string ContactPath(std::string_view results_path, size_t index,
                                 std::string_view field) {
    return Cat({results_path, "[", Num(index), "]", field.empty() ? "" : ".", field});
  }

  absl::Status CheckStatus(od::value& value) {
    od::json_type type;
    simdjson::error_code error = value.type().get(type);
    if (error) return JsonError("status", error);
    if (type == od::json_type::null) {
      if ((error = CheckAtom(value, type))) return JsonError("status", error);
      return absl::OkStatus();
    }
    if (type == od::json_type::string) {
      std::string_view text;
      if ((error = value.get_string().get(text))) return JsonError("status", error);
      if (EqualsIgnoreCase(text, "success")) return absl::OkStatus();
    }
    status_failed_ = true;
    return StatusFailure(ReadErrorFacts(body_));
  }

  absl::Status ReadData(od::value& value, PagingFacts* facts, EncodedContacts* contacts,
                        bool* have_results) {
    od::json_type type;
    simdjson::error_code error = value.type().get(type);
    if (error) return JsonError("data", error);
    if (type == od::json_type::null) {
      if ((error = CheckAtom(value, type))) return JsonError("data", error);
      return absl::OkStatus();
    }
    od::object object;
    if ((error = value.get_object().get(object))) return ValueError("data", error, "an object");
    for (auto result : object) {
      od::field field;
      if ((error = std::move(result).get(field))) return JsonError("data", error);
      const od::raw_json_string key = field.key();
      od::value& field_value = field.value();
      absl::Status status;
      if (key == "results") {
        contacts->clear();  // a top-level `results` read earlier loses to this one
        *have_results = true;
        status = ReadResults(field_value, "data.results", contacts);
      } else {
        status = ReadPagingFact(key, field_value, "data.", facts);
      }
      if (!status.ok()) return status;
    }
    return absl::OkStatus();
  }

  absl::Status ReadPagingFact(const od::raw_json_string& key, od::value& value,
                              std::string_view prefix, PagingFacts* facts) {
    if (key == "skip") return ReadInteger(value, prefix, "skip", &facts->skip);
    if (key == "limit") return ReadInteger(value, prefix, "limit", &facts->limit);
    if (key == "hasMore") return ReadHasMore(value, prefix, &facts->has_more);
    if (key == "totalPages") return ReadInteger(value, prefix, "totalPages", &facts->total_pages);
    if (key == "totalResults") {
      return ReadInteger(value, prefix, "totalResults", &facts->total_results);
    }
    return absl::OkStatus();  // unknown: skipped by the iterator
  }

  // A number, a numeric string, or null/"" (-> nullopt).
  absl::Status ReadInteger(od::value& value, std::string_view prefix, std::string_view name,
                           std::optional<int64_t>* out) {
    constexpr std::string_view kExpected = "an integer, a numeric string or null";
    od::json_type type;
    simdjson::error_code error = value.type().get(type);
    if (error) return JsonError(Cat({prefix, name}), error);
    switch (type) {
      case od::json_type::null: {
        if ((error = CheckAtom(value, type))) return JsonError(Cat({prefix, name}), error);
        out->reset();
        return absl::OkStatus();
      }
      case od::json_type::number: {
        od::number number;
        if ((error = value.get_number().get(number))) {
          return ValueError(Cat({prefix, name}), error, kExpected);
        }
        if (number.is_int64()) {
          *out = number.get_int64();
          return absl::OkStatus();
        }
        if (number.is_double()) {
          const double d = number.get_double();
          if (d == std::floor(d) && d >= -9.2e18 && d <= 9.2e18) {
            *out = static_cast<int64_t>(d);
            return absl::OkStatus();
          }
        }
        return ShapeError(Cat({prefix, name}), kExpected);
      }
      case od::json_type::string: {
        std::string_view text;
        if ((error = value.get_string().get(text))) return JsonError(Cat({prefix, name}), error);
        text = Trim(text);
        if (text.empty()) {
          out->reset();
          return absl::OkStatus();
        }
        int64_t parsed = 0;
        const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), parsed);
        if (ec != std::errc() || end != text.data() + text.size()) {
          return ShapeError(Cat({prefix, name}), kExpected);
        }
        *out = parsed;
        return absl::OkStatus();
      }
      default:
        return WrongKind(value, type, Cat({prefix, name}), kExpected);
    }
  }

  // A bool, "true"/"false"/"1"/"0" (any case), 0/1, or null/"" (-> nullopt).
  absl::Status ReadHasMore(od::value& value, std::string_view prefix, std::optional<bool>* out) {
    constexpr std::string_view kExpected = "a boolean, \"true\"/\"false\", 0/1 or null";
    const std::string where = Cat({prefix, "hasMore"});
    od::json_type type;
    simdjson::error_code error = value.type().get(type);
    if (error) return JsonError(where, error);
    switch (type) {
      case od::json_type::boolean: {
        bool b = false;
        if ((error = CheckAtom(value, type)) || (error = value.get_bool().get(b))) {
          return JsonError(where, error);
        }
        *out = b;
        return absl::OkStatus();
      }
      case od::json_type::null: {
        if ((error = CheckAtom(value, type))) return JsonError(where, error);
        out->reset();
        return absl::OkStatus();
      }
      case od::json_type::number: {
        int64_t n = 0;
        if ((error = value.get_int64().get(n))) return ValueError(where, error, kExpected);
        if (n != 0 && n != 1) return ShapeError(where, kExpected);
        *out = n == 1;
        return absl::OkStatus();
      }
      case od::json_type::string: {
        std::string_view text;
        if ((error = value.get_string().get(text))) return JsonError(where, error);
        text = Trim(text);
        if (text.empty()) {
          out->reset();
        } else if (EqualsIgnoreCase(text, "true") || text == "1") {
          *out = true;
        } else if (EqualsIgnoreCase(text, "false") || text == "0") {
          *out = false;
        } else {
          return ShapeError(where, kExpected);
        }
        return absl::OkStatus();
      }
      default:
        return WrongKind(value, type, where, kExpected);
    }
  }

  absl::Status ReadResults(od::value& value, std::string_view path, EncodedContacts* out) {
    od::json_type type;
    simdjson::error_code error = value.type().get(type);
    if (error) return JsonError(path, error);
    if (type == od::json_type::null) {
      if ((error = CheckAtom(value, type))) return JsonError(path, error);
      return absl::OkStatus();
    }
    od::array array;
    if ((error = value.get_array().get(array))) return ValueError(path, error, "an array or null");
    // Counting is a cheap walk over the structural index and lets us allocate once.
    size_t count = 0;
    if ((error = array.count_elements().get(count))) return JsonError(path, error);
    if (count > kMaxContactsPerPage) {
      return absl::InternalError(
          Cat({"upstream page: ", path, ": ", Num(count), " contacts, more than the limit of ",
               Num(kMaxContactsPerPage)}));
    }
    // Encoded contacts are smaller than their JSON; half the body is a good first guess.
    out->Reserve(count, body_.size() / 2);
    size_t index = 0;
    for (auto element : array) {
      od::value contact_value;
      if ((error = std::move(element).get(contact_value))) {
        return JsonError(ContactPath(path, index, ""), error);
      }
      if (index >= kMaxContactsPerPage) {  // count_elements already bounds this; kept as a guard
        return absl::InternalError(
            Cat({"upstream page: ", path, ": more than ", Num(kMaxContactsPerPage), " contacts"}));
      }
      EncodedContacts::Fields contact;
      absl::Status status = ReadContact(contact_value, path, index, &contact);
      if (!status.ok()) return status;
      out->Append(contact);
      ++index;
    }
    return absl::OkStatus();
  }

  // Reads a string, or a number as written, into *text. null gives *is_null = true.
  simdjson::error_code ReadText(od::value& value, std::string_view* text, bool* is_null,
                                bool* wrong_type) {
    *is_null = false;
    *wrong_type = false;
    // Fast path: a string (a failed get_string consumes nothing).
    simdjson::error_code error = value.get_string().get(*text);
    if (error != simdjson::INCORRECT_TYPE) return error;
    od::json_type type;
    if ((error = value.type().get(type))) return error;
    switch (type) {
      case od::json_type::string:
        return value.get_string().get(*text);
      case od::json_type::number: {
        // JSON spells an integer one way only, so the token is its decimal text.
        const std::string_view token = Trim(value.raw_json_token());
        od::number number;
        if ((error = value.get_number().get(number))) return error;  // validates the token
        *text = token;
        return simdjson::SUCCESS;
      }
      case od::json_type::null: {
        if ((error = CheckAtom(value, type))) return error;
        *is_null = true;
        return simdjson::SUCCESS;
      }
      default:
        if ((error = CheckAtom(value, type))) return error;  // tell "tru" (not JSON) from true
        *wrong_type = true;
        return simdjson::SUCCESS;
    }
  }

  // Fills *contact; its views point into the body or the parser's string buffer.
  absl::Status ReadContact(od::value& value, std::string_view path, size_t index,
                           EncodedContacts::Fields* contact) {
    od::object object;
    simdjson::error_code error = value.get_object().get(object);
    if (error) return ValueError(ContactPath(path, index, ""), error, "an object");
    bool have_id = false;
    for (auto result : object) {
      od::field field;
      if ((error = std::move(result).get(field))) {
        return JsonError(ContactPath(path, index, ""), error);
      }
      const od::raw_json_string key = field.key();
      od::value& field_value = field.value();
      // Dispatch on the first byte; only then compare the whole key.
      switch (key.raw()[0]) {
        case '_':
          if (key == "_id") {
            std::string_view id;
            bool is_null = false;
            bool wrong_type = false;
            if ((error = ReadText(field_value, &id, &is_null, &wrong_type))) {
              return ValueError(ContactPath(path, index, "_id"), error, "a non-empty string");
            }
            if (is_null || wrong_type || id.empty()) {
              return ShapeError(ContactPath(path, index, "_id"), "a non-empty string");
            }
            if (id.size() > kMaxContactIdBytes) {
              return ShapeError(
                  ContactPath(path, index, "_id"),
                  Cat({"at most ", Num(kMaxContactIdBytes), " bytes, got ", Num(id.size())}));
            }
            contact->id = id;
            have_id = true;
          }
          break;
        case 'p':
          if (key == "phoneNumber") {
            std::string_view phone;
            bool is_null = false;
            bool wrong_type = false;
            if ((error = ReadText(field_value, &phone, &is_null, &wrong_type))) {
              return ValueError(ContactPath(path, index, "phoneNumber"), error,
                                "a string, a number or null");
            }
            if (wrong_type) {
              return ShapeError(ContactPath(path, index, "phoneNumber"),
                                "a string, a number or null");
            }
            if (phone.size() > kMaxPhoneNumberBytes) {
              return ShapeError(
                  ContactPath(path, index, "phoneNumber"),
                  Cat({"at most ", Num(kMaxPhoneNumberBytes), " bytes, got ", Num(phone.size())}));
            }
            contact->phone_number = is_null ? std::string_view() : phone;
          }
          break;
        case 'c':
          if (key == "createdAt") {
            absl::Status status = ReadTime(field_value, path, index, TimeField::kCreate, contact);
            if (!status.ok()) return status;
          }
          break;
        case 'u':
          if (key == "updatedAt") {
            absl::Status status = ReadTime(field_value, path, index, TimeField::kUpdate, contact);
            if (!status.ok()) return status;
          }
          break;
        default:
          break;  // unknown field: skipped by the iterator
      }
    }
    if (!have_id) return ShapeError(ContactPath(path, index, "_id"), "a non-empty string");
    return absl::OkStatus();
  }

  // ISO-8601 string, epoch milliseconds (number or digit string), or null/"" (unset).
  absl::Status ReadTime(od::value& value, std::string_view path, size_t index, TimeField which,
                        EncodedContacts::Fields* contact) {
    constexpr std::string_view kExpected =
        "an ISO-8601 timestamp, epoch milliseconds or null (years 1..9999)";
    const std::string_view name = which == TimeField::kCreate ? "createdAt" : "updatedAt";
    int64_t seconds = 0;
    int32_t nanos = 0;
    bool ok = false;
    // Fast path: a string (a failed get_string consumes nothing).
    std::string_view text;
    simdjson::error_code error = value.get_string().get(text);
    od::json_type type = od::json_type::string;
    if (error == simdjson::INCORRECT_TYPE) {
      error = value.type().get(type);
    }
    if (error) return JsonError(ContactPath(path, index, name), error);
    switch (type) {
      case od::json_type::string: {
        if (text.empty()) {
          ClearTime(which, contact);
          return absl::OkStatus();
        }
        if (IsDigit(text[0]) && text.size() < 19) {  // digits only: epoch milliseconds
          int64_t millis = 0;
          const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), millis);
          ok = ec == std::errc() && end == text.data() + text.size() &&
               EpochMillisToParts(millis, &seconds, &nanos);
        } else {
          ok = ParseTimestampParts(text, &seconds, &nanos);
        }
        break;
      }
      case od::json_type::number: {
        int64_t millis = 0;
        double fractional = 0;
        if (value.get_int64().get(millis) == simdjson::SUCCESS) {
          ok = EpochMillisToParts(millis, &seconds, &nanos);
        } else if ((error = value.get_double().get(fractional)) == simdjson::SUCCESS) {
          ok = EpochMillisToParts(fractional, &seconds, &nanos);
        } else {
          return ValueError(ContactPath(path, index, name), error, kExpected);
        }
        break;
      }
      case od::json_type::null: {
        if ((error = CheckAtom(value, type))) {
          return JsonError(ContactPath(path, index, name), error);
        }
        ClearTime(which, contact);
        return absl::OkStatus();
      }
      default:
        return WrongKind(value, type, ContactPath(path, index, name), kExpected);
    }
    if (!ok) return ShapeError(ContactPath(path, index, name), kExpected);
    Time(which, contact) = EncodedContacts::Time{seconds, nanos};
    return absl::OkStatus();
  }

  static std::optional<EncodedContacts::Time>& Time(TimeField which,
                                                    EncodedContacts::Fields* contact) {
    return which == TimeField::kCreate ? contact->create_time : contact->update_time;
  }
  static void ClearTime(TimeField which, EncodedContacts::Fields* contact) {
    Time(which, contact).reset();
  }

  std::string_view body_;
  od::document& doc_;
  bool status_failed_ = false;
};

static_assert(kPagePaddingBytes >= simdjson::SIMDJSON_PADDING);

absl::StatusOr<Page> ParsePageWith(od::parser& parser, std::string& body) {
  body.reserve(body.size() + kPagePaddingBytes);
  const simdjson::padded_string_view json(body.data(), body.size(), body.capacity());
  od::document doc;
  simdjson::error_code error = parser.iterate(json).get(doc);
  if (error) {
    return JsonErrorStatus(body, Cat({"upstream page: not valid JSON (", ErrorName(error), ": ",
                                      simdjson::error_message(error), ")"}));
  }
  PageReader reader(body, doc);
  Page page;
  absl::Status status = reader.Read(&page);
  if (!status.ok()) {
    if (!reader.status_failed()) {
      // A failure answer may carry a `data` of any shape, and `status` may come after it: an
      // upstream-declared failure explains the problem better than the shape error does.
      const ErrorFacts facts = ReadErrorFacts(body);
      if (facts.has_status && !EqualsIgnoreCase(facts.status, "success")) {
        return StatusFailure(facts);
      }
    }
    return status;
  }
  return page;
}

}  // namespace

absl::StatusOr<Page> ParsePage(std::string& body) {
  thread_local od::parser parser;
  absl::StatusOr<Page> page = ParsePageWith(parser, body);
  if (parser.capacity() > kRetainedParserBytes) parser = od::parser();
  return page;
}

std::string ParseErrorMessage(std::string_view body) { return ReadErrorFacts(body).message; }

bool ParseTimestamp(std::string_view text, google::protobuf::Timestamp* out) {
  int64_t seconds = 0;
  int32_t nanos = 0;
  if (!ParseTimestampParts(text, &seconds, &nanos)) return false;
  out->set_seconds(seconds);
  out->set_nanos(nanos);
  return true;
}

}  // namespace contacts::gateway
