#ifndef CONTACTS_GATEWAY_SERVER_UPSTREAM_TIMESTAMP_H_
#define CONTACTS_GATEWAY_SERVER_UPSTREAM_TIMESTAMP_H_

// The upstream's timestamps: ISO-8601 / RFC 3339 text, or epoch milliseconds, into
// google.protobuf.Timestamp's seconds and nanos. Allocation-free; two calls per contact.

#include <cstdint>
#include <string_view>

#include "google/protobuf/timestamp.pb.h"

namespace contacts::gateway {

// google.protobuf.Timestamp's range: 0001-01-01T00:00:00Z .. 9999-12-31T23:59:59.999999999Z.
inline constexpr int64_t kMinTimestampSeconds = -62135596800;
inline constexpr int64_t kMaxTimestampSeconds = 253402300799;

// Parses an ISO-8601 / RFC 3339 timestamp and returns true; false (outputs unchanged) if `text` is
// not one. Accepted: "YYYY-MM-DD" then 'T', 't' or ' ', then "hh:mm:ss", an optional fraction of 1
// to 9 digits ('.' or ','), then 'Z'/'z', "+hh:mm", "+hhmm", "-hh:mm", "-hhmm", or nothing (read as
// UTC). Dates and times are range-checked (leap years included; a leap second :60 is rejected),
// and the instant must lie within google.protobuf.Timestamp's range (years 1 to 9999 UTC).
bool ParseTimestampParts(std::string_view text, int64_t* seconds, int32_t* nanos);
bool ParseTimestamp(std::string_view text, google::protobuf::Timestamp* out);

// Epoch milliseconds (integral or not) within the range above; false outside it.
bool EpochMillisToParts(int64_t millis, int64_t* seconds, int32_t* nanos);
bool EpochMillisToParts(double millis, int64_t* seconds, int32_t* nanos);

}  // namespace contacts::gateway

#endif  // CONTACTS_GATEWAY_SERVER_UPSTREAM_TIMESTAMP_H_
