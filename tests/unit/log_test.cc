#include "server/core/log.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace contacts::gateway {
namespace {

std::string Json(std::string_view text) {
  std::string out;
  AppendJsonString(text, &out);
  return out;
}

TEST(LogTest, EscapesQuotesBackslashesAndControlCharacters) {
  EXPECT_EQ(Json("plain"), "\"plain\"");
  EXPECT_EQ(Json("say \"hi\" \\ bye"), "\"say \\\"hi\\\" \\\\ bye\"");
  EXPECT_EQ(Json("a\nb\rc\td"), "\"a\\nb\\rc\\td\"");
  EXPECT_EQ(Json(std::string("nul\0bell\x07"
                             "del\x7f",
                             13)),
            "\"nul\\u0000bell\\u0007del\\u007f\"");
}

TEST(LogTest, KeepsValidUtf8AndReplacesInvalidBytes) {
  EXPECT_EQ(Json("caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x93\x9E"),
            "\"caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x93\x9E\"");
  const std::string kFffd = "\xEF\xBF\xBD";
  EXPECT_EQ(Json("a\xFF"
                 "b"),
            "\"a" + kFffd + "b\"");                                                  // never valid
  EXPECT_EQ(Json("\xC0\xAF"), "\"" + kFffd + kFffd + "\"");                          // overlong '/'
  EXPECT_EQ(Json("\xED\xA0\x80"), "\"" + kFffd + kFffd + kFffd + "\"");              // a surrogate
  EXPECT_EQ(Json("\xF4\x90\x80\x80"), "\"" + kFffd + kFffd + kFffd + kFffd + "\"");  // > U+10FFFF
  EXPECT_EQ(Json("cut \xE2\x82"), "\"cut " + kFffd + kFffd + "\"");  // truncated at the end
}

TEST(LogTest, LineHasTimeSeverityMessageAndKnownIds) {
  absl::Time time = absl::FromUnixMillis(1795770000123);  // 2026-11-27T09:00:00.123Z
  EXPECT_EQ(
      FormatLogLine(
          time, Severity::kWarning, "list \"x\" changed",
          {.request_id = "req-1", .stream_id = "st-1", .list_id = "cl-1", .account_id = "a-1"}),
      "{\"ts\":\"2026-11-27T09:00:00.123Z\",\"severity\":\"WARNING\",\"msg\":\"list \\\"x\\\" "
      "changed\",\"request_id\":\"req-1\",\"stream_id\":\"st-1\",\"list_id\":\"cl-1\",\"account_"
      "id\":"
      "\"a-1\"}");
  EXPECT_EQ(FormatLogLine(time, Severity::kInfo, "stopped", {}),
            "{\"ts\":\"2026-11-27T09:00:00.123Z\",\"severity\":\"INFO\",\"msg\":\"stopped\"}");
  EXPECT_THAT(
      FormatLogLine(time, Severity::kDebug, "x",
                    {.request_id = "", .stream_id = "", .list_id = "cl-\n", .account_id = ""}),
      ::testing::EndsWith("\"severity\":\"DEBUG\",\"msg\":\"x\",\"list_id\":\"cl-\\n\"}"));
}

}  // namespace
}  // namespace contacts::gateway
