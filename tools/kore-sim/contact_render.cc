#include "tools/kore-sim/contact_render.h"

#include <array>
#include <charconv>

namespace contacts::kore_sim {
namespace {

constexpr int64_t kGeneratedEpoch = 1704067200;  // 2024-01-01T00:00:00Z
constexpr int64_t kInsertedEpoch = 1735689600;   // 2025-01-01T00:00:00Z
constexpr int64_t kSecondsPerDay = 86400;
// The longest contact object (dirty, inserted, 19-digit ordinal) is about 230 bytes, comma
// included.
constexpr size_t kMaxContactBytes = 320;

constexpr std::string_view kDirtyAttributes =
    R"(,"attributes":{"source":"kore-sim","tags":["sim"],"score":0.5,"note":null})";

char* Write(char* p, std::string_view s) {
  for (char c : s) *p++ = c;
  return p;
}

// Writes `value` right-aligned in exactly `width` digits (callers guarantee it fits).
char* WriteFixed(char* p, uint64_t value, int width) {
  for (int i = width - 1; i >= 0; --i) {
    p[i] = static_cast<char>('0' + value % 10);
    value /= 10;
  }
  return p + width;
}

// At least `min_width` digits, zero-padded.
char* WritePadded(char* p, uint64_t value, int min_width) {
  int width = 1;
  for (uint64_t v = value; v >= 10; v /= 10) ++width;
  return WriteFixed(p, value, width < min_width ? min_width : width);
}

// Howard Hinnant's civil_from_days: days since 1970-01-01 → (year, month, day).
void CivilFromDays(int64_t days, int64_t& year, unsigned& month, unsigned& day) {
  days += 719468;
  const int64_t era = (days >= 0 ? days : days - 146096) / 146097;
  const auto doe = static_cast<unsigned>(days - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  day = doy - (153 * mp + 2) / 5 + 1;
  month = mp < 10 ? mp + 3 : mp - 9;
  year = static_cast<int64_t>(yoe) + era * 400 + (month <= 2 ? 1 : 0);
}

// "2024-01-01T00:00:00.000Z" (or without ".000"), with quotes. Times are after 1970.
char* WriteTimestamp(char* p, int64_t unix_seconds, bool millis) {
  int64_t days = unix_seconds / kSecondsPerDay;
  int64_t secs = unix_seconds % kSecondsPerDay;
  int64_t year;
  unsigned month, day;
  CivilFromDays(days, year, month, day);
  *p++ = '"';
  p = WriteFixed(p, static_cast<uint64_t>(year), 4);
  *p++ = '-';
  p = WriteFixed(p, month, 2);
  *p++ = '-';
  p = WriteFixed(p, day, 2);
  *p++ = 'T';
  p = WriteFixed(p, static_cast<uint64_t>(secs / 3600), 2);
  *p++ = ':';
  p = WriteFixed(p, static_cast<uint64_t>(secs / 60 % 60), 2);
  *p++ = ':';
  p = WriteFixed(p, static_cast<uint64_t>(secs % 60), 2);
  if (millis) p = Write(p, ".000");
  return Write(p, "Z\"");
}

uint64_t SplitMix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9;
  x = (x ^ (x >> 27)) * 0x94d049bb133111eb;
  return x ^ (x >> 31);
}

char* WriteContactId(char* p, uint32_t list_hash, ContactKey key) {
  static constexpr char kHex[] = "0123456789abcdef";
  p = Write(p, "c-");
  for (int shift = 28; shift >= 0; shift -= 4) *p++ = kHex[(list_hash >> shift) & 15];
  *p++ = '-';
  if (key.inserted()) *p++ = 'n';
  return WritePadded(p, static_cast<uint64_t>(key.ordinal()), 8);
}

char* WriteContact(char* p, uint32_t list_hash, ContactKey key, bool dirty) {
  const int64_t ordinal = key.ordinal();
  const int64_t k = ordinal + (key.inserted() ? 0 : 1);  // 1-based, for the dirt rules
  const int64_t created = key.inserted() ? kInsertedEpoch + ordinal : kGeneratedEpoch + ordinal;
  const bool millis = !(dirty && k % 5 == 0);

  p = Write(p, R"({"_id":")");
  p = WriteContactId(p, list_hash, key);
  p = Write(p, R"(","createdAt":)");
  p = WriteTimestamp(p, created, millis);
  p = Write(p, R"(,"updatedAt":)");
  if (dirty && k % 11 == 0) {
    p = Write(p, "null");
  } else {
    p = WriteTimestamp(p, created + kSecondsPerDay, millis);
  }
  if (!(dirty && k % 7 == 0)) {
    const uint64_t seed = (uint64_t{list_hash} << 32) ^ static_cast<uint64_t>(ordinal) ^
                          (key.inserted() ? uint64_t{1} << 63 : 0);
    p = Write(p, R"(,"phoneNumber":"+1)");
    p = WriteFixed(p, 2'000'000'000 + SplitMix64(seed) % 8'000'000'000, 10);
    *p++ = '"';
  }
  if (dirty) p = Write(p, kDirtyAttributes);
  *p++ = '}';
  return p;
}

void AppendNumber(std::string& out, int64_t value, bool as_string) {
  std::array<char, 24> buf;
  auto [end, ec] = std::to_chars(buf.data(), buf.data() + buf.size(), value);
  if (as_string) out += '"';
  out.append(buf.data(), end);
  if (as_string) out += '"';
}

}  // namespace

uint32_t ListHash(std::string_view list_id) {
  uint32_t hash = 2166136261u;
  for (char c : list_id) {
    hash ^= static_cast<unsigned char>(c);
    hash *= 16777619u;
  }
  return hash;
}

void AppendContactId(std::string& out, uint32_t list_hash, ContactKey key) {
  std::array<char, 40> buf;
  char* end = WriteContactId(buf.data(), list_hash, key);
  out.append(buf.data(), end);
}

std::string RenderPage(const PageAnswer& page) {
  std::string out;
  out.reserve(256 + page.contacts.size() * kMaxContactBytes);
  out += R"({"status":"success","message":"Contacts retrieved successfully","data":{"results":[)";
  std::array<char, kMaxContactBytes> buf;
  bool first = true;
  for (ContactKey key : page.contacts) {
    char* p = buf.data();
    if (!first) *p++ = ',';
    first = false;
    p = WriteContact(p, page.list_hash, key, page.dirty);
    out.append(buf.data(), p);
  }
  const bool strings = page.dirty && (page.skip / page.limit) % 2 == 1;
  const int64_t total_pages = (page.total + page.limit - 1) / page.limit;
  out += R"(],"skip":)";
  AppendNumber(out, page.skip, strings);
  out += R"(,"limit":)";
  AppendNumber(out, page.limit, strings);
  out += R"(,"hasMore":)";
  out += page.has_more ? "true" : "false";
  out += R"(,"totalPages":)";
  AppendNumber(out, total_pages, false);
  out += R"(,"totalResults":)";
  AppendNumber(out, page.total, strings);
  out += "}}";
  return out;
}

}  // namespace contacts::kore_sim
