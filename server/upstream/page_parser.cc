#include "server/upstream/page_parser.h"

#include <charconv>
#include <cmath>
#include <cstring>
#include <optional>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "server/core/encoding.h"
#include "server/upstream/error_body.h"
#include "server/upstream/timestamp.h"
#include "simdjson.h"

namespace contacts::gateway {
namespace {

namespace od = simdjson::ondemand;

std::string_view Trim(std::string_view s) { return AsStd(absl::StripAsciiWhitespace(AsAbsl(s))); }

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  return absl::EqualsIgnoreCase(AsAbsl(a), AsAbsl(b));
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
          absl::StrCat("upstream page: trailing content after the JSON object at byte ",
                       static_cast<size_t>(trailing - body_.data()), ": '",
                       AsAbsl(Snippet(body_, static_cast<size_t>(trailing - body_.data()))), "'"));
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
    std::string text = absl::StrCat(
        "upstream page: ", AsAbsl(where), AsAbsl(where.empty() ? "" : ": "), "not valid JSON (",
        AsAbsl(ErrorName(error)), ": ", AsAbsl(simdjson::error_message(error)), ")");
    const char* location = nullptr;
    if (doc_.current_location().get(location) == simdjson::SUCCESS && location >= body_.data() &&
        location <= body_.data() + body_.size()) {
      const auto offset = static_cast<size_t>(location - body_.data());
      text.append(absl::StrCat(" near byte ", offset, ": '", AsAbsl(Snippet(body_, offset)), "'"));
    }
    return JsonErrorStatus(body_, std::move(text));
  }

  // `where` holds a value that is valid JSON but of the wrong kind.
  absl::Status ShapeError(std::string_view where, std::string_view expected) {
    return absl::InternalError(
        absl::StrCat("upstream page: ", AsAbsl(where), ": expected ", AsAbsl(expected)));
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
    return absl::StrCat(AsAbsl(results_path), "[", index, "]", AsAbsl(field.empty() ? "" : "."),
                        AsAbsl(field));
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
    if (error) return JsonError(absl::StrCat(AsAbsl(prefix), AsAbsl(name)), error);
    switch (type) {
      case od::json_type::null: {
        if ((error = CheckAtom(value, type)))
          return JsonError(absl::StrCat(AsAbsl(prefix), AsAbsl(name)), error);
        out->reset();
        return absl::OkStatus();
      }
      case od::json_type::number: {
        od::number number;
        if ((error = value.get_number().get(number))) {
          return ValueError(absl::StrCat(AsAbsl(prefix), AsAbsl(name)), error, kExpected);
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
        return ShapeError(absl::StrCat(AsAbsl(prefix), AsAbsl(name)), kExpected);
      }
      case od::json_type::string: {
        std::string_view text;
        if ((error = value.get_string().get(text)))
          return JsonError(absl::StrCat(AsAbsl(prefix), AsAbsl(name)), error);
        text = Trim(text);
        if (text.empty()) {
          out->reset();
          return absl::OkStatus();
        }
        int64_t parsed = 0;
        const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), parsed);
        if (ec != std::errc() || end != text.data() + text.size()) {
          return ShapeError(absl::StrCat(AsAbsl(prefix), AsAbsl(name)), kExpected);
        }
        *out = parsed;
        return absl::OkStatus();
      }
      default:
        return WrongKind(value, type, absl::StrCat(AsAbsl(prefix), AsAbsl(name)), kExpected);
    }
  }

  // A bool, "true"/"false"/"1"/"0" (any case), 0/1, or null/"" (-> nullopt).
  absl::Status ReadHasMore(od::value& value, std::string_view prefix, std::optional<bool>* out) {
    constexpr std::string_view kExpected = "a boolean, \"true\"/\"false\", 0/1 or null";
    const std::string where = absl::StrCat(AsAbsl(prefix), "hasMore");
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
      return absl::InternalError(absl::StrCat("upstream page: ", AsAbsl(path), ": ", count,
                                              " contacts, more than the limit of ",
                                              kMaxContactsPerPage));
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
        return absl::InternalError(absl::StrCat("upstream page: ", AsAbsl(path), ": more than ",
                                                kMaxContactsPerPage, " contacts"));
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
                  absl::StrCat("at most ", kMaxContactIdBytes, " bytes, got ", id.size()));
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
                  absl::StrCat("at most ", kMaxPhoneNumberBytes, " bytes, got ", phone.size()));
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
        if (absl::ascii_isdigit(static_cast<unsigned char>(text[0])) &&
            text.size() < 19) {  // digits only: epoch milliseconds
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
    return JsonErrorStatus(
        body, absl::StrCat("upstream page: not valid JSON (", AsAbsl(ErrorName(error)), ": ",
                           AsAbsl(simdjson::error_message(error)), ")"));
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

}  // namespace contacts::gateway
