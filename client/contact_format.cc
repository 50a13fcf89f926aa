#include "client/contact_format.h"

#include <cstdint>

#include "absl/strings/str_cat.h"

namespace contacts::client {
namespace {

constexpr int64_t kSecondsPerDay = 86400;
constexpr int64_t kNanosPerSecond = 1000000000;

// Floor division and its remainder, for negative times (before 1970).
int64_t FloorDiv(int64_t a, int64_t b) { return a / b - ((a % b != 0) && ((a < 0) != (b < 0))); }

struct CivilDate {
  int64_t year;
  int month;  // 1..12
  int day;    // 1..31
};

// Days since 1970-01-01 → proleptic Gregorian date (Howard Hinnant's civil_from_days).
CivilDate CivilFromDays(int64_t days) {
  days += 719468;
  const int64_t era = FloorDiv(days, 146097);
  const int64_t doe = days - era * 146097;                                    // [0, 146096]
  const int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;  // [0, 399]
  const int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);                // [0, 365]
  const int64_t mp = (5 * doy + 2) / 153;                                     // [0, 11]
  const int day = static_cast<int>(doy - (153 * mp + 2) / 5 + 1);
  const int month = static_cast<int>(mp < 10 ? mp + 3 : mp - 9);
  return {yoe + era * 400 + (month <= 2 ? 1 : 0), month, day};
}

char* PutDigits(char* p, int64_t value, int width) {
  for (int i = width - 1; i >= 0; --i) {
    p[i] = static_cast<char>('0' + value % 10);
    value /= 10;
  }
  return p + width;
}

constexpr char kHex[] = "0123456789abcdef";

bool CsvNeedsQuotes(std::string_view value) {
  for (char c : value) {
    if (c == ',' || c == '"' || c == '\n' || c == '\r') return true;
  }
  return false;
}

void AppendJsonTimestamp(bool present, const google::protobuf::Timestamp& timestamp,
                         std::string* out) {
  if (!present) {
    out->append("null");
    return;
  }
  out->push_back('"');
  AppendRfc3339(timestamp, out);
  out->push_back('"');
}

}  // namespace

void AppendRfc3339(const google::protobuf::Timestamp& timestamp, std::string* out) {
  int64_t seconds = timestamp.seconds();
  int64_t nanos = timestamp.nanos();
  if (nanos < 0 || nanos >= kNanosPerSecond) {  // not normalized: fold whole seconds into `seconds`
    seconds += FloorDiv(nanos, kNanosPerSecond);
    nanos -= FloorDiv(nanos, kNanosPerSecond) * kNanosPerSecond;
  }
  const int64_t days = FloorDiv(seconds, kSecondsPerDay);
  const int64_t second_of_day = seconds - days * kSecondsPerDay;
  const CivilDate date = CivilFromDays(days);

  int64_t year = date.year;
  if (year < 0) {  // ISO 8601 expanded form: year 0 is 1 BC
    out->push_back('-');
    year = -year;
  }
  if (year > 9999) {
    absl::StrAppend(out, year);
  } else {
    char digits[4];
    PutDigits(digits, year, 4);
    out->append(digits, 4);
  }
  char buf[24];  // "-MM-DDTHH:MM:SS.mmmZ"
  char* p = buf;
  *p++ = '-';
  p = PutDigits(p, date.month, 2);
  *p++ = '-';
  p = PutDigits(p, date.day, 2);
  *p++ = 'T';
  p = PutDigits(p, second_of_day / 3600, 2);
  *p++ = ':';
  p = PutDigits(p, second_of_day / 60 % 60, 2);
  *p++ = ':';
  p = PutDigits(p, second_of_day % 60, 2);
  *p++ = '.';
  p = PutDigits(p, nanos / 1000000, 3);
  *p++ = 'Z';
  out->append(buf, p - buf);
}

void AppendJsonString(std::string_view value, std::string* out) {
  out->push_back('"');
  size_t run_start = 0;  // bytes copied as they are, in runs
  for (size_t i = 0; i < value.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(value[i]);
    if (c >= 0x20 && c != '"' && c != '\\') continue;
    out->append(value.data() + run_start, i - run_start);
    run_start = i + 1;
    switch (c) {
      case '"':
        out->append("\\\"");
        break;
      case '\\':
        out->append("\\\\");
        break;
      case '\b':
        out->append("\\b");
        break;
      case '\f':
        out->append("\\f");
        break;
      case '\n':
        out->append("\\n");
        break;
      case '\r':
        out->append("\\r");
        break;
      case '\t':
        out->append("\\t");
        break;
      default: {
        const char escaped[] = {'\\', 'u', '0', '0', kHex[c >> 4], kHex[c & 0xF]};
        out->append(escaped, sizeof(escaped));
      }
    }
  }
  out->append(value.data() + run_start, value.size() - run_start);
  out->push_back('"');
}

void AppendJsonLine(const contacts::v1::Contact& contact, std::string* out) {
  out->append("{\"id\":");
  AppendJsonString(contact.id(), out);
  out->append(",\"phone_number\":");
  AppendJsonString(contact.phone_number(), out);
  out->append(",\"create_time\":");
  AppendJsonTimestamp(contact.has_create_time(), contact.create_time(), out);
  out->append(",\"update_time\":");
  AppendJsonTimestamp(contact.has_update_time(), contact.update_time(), out);
  out->append("}\n");
}

void AppendCsvField(std::string_view value, std::string* out) {
  if (!CsvNeedsQuotes(value)) {
    out->append(value.data(), value.size());
    return;
  }
  out->push_back('"');
  for (char c : value) {
    if (c == '"') out->push_back('"');
    out->push_back(c);
  }
  out->push_back('"');
}

void AppendCsvRow(const contacts::v1::Contact& contact, std::string* out) {
  AppendCsvField(contact.id(), out);
  out->push_back(',');
  AppendCsvField(contact.phone_number(), out);
  out->push_back(',');
  if (contact.has_create_time()) AppendRfc3339(contact.create_time(), out);
  out->push_back(',');
  if (contact.has_update_time()) AppendRfc3339(contact.update_time(), out);
  out->push_back('\n');
}

std::string ContactToJson(const contacts::v1::Contact& contact) {
  std::string out;
  AppendJsonLine(contact, &out);
  out.pop_back();
  return out;
}

std::string FormatRfc3339(const google::protobuf::Timestamp& timestamp) {
  std::string out;
  AppendRfc3339(timestamp, &out);
  return out;
}

}  // namespace contacts::client
