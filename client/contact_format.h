// Text forms of a contacts.v1.Contact for output: one JSON object per line (JSON Lines) or one CSV
// row (RFC 4180 quoting). Built for throughput: each function appends to a caller-owned buffer, so
// a writer can format a whole message into one string and write it at once.
//
// Shared conventions:
// - Timestamps are RFC 3339 in UTC, always with exactly three fraction digits (milliseconds), e.g.
//   "2024-01-01T00:00:00.000Z". Sub-millisecond nanos are truncated (towards the past). The fixed
//   width keeps lines sortable as text. Seconds outside 0001-01-01..9999-12-31 (which the protobuf
//   Timestamp forbids) still print, proleptic Gregorian, with a wider or negative year.
// - An unset timestamp is `null` in JSON (every line has all four keys) and an empty field in CSV.
// - Strings are passed through byte for byte (protobuf has already checked they are UTF-8); only
//   what the format requires is escaped.
#ifndef CONTACTS_CLIENT_CONTACT_FORMAT_H_
#define CONTACTS_CLIENT_CONTACT_FORMAT_H_

#include <string>
#include <string_view>

#include <google/protobuf/timestamp.pb.h>

#include "contacts/v1/contacts.pb.h"

namespace contacts::client {

// Appends `contact` as one JSON object and a "\n":
// {"id":"…","phone_number":"…","create_time":"2024-01-01T00:00:00.123Z","update_time":null}
void AppendJsonLine(const contacts::v1::Contact& contact, std::string* out);

// Appends `value` as a JSON string, quotes included: `"` and `\` are backslash-escaped, \b \f \n \r
// \t use their short forms, other bytes below 0x20 become \u00XX, everything else (UTF-8 included)
// is copied.
void AppendJsonString(std::string_view value, std::string* out);

// The CSV header line, without line break.
inline constexpr std::string_view kCsvHeader = "id,phone_number,create_time,update_time";

// Appends `contact` as one CSV row and a "\n" (LF, not RFC 4180's CRLF: what Unix tools expect;
// CSV readers accept both).
void AppendCsvRow(const contacts::v1::Contact& contact, std::string* out);

// Appends `value` as one CSV field: as is, or, when it holds a comma, a double quote, CR or LF,
// inside double quotes with each double quote doubled (RFC 4180, section 2).
void AppendCsvField(std::string_view value, std::string* out);

// Appends `timestamp` as RFC 3339 UTC with milliseconds (see above), without quotes.
void AppendRfc3339(const google::protobuf::Timestamp& timestamp, std::string* out);

// Convenience forms of the above, returning the text (the JSON line without its "\n").
std::string ContactToJson(const contacts::v1::Contact& contact);
std::string FormatRfc3339(const google::protobuf::Timestamp& timestamp);

}  // namespace contacts::client

#endif  // CONTACTS_CLIENT_CONTACT_FORMAT_H_
