#include "server/upstream/timestamp.h"

#include <cmath>
#include <cstring>

namespace contacts::gateway {
namespace {

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
}  // namespace

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

bool ParseTimestamp(std::string_view text, google::protobuf::Timestamp* out) {
  int64_t seconds = 0;
  int32_t nanos = 0;
  if (!ParseTimestampParts(text, &seconds, &nanos)) return false;
  out->set_seconds(seconds);
  out->set_nanos(nanos);
  return true;
}

}  // namespace contacts::gateway
