// Contact → JSON line / CSV row / RFC 3339 text (client/contact_format.h), and the resume backoff.
#include "client/contact_format.h"

#include <string>

#include <gtest/gtest.h>

#include "client/contacts_client.h"

namespace contacts::client {
namespace {

using ::contacts::v1::Contact;
using ::google::protobuf::Timestamp;

Timestamp MakeTimestamp(int64_t seconds, int32_t nanos) {
  Timestamp t;
  t.set_seconds(seconds);
  t.set_nanos(nanos);
  return t;
}

std::string JsonString(std::string_view value) {
  std::string out;
  AppendJsonString(value, &out);
  return out;
}

std::string CsvField(std::string_view value) {
  std::string out;
  AppendCsvField(value, &out);
  return out;
}

std::string CsvRow(const Contact& contact) {
  std::string out;
  AppendCsvRow(contact, &out);
  return out;
}

TEST(Rfc3339Test, EpochHasMilliseconds) {
  EXPECT_EQ(FormatRfc3339(MakeTimestamp(0, 0)), "1970-01-01T00:00:00.000Z");
}

TEST(Rfc3339Test, MillisecondsAreAlwaysThreeDigits) {
  EXPECT_EQ(FormatRfc3339(MakeTimestamp(1704067200, 123000000)), "2024-01-01T00:00:00.123Z");
  EXPECT_EQ(FormatRfc3339(MakeTimestamp(1704067200, 5000000)), "2024-01-01T00:00:00.005Z");
}

TEST(Rfc3339Test, SubMillisecondNanosAreTruncated) {
  EXPECT_EQ(FormatRfc3339(MakeTimestamp(1704067200, 999999999)), "2024-01-01T00:00:00.999Z");
  EXPECT_EQ(FormatRfc3339(MakeTimestamp(1704067200, 999999)), "2024-01-01T00:00:00.000Z");
}

TEST(Rfc3339Test, LeapDayAndEndOfDay) {
  EXPECT_EQ(FormatRfc3339(MakeTimestamp(1709251199, 0)), "2024-02-29T23:59:59.000Z");
  EXPECT_EQ(FormatRfc3339(MakeTimestamp(951782400, 0)), "2000-02-29T00:00:00.000Z");
}

TEST(Rfc3339Test, BeforeEpoch) {
  EXPECT_EQ(FormatRfc3339(MakeTimestamp(-1, 0)), "1969-12-31T23:59:59.000Z");
  EXPECT_EQ(FormatRfc3339(MakeTimestamp(-1, 500000000)), "1969-12-31T23:59:59.500Z");
}

TEST(Rfc3339Test, LimitsOfProtobufTimestamp) {
  EXPECT_EQ(FormatRfc3339(MakeTimestamp(-62135596800, 0)), "0001-01-01T00:00:00.000Z");
  EXPECT_EQ(FormatRfc3339(MakeTimestamp(253402300799, 999999999)), "9999-12-31T23:59:59.999Z");
}

TEST(Rfc3339Test, UnnormalizedNanosAreFolded) {
  EXPECT_EQ(FormatRfc3339(MakeTimestamp(0, -1000000)), "1969-12-31T23:59:59.999Z");
  EXPECT_EQ(FormatRfc3339(MakeTimestamp(0, 1500000000)), "1970-01-01T00:00:01.500Z");
}

TEST(JsonStringTest, PlainTextIsQuotedOnly) { EXPECT_EQ(JsonString("cl-7a9e"), R"("cl-7a9e")"); }

TEST(JsonStringTest, EscapesQuoteAndBackslash) {
  EXPECT_EQ(JsonString(R"(a"b\c)"), R"("a\"b\\c")");
  EXPECT_EQ(JsonString(R"(\")"), R"("\\\"")");
}

TEST(JsonStringTest, EscapesControlCharacters) {
  EXPECT_EQ(JsonString("\b\f\n\r\t"), R"("\b\f\n\r\t")");
  EXPECT_EQ(JsonString(std::string("a\0b", 3)), R"("a\u0000b")");
  EXPECT_EQ(JsonString("\x01\x1f"), R"("\u0001\u001f")");
}

TEST(JsonStringTest, DelAndUtf8PassThrough) {
  EXPECT_EQ(JsonString("\x7f"), "\"\x7f\"");
  EXPECT_EQ(JsonString("Zoë 電話 😀"), "\"Zoë 電話 😀\"");
  EXPECT_EQ(JsonString("\u2028"), "\"\u2028\"");
}

TEST(JsonStringTest, EmptyString) { EXPECT_EQ(JsonString(""), R"("")"); }

TEST(JsonLineTest, FullContact) {
  Contact contact;
  contact.set_id("c-1");
  contact.set_phone_number("+14155550123");
  *contact.mutable_create_time() = MakeTimestamp(1704067200, 123000000);
  *contact.mutable_update_time() = MakeTimestamp(1704153600, 0);
  std::string out;
  AppendJsonLine(contact, &out);
  EXPECT_EQ(out,
            R"({"id":"c-1","phone_number":"+14155550123","create_time":"2024-01-01T00:00:00.123Z",)"
            R"("update_time":"2024-01-02T00:00:00.000Z"})"
            "\n");
}

TEST(JsonLineTest, UnsetTimestampsAreNullButEpochIsNot) {
  Contact contact;
  contact.set_id("c\"2");
  *contact.mutable_update_time() = MakeTimestamp(0, 0);
  EXPECT_EQ(
      ContactToJson(contact),
      R"({"id":"c\"2","phone_number":"","create_time":null,"update_time":"1970-01-01T00:00:00.000Z"})");
}

TEST(JsonLineTest, AppendsToExistingText) {
  Contact a, b;
  a.set_id("a");
  b.set_id("b");
  std::string out;
  AppendJsonLine(a, &out);
  AppendJsonLine(b, &out);
  EXPECT_EQ(out,
            "{\"id\":\"a\",\"phone_number\":\"\",\"create_time\":null,\"update_time\":null}\n"
            "{\"id\":\"b\",\"phone_number\":\"\",\"create_time\":null,\"update_time\":null}\n");
}

TEST(CsvFieldTest, PlainFieldIsNotQuoted) {
  EXPECT_EQ(CsvField("+14155550123"), "+14155550123");
  EXPECT_EQ(CsvField("has space"), "has space");
  EXPECT_EQ(CsvField(""), "");
}

TEST(CsvFieldTest, QuotesCommaQuoteAndLineBreaks) {
  EXPECT_EQ(CsvField("a,b"), "\"a,b\"");
  EXPECT_EQ(CsvField("say \"hi\""), "\"say \"\"hi\"\"\"");
  EXPECT_EQ(CsvField("line1\nline2"), "\"line1\nline2\"");
  EXPECT_EQ(CsvField("cr\r"), "\"cr\r\"");
  EXPECT_EQ(CsvField("\""), "\"\"\"\"");
}

TEST(CsvFieldTest, Utf8PassesThrough) { EXPECT_EQ(CsvField("Zoë"), "Zoë"); }

TEST(CsvRowTest, HeaderMatchesColumns) {
  EXPECT_EQ(kCsvHeader, "id,phone_number,create_time,update_time");
}

TEST(CsvRowTest, FullContact) {
  Contact contact;
  contact.set_id("c-1");
  contact.set_phone_number("+14155550123");
  *contact.mutable_create_time() = MakeTimestamp(1704067200, 123000000);
  *contact.mutable_update_time() = MakeTimestamp(1704153600, 0);
  EXPECT_EQ(CsvRow(contact),
            "c-1,+14155550123,2024-01-01T00:00:00.123Z,2024-01-02T00:00:00.000Z\n");
}

TEST(CsvRowTest, UnsetTimestampsAreEmptyAndSpecialFieldsQuoted) {
  Contact contact;
  contact.set_id("a,\"b\"");
  contact.set_phone_number("1\n2");
  EXPECT_EQ(CsvRow(contact), "\"a,\"\"b\"\"\",\"1\n2\",,\n");
}

TEST(ResumeBackoffTest, GrowsExponentiallyUpToTheCap) {
  StreamOptions options;
  options.initial_backoff = absl::Milliseconds(200);
  options.max_backoff = absl::Seconds(1);
  EXPECT_EQ(ResumeBackoff(options, 1, 1.0), absl::Milliseconds(200));
  EXPECT_EQ(ResumeBackoff(options, 2, 1.0), absl::Milliseconds(400));
  EXPECT_EQ(ResumeBackoff(options, 3, 1.0), absl::Milliseconds(800));
  EXPECT_EQ(ResumeBackoff(options, 4, 1.0), absl::Seconds(1));
  EXPECT_EQ(ResumeBackoff(options, 1000, 1.0), absl::Seconds(1));
}

TEST(ResumeBackoffTest, FullJitterScalesTheWholeRange) {
  StreamOptions options;
  options.initial_backoff = absl::Milliseconds(200);
  EXPECT_EQ(ResumeBackoff(options, 2, 0.0), absl::ZeroDuration());
  EXPECT_EQ(ResumeBackoff(options, 2, 0.5), absl::Milliseconds(200));
}

TEST(ResumeBackoffTest, ZeroInitialBackoffMeansNoWait) {
  StreamOptions options;
  options.initial_backoff = absl::ZeroDuration();
  EXPECT_EQ(ResumeBackoff(options, 3, 0.9), absl::ZeroDuration());
}

}  // namespace
}  // namespace contacts::client
