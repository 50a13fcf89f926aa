#include "server/upstream/http_status.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace contacts::gateway {
namespace {

using ::testing::HasSubstr;

const absl::Time kNow = absl::FromUnixSeconds(784111777);  // Sun, 06 Nov 1994 08:49:37 GMT

TEST(HttpStatusTest, MapsTheTable) {
  const std::pair<int, absl::StatusCode> kTable[] = {
      {400, absl::StatusCode::kInvalidArgument},    {401, absl::StatusCode::kUnauthenticated},
      {403, absl::StatusCode::kPermissionDenied},   {404, absl::StatusCode::kNotFound},
      {405, absl::StatusCode::kFailedPrecondition}, {408, absl::StatusCode::kUnavailable},
      {412, absl::StatusCode::kInvalidArgument},    {429, absl::StatusCode::kResourceExhausted},
      {500, absl::StatusCode::kUnavailable},        {502, absl::StatusCode::kUnavailable},
      {503, absl::StatusCode::kUnavailable},        {504, absl::StatusCode::kUnavailable},
      {302, absl::StatusCode::kInternal},           {600, absl::StatusCode::kUnknown},
  };
  for (auto [http, code] : kTable) EXPECT_EQ(StatusCodeFromHttp(http, ""), code) << http;
}

TEST(HttpStatusTest, RateLimitMessageWinsOverStatus) {
  EXPECT_EQ(StatusCodeFromHttp(400,
                               "You've exceeded the per-minute rate limit. Please wait for "
                               "sometime before retrying."),
            absl::StatusCode::kResourceExhausted);
}

TEST(HttpStatusTest, MessageNamesStatusWhatAndUpstreamWords) {
  absl::Status status = StatusFromHttp(401, "Invalid JWT token", "contact list cl-1 (skip=0)");
  EXPECT_EQ(status.code(), absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(status.message(),
            "upstream answered HTTP 401 for contact list cl-1 (skip=0): Invalid JWT token");
}

TEST(RetryAfterTest, ReadsDelaySeconds) {
  EXPECT_EQ(ParseRetryAfter("120", kNow), absl::Seconds(120));
  EXPECT_EQ(ParseRetryAfter(" 0 ", kNow), absl::ZeroDuration());
}

TEST(RetryAfterTest, ReadsHttpDatesInAllThreeForms) {
  EXPECT_EQ(ParseRetryAfter("Sun, 06 Nov 1994 08:50:07 GMT", kNow), absl::Seconds(30));
  EXPECT_EQ(ParseRetryAfter("Sunday, 06-Nov-94 08:50:07 GMT", kNow), absl::Seconds(30));
  EXPECT_EQ(ParseRetryAfter("Sun Nov  6 08:50:07 1994", kNow), absl::Seconds(30));
  EXPECT_EQ(ParseRetryAfter("Sun, 06 Nov 1994 08:00:00 GMT", kNow), absl::ZeroDuration());  // past
}

TEST(RetryAfterTest, RejectsGarbage) {
  for (const char* bad : {"", "-5", "soon", "1.5", "Sun, 32 Nov 1994 08:49:37 GMT"}) {
    EXPECT_FALSE(ParseRetryAfter(bad, kNow).has_value()) << bad;
  }
}

}  // namespace
}  // namespace contacts::gateway
