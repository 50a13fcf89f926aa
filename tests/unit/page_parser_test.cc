#include "server/upstream/page_parser.h"
#include "server/upstream/timestamp.h"

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "google/protobuf/timestamp.pb.h"
#include "gtest/gtest.h"

namespace contacts::gateway {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

// The sample answer of UPSTREAM.md, with three contacts as its totalResults says.
constexpr std::string_view kDocumentedSample =
    R"json({"status":"success","message":"Contacts retrieved successfully",
 "data":{"results":[{"_id":"cl-1","createdAt":"2024-05-01T10:20:30.123Z",
                     "updatedAt":"2024-05-02T11:22:33.456Z","phoneNumber":"+14155550123"},
                    {"_id":"cl-2","createdAt":"2024-05-01T10:20:31Z",
                     "updatedAt":"2024-05-02T11:22:34Z","phoneNumber":"+14155550124"},
                    {"_id":"cl-3","createdAt":"2024-05-01T10:20:32.000Z",
                     "updatedAt":"2024-05-02T11:22:35.000Z","phoneNumber":"+14155550125"}],
         "skip":0,"limit":50,"hasMore":false,"totalPages":1,"totalResults":3}})json";

// 2024-05-01T10:20:30Z and 2024-05-02T11:22:33Z as Unix seconds.
constexpr int64_t k20240501T102030 = 1714558830;
constexpr int64_t k20240502T112233 = 1714648953;

absl::StatusOr<Page> Parse(std::string_view json) {
  std::string body(json);
  return ParsePage(body);
}

// The error message of a parse that must fail with INTERNAL.
std::string ParseError(std::string_view json) {
  absl::StatusOr<Page> page = Parse(json);
  EXPECT_FALSE(page.ok()) << json;
  if (page.ok()) return "";
  EXPECT_EQ(page.status().code(), absl::StatusCode::kInternal) << page.status();
  EXPECT_THAT(std::string(page.status().message()), HasSubstr("upstream page: "));
  return std::string(page.status().message());
}

Page ParseOk(std::string_view json) {
  absl::StatusOr<Page> page = Parse(json);
  EXPECT_TRUE(page.ok()) << page.status() << "\n" << json;
  return page.ok() ? *std::move(page) : Page{};
}

std::string Contacts(std::string_view results) {
  return std::string(R"({"status":"success","data":{"results":)") + std::string(results) + "}}";
}

TEST(PageParserTest, ReadsDocumentedSample) {
  Page page = ParseOk(kDocumentedSample);
  ASSERT_EQ(page.contacts.size(), 3u);
  const contacts::v1::Contact& first = page.contacts[0];
  EXPECT_EQ(first.id(), "cl-1");
  EXPECT_EQ(first.phone_number(), "+14155550123");
  ASSERT_TRUE(first.has_create_time());
  EXPECT_EQ(first.create_time().seconds(), k20240501T102030);
  EXPECT_EQ(first.create_time().nanos(), 123000000);
  EXPECT_EQ(first.update_time().seconds(), k20240502T112233);
  EXPECT_EQ(first.update_time().nanos(), 456000000);
  EXPECT_EQ(page.contacts[1].id(), "cl-2");
  EXPECT_EQ(page.contacts[1].create_time().seconds(), k20240501T102030 + 1);
  EXPECT_EQ(page.contacts[1].create_time().nanos(), 0);
  EXPECT_EQ(page.contacts[2].phone_number(), "+14155550125");
  EXPECT_EQ(page.skip, 0);
  EXPECT_EQ(page.limit, 50);
  EXPECT_EQ(page.has_more, false);
  EXPECT_EQ(page.total_pages, 1);
  EXPECT_EQ(page.total_results, 3);
}

TEST(PageParserTest, LeavesBodyContentsUnchanged) {
  std::string body(kDocumentedSample);
  ASSERT_TRUE(ParsePage(body).ok());
  EXPECT_EQ(body, kDocumentedSample);
}

TEST(PageParserTest, ReadsFieldsInAnyOrder) {
  Page page = ParseOk(R"({"data":{"totalResults":9,"hasMore":true,
      "results":[{"phoneNumber":"+1","updatedAt":null,"_id":"a"}],"skip":5},"status":"SUCCESS"})");
  ASSERT_EQ(page.contacts.size(), 1u);
  EXPECT_EQ(page.contacts[0].id(), "a");
  EXPECT_EQ(page.contacts[0].phone_number(), "+1");
  EXPECT_EQ(page.skip, 5);
  EXPECT_EQ(page.total_results, 9);
  EXPECT_EQ(page.has_more, true);
  EXPECT_FALSE(page.limit.has_value());
}

TEST(PageParserTest, ReadsPagingFactsAtTopLevel) {
  Page page = ParseOk(R"({"status":"success","results":[{"_id":"x"}],
      "skip":100,"limit":50,"hasMore":true,"totalPages":4,"totalResults":170})");
  ASSERT_EQ(page.contacts.size(), 1u);
  EXPECT_EQ(page.contacts[0].id(), "x");
  EXPECT_EQ(page.skip, 100);
  EXPECT_EQ(page.limit, 50);
  EXPECT_EQ(page.has_more, true);
  EXPECT_EQ(page.total_pages, 4);
  EXPECT_EQ(page.total_results, 170);
}

TEST(PageParserTest, PrefersPagingFactsInsideData) {
  Page page = ParseOk(R"({"skip":1,"limit":2,"totalResults":3,
      "data":{"skip":10,"results":[],"totalResults":30},"hasMore":false})");
  EXPECT_EQ(page.skip, 10);
  EXPECT_EQ(page.limit, 2);
  EXPECT_EQ(page.total_results, 30);
  EXPECT_EQ(page.has_more, false);
}

TEST(PageParserTest, PrefersResultsInsideData) {
  Page before = ParseOk(R"({"results":[{"_id":"top"}],"data":{"results":[{"_id":"inner"}]}})");
  ASSERT_EQ(before.contacts.size(), 1u);
  EXPECT_EQ(before.contacts[0].id(), "inner");
  Page after = ParseOk(R"({"data":{"results":[{"_id":"inner"}]},"results":[{"_id":"top"}]})");
  ASSERT_EQ(after.contacts.size(), 1u);
  EXPECT_EQ(after.contacts[0].id(), "inner");
}

TEST(PageParserTest, ReadsNumbersSentAsStrings) {
  Page page = ParseOk(R"({"data":{"results":[],"skip":"50","limit":" 50 ","hasMore":"true",
      "totalPages":"3","totalResults":"120"}})");
  EXPECT_EQ(page.skip, 50);
  EXPECT_EQ(page.limit, 50);
  EXPECT_EQ(page.has_more, true);
  EXPECT_EQ(page.total_pages, 3);
  EXPECT_EQ(page.total_results, 120);
}

TEST(PageParserTest, ReadsHasMoreSpellings) {
  EXPECT_EQ(ParseOk(R"({"data":{"hasMore":1}})").has_more, true);
  EXPECT_EQ(ParseOk(R"({"data":{"hasMore":0}})").has_more, false);
  EXPECT_EQ(ParseOk(R"({"data":{"hasMore":"False"}})").has_more, false);
  EXPECT_EQ(ParseOk(R"({"data":{"hasMore":"1"}})").has_more, true);
  EXPECT_FALSE(ParseOk(R"({"data":{"hasMore":null}})").has_more.has_value());
  EXPECT_THAT(ParseError(R"({"data":{"hasMore":2}})"), HasSubstr("data.hasMore"));
  EXPECT_THAT(ParseError(R"({"data":{"hasMore":"maybe"}})"), HasSubstr("data.hasMore"));
}

TEST(PageParserTest, ReadsIntegralFloatsAndRejectsOtherNumbers) {
  EXPECT_EQ(ParseOk(R"({"data":{"limit":50.0}})").limit, 50);
  EXPECT_THAT(ParseError(R"({"data":{"limit":50.5}})"), HasSubstr("data.limit: expected"));
  EXPECT_THAT(ParseError(R"({"data":{"skip":"ten"}})"), HasSubstr("data.skip: expected"));
  EXPECT_THAT(ParseError(R"({"totalResults":[1]})"), HasSubstr("totalResults: expected"));
}

TEST(PageParserTest, TreatsNullsAsAbsent) {
  Page page = ParseOk(R"({"status":"success","message":null,"data":{"results":[
      {"_id":"a","phoneNumber":null,"createdAt":null,"updatedAt":null}],
      "skip":null,"limit":null,"hasMore":null,"totalPages":null,"totalResults":null}})");
  ASSERT_EQ(page.contacts.size(), 1u);
  EXPECT_EQ(page.contacts[0].phone_number(), "");
  EXPECT_FALSE(page.contacts[0].has_create_time());
  EXPECT_FALSE(page.contacts[0].has_update_time());
  EXPECT_FALSE(page.skip.has_value());
  EXPECT_FALSE(page.limit.has_value());
  EXPECT_FALSE(page.has_more.has_value());
  EXPECT_FALSE(page.total_pages.has_value());
  EXPECT_FALSE(page.total_results.has_value());
  EXPECT_FALSE(ParseOk(R"({"status":null,"data":null})").skip.has_value());
}

TEST(PageParserTest, LeavesMissingPhoneNumberEmpty) {
  Page page = ParseOk(Contacts(R"([{"_id":"a","createdAt":"2024-05-01T10:20:30Z"}])"));
  ASSERT_EQ(page.contacts.size(), 1u);
  EXPECT_EQ(page.contacts[0].phone_number(), "");
  EXPECT_EQ(page.contacts[0].create_time().seconds(), k20240501T102030);
  EXPECT_FALSE(page.contacts[0].has_update_time());
}

TEST(PageParserTest, KeepsNumericPhoneNumberAsWritten) {
  Page page = ParseOk(Contacts(R"([{"_id":"a","phoneNumber":14155550123 }])"));
  ASSERT_EQ(page.contacts.size(), 1u);
  EXPECT_EQ(page.contacts[0].phone_number(), "14155550123");
}

TEST(PageParserTest, ReadsTimestampsWithAndWithoutMillisAndOffsets) {
  Page page = ParseOk(Contacts(R"([
      {"_id":"a","createdAt":"2024-05-01T10:20:30Z","updatedAt":"2024-05-01T10:20:30.5Z"},
      {"_id":"b","createdAt":"2024-05-01T12:20:30+02:00","updatedAt":"2024-05-01T05:20:30-0500"},
      {"_id":"c","createdAt":"2024-05-01 10:20:30.123456789Z","updatedAt":"2024-05-01T10:20:30"},
      {"_id":"d","createdAt":"","updatedAt":"2024-05-01t10:20:30z"}])"));
  ASSERT_EQ(page.contacts.size(), 4u);
  EXPECT_EQ(page.contacts[0].create_time().seconds(), k20240501T102030);
  EXPECT_EQ(page.contacts[0].update_time().nanos(), 500000000);
  EXPECT_EQ(page.contacts[1].create_time().seconds(), k20240501T102030);
  EXPECT_EQ(page.contacts[1].update_time().seconds(), k20240501T102030);
  EXPECT_EQ(page.contacts[2].create_time().nanos(), 123456789);
  EXPECT_EQ(page.contacts[2].update_time().seconds(), k20240501T102030);
  EXPECT_FALSE(page.contacts[3].has_create_time());
  EXPECT_EQ(page.contacts[3].update_time().seconds(), k20240501T102030);
}

TEST(PageParserTest, ReadsEpochMillisTimestamps) {
  Page page = ParseOk(Contacts(R"([
      {"_id":"a","createdAt":1714558830123,"updatedAt":"1714558830000"},
      {"_id":"b","createdAt":-1,"updatedAt":1714558830123.0}])"));
  ASSERT_EQ(page.contacts.size(), 2u);
  EXPECT_EQ(page.contacts[0].create_time().seconds(), k20240501T102030);
  EXPECT_EQ(page.contacts[0].create_time().nanos(), 123000000);
  EXPECT_EQ(page.contacts[0].update_time().seconds(), k20240501T102030);
  EXPECT_EQ(page.contacts[1].create_time().seconds(), -1);
  EXPECT_EQ(page.contacts[1].create_time().nanos(), 999000000);
  EXPECT_EQ(page.contacts[1].update_time().seconds(), k20240501T102030);
  EXPECT_EQ(page.contacts[1].update_time().nanos(), 123000000);
}

TEST(PageParserTest, RejectsUnreadableTimestamp) {
  EXPECT_THAT(ParseError(Contacts(R"([{"_id":"a"},{"_id":"b","updatedAt":"yesterday"}])")),
              HasSubstr("data.results[1].updatedAt: expected an ISO-8601 timestamp"));
  EXPECT_THAT(ParseError(Contacts(R"([{"_id":"a","createdAt":true}])")),
              HasSubstr("data.results[0].createdAt: expected"));
  EXPECT_THAT(ParseError(Contacts(R"([{"_id":"a","createdAt":1e300}])")),
              HasSubstr("data.results[0].createdAt: expected"));
}

TEST(PageParserTest, IgnoresUnknownFieldsAndNestedObjects) {
  Page page = ParseOk(R"({"status":"success","requestId":"r-1","meta":{"a":[1,{"b":null}]},
      "data":{"extra":{"deep":{"deeper":[[],[{}]]}},"results":[
        {"firstName":"Ann","_id":"a","tags":["x","y"],"custom":{"_id":"not-me","phoneNumber":"no"},
         "phoneNumber":"+1","score":1.5e3,"flag":false,"nothing":null}]}})");
  ASSERT_EQ(page.contacts.size(), 1u);
  EXPECT_EQ(page.contacts[0].id(), "a");
  EXPECT_EQ(page.contacts[0].phone_number(), "+1");
}

TEST(PageParserTest, MatchesKeysExactly) {
  Page page = ParseOk(Contacts(R"([{"_id":"a","PhoneNumber":"+1","phonenumber":"+2",
      "createdat":"garbage","_ID":"b"}])"));
  ASSERT_EQ(page.contacts.size(), 1u);
  EXPECT_EQ(page.contacts[0].id(), "a");
  EXPECT_EQ(page.contacts[0].phone_number(), "");
  EXPECT_FALSE(page.contacts[0].has_create_time());
}

TEST(PageParserTest, AcceptsEmptyResultsWithHasMoreTrue) {
  Page page = ParseOk(R"({"status":"success","data":{"results":[],"skip":50,"hasMore":true}})");
  EXPECT_TRUE(page.contacts.empty());
  EXPECT_EQ(page.has_more, true);
  EXPECT_EQ(page.skip, 50);
}

TEST(PageParserTest, TreatsNullOrMissingResultsAsEmpty) {
  EXPECT_TRUE(ParseOk(R"({"data":{"results":null,"hasMore":false}})").contacts.empty());
  EXPECT_TRUE(ParseOk(R"({"data":{"hasMore":false}})").contacts.empty());
  EXPECT_TRUE(ParseOk(R"({})").contacts.empty());
}

TEST(PageParserTest, RejectsInvalidJson) {
  EXPECT_THAT(ParseError(""), HasSubstr("not valid JSON"));
  EXPECT_THAT(ParseError("   "), HasSubstr("not valid JSON"));
  EXPECT_THAT(ParseError("<html>502 Bad Gateway</html>"), HasSubstr("not valid JSON"));
  EXPECT_THAT(ParseError(R"({"data":{"results":[{"_id":"a",}]}})"), HasSubstr("not valid JSON"));
  EXPECT_THAT(ParseError(R"({"data":{"results":[{"_id":"a"} {"_id":"b"}]}})"),
              HasSubstr("not valid JSON"));
  EXPECT_THAT(ParseError(R"({"data":{"skip":tru}})"), HasSubstr("not valid JSON"));
  EXPECT_THAT(ParseError(R"({"data":{"results":[{"_id":nul}]}})"),
              HasSubstr("results[0]._id: not valid JSON"));
  EXPECT_THAT(ParseError(R"({"data":{"results":[{"_id":"a","phoneNumber":fals}]}})"),
              HasSubstr("results[0].phoneNumber: not valid JSON"));
  EXPECT_THAT(ParseError(R"({"data":{"results":[{"_id":"a","createdAt":1.2.3}]}})"),
              HasSubstr("results[0].createdAt: not valid JSON"));
  EXPECT_THAT(ParseError(R"({"data":{}} {"data":{}})"), HasSubstr("upstream page"));
  EXPECT_THAT(ParseError(R"({"data":{}} x)"), HasSubstr("upstream page"));
}

TEST(PageParserTest, RejectsNonObjectTopLevel) {
  EXPECT_THAT(ParseError("[]"), HasSubstr("expected a JSON object at the top level"));
  EXPECT_THAT(ParseError("\"success\""), HasSubstr("upstream page"));
  EXPECT_THAT(ParseError("42"), HasSubstr("upstream page"));
  EXPECT_THAT(ParseError("null"), HasSubstr("upstream page"));
}

TEST(PageParserTest, CallsABodyCutShortTruncated) {
  std::string body = R"({"status":"success","data":{"results":[{"_id":"c1"},{"_id":"c2")";
  absl::StatusOr<Page> page = ParsePage(body);
  EXPECT_EQ(page.status().code(), absl::StatusCode::kUnavailable) << page.status();
  EXPECT_THAT(std::string(page.status().message()), HasSubstr("truncated body: upstream page: "));
}

TEST(PageParserTest, RejectsTruncatedJsonAtEveryPosition) {
  const std::string full(kDocumentedSample);
  for (size_t cut = 0; cut < full.size(); ++cut) {
    std::string body = full.substr(0, cut);
    absl::StatusOr<Page> page = ParsePage(body);
    EXPECT_FALSE(page.ok()) << "cut at " << cut << ": " << body;
    if (!page.ok() && page.status().code() != absl::StatusCode::kInternal) {
      EXPECT_EQ(page.status().code(), absl::StatusCode::kUnavailable) << page.status();
      EXPECT_THAT(std::string(page.status().message()), HasSubstr("truncated body")) << cut;
    }
  }
}

TEST(PageParserTest, NeverCrashesOnMutatedBytes) {
  // Every byte replaced by each of a few troublesome characters: errors are fine, crashes are not.
  const std::string full(kDocumentedSample);
  for (char replacement : {'"', '{', '}', '[', ']', ',', ':', '\\', '\0', '\xff'}) {
    for (size_t i = 0; i < full.size(); ++i) {
      std::string body = full;
      body[i] = replacement;
      absl::StatusOr<Page> page = ParsePage(body);
      if (!page.ok() && page.status().code() != absl::StatusCode::kInternal) {
        EXPECT_EQ(page.status().code(), absl::StatusCode::kUnavailable) << page.status();
      }
    }
  }
}

TEST(PageParserTest, RejectsResultsThatAreNotAnArray) {
  EXPECT_THAT(ParseError(R"({"data":{"results":{"_id":"a"}}})"),
              HasSubstr("data.results: expected an array or null"));
  EXPECT_THAT(ParseError(R"({"results":"none"})"), HasSubstr("results: expected an array"));
  EXPECT_THAT(ParseError(R"({"data":[]})"), HasSubstr("data: expected an object"));
  EXPECT_THAT(ParseError(Contacts(R"([{"_id":"a"},"b"])")),
              HasSubstr("data.results[1]: expected an object"));
}

TEST(PageParserTest, RejectsMissingOrEmptyId) {
  EXPECT_THAT(ParseError(Contacts(R"([{"_id":"a"},{"_id":"b"},{"_id":"c"},{"phoneNumber":"+1"}])")),
              HasSubstr("upstream page: data.results[3]._id: expected a non-empty string"));
  EXPECT_THAT(ParseError(Contacts(R"([{"_id":""}])")), HasSubstr("results[0]._id"));
  EXPECT_THAT(ParseError(Contacts(R"([{"_id":null}])")), HasSubstr("results[0]._id"));
  EXPECT_THAT(ParseError(Contacts(R"([{"_id":{"$oid":"x"}}])")), HasSubstr("results[0]._id"));
}

TEST(PageParserTest, ConvertsNumericIdToDecimalText) {
  Page page = ParseOk(Contacts(R"([{"_id":12345},{"_id":-7 },{"_id":18446744073709551615}])"));
  ASSERT_EQ(page.contacts.size(), 3u);
  EXPECT_EQ(page.contacts[0].id(), "12345");
  EXPECT_EQ(page.contacts[1].id(), "-7");
  EXPECT_EQ(page.contacts[2].id(), "18446744073709551615");
}

TEST(PageParserTest, FailsWithUpstreamMessageWhenStatusIsNotSuccess) {
  absl::StatusOr<Page> page =
      Parse(R"({"status":"failure","message":"Contact list not found","data":null})");
  ASSERT_FALSE(page.ok());
  EXPECT_EQ(page.status().code(), absl::StatusCode::kInternal);
  EXPECT_EQ(page.status().message(), "upstream page: status \"failure\": Contact list not found");
}

TEST(PageParserTest, ReportsStatusFailureEvenWhenItFollowsABadData) {
  // `data` alone would be a shape error; the declared failure explains more.
  EXPECT_EQ(
      ParseError(R"({"data":"oops","status":"error","errors":[{"msg":"Invalid JWT token"}]})"),
      "upstream page: status \"error\": Invalid JWT token");
  EXPECT_THAT(ParseError(R"({"status":500})"), HasSubstr("status \"500\""));
}

TEST(PageParserTest, RejectsInvalidUtf8) {
  EXPECT_THAT(ParseError(Contacts("[{\"_id\":\"a\xff\xfe\"}]")), HasSubstr("UTF8_ERROR"));
  EXPECT_THAT(ParseError(Contacts("[{\"_id\":\"a\",\"note\":\"\xc3\x28\"}]")),
              HasSubstr("not valid JSON"));
}

TEST(PageParserTest, RejectsTooLongIdAndPhone) {
  const std::string max_id(kMaxContactIdBytes, 'x');
  EXPECT_EQ(ParseOk(Contacts("[{\"_id\":\"" + max_id + "\"}]")).contacts[0].id(), max_id);
  EXPECT_THAT(ParseError(Contacts("[{\"_id\":\"" + max_id + "x\"}]")),
              HasSubstr("results[0]._id: expected at most 256 bytes"));
  const std::string long_phone(kMaxPhoneNumberBytes + 1, '1');
  EXPECT_THAT(ParseError(Contacts("[{\"_id\":\"a\",\"phoneNumber\":\"" + long_phone + "\"}]")),
              HasSubstr("results[0].phoneNumber: expected at most 64 bytes"));
  EXPECT_THAT(ParseError(Contacts(R"([{"_id":"a","phoneNumber":["+1"]}])")),
              HasSubstr("results[0].phoneNumber: expected a string, a number or null"));
}

TEST(PageParserTest, RejectsMoreContactsThanTheLimit) {
  std::string results = "[";
  for (size_t i = 0; i <= kMaxContactsPerPage; ++i) results.append(i == 0 ? "{}" : ",{}");
  results.append("]");
  EXPECT_THAT(ParseError(Contacts(results)), HasSubstr("more than the limit of 100000"));
}

TEST(PageParserTest, QuotesOnlyAShortSnippetOfTheBody) {
  std::string body = R"({"data":{"results":[{"_id":"a"}]}, )" + std::string(10000, 'z') + "}";
  const std::string message = ParseError(body);
  EXPECT_LT(message.size(), 300u) << message;
  EXPECT_THAT(message, Not(HasSubstr(std::string(100, 'z'))));
}

TEST(PageParserTest, DecodesEscapedStrings) {
  Page page = ParseOk(Contacts(R"([{"_id":"a\"b\\c\u00e9","phoneNumber":"+1\u0032"}])"));
  ASSERT_EQ(page.contacts.size(), 1u);
  EXPECT_EQ(page.contacts[0].id(), "a\"b\\c\xc3\xa9");
  EXPECT_EQ(page.contacts[0].phone_number(), "+12");
}

TEST(PageParserTest, ParsesLargePageAndReusesParserAcrossCalls) {
  std::string results = "[";
  for (int i = 0; i < 5000; ++i) {
    if (i) results += ",";
    results += R"({"_id":"cl-)" + std::to_string(i) +
               R"(","phoneNumber":"+1415555","createdAt":"2024-05-01T10:20:30.123Z"})";
  }
  results += "]";
  for (int round = 0; round < 3; ++round) {
    Page page = ParseOk(Contacts(results));
    ASSERT_EQ(page.contacts.size(), 5000u);
    EXPECT_EQ(page.contacts[4999].id(), "cl-4999");
    ASSERT_TRUE(ParseOk(kDocumentedSample).contacts.size() == 3u);
  }
}

TEST(ParseErrorMessageTest, JoinsErrorsMsg) {
  EXPECT_EQ(ParseErrorMessage(R"({"errors":[{"msg":"Invalid JWT token","code":4002}]})"),
            "Invalid JWT token");
  EXPECT_EQ(ParseErrorMessage(R"({"errors":[{"msg":"a","code":1},{"code":2},{"msg":"b"}],
                                  "message":"ignored"})"),
            "a; b");
}

TEST(ParseErrorMessageTest, FallsBackToMessageThenStatus) {
  EXPECT_EQ(ParseErrorMessage(R"({"message":"x"})"), "x");
  EXPECT_EQ(ParseErrorMessage(R"({"errors":[],"message":"x","status":"failure"})"), "x");
  EXPECT_EQ(ParseErrorMessage(R"({"status":"failure"})"), "failure");
  EXPECT_EQ(ParseErrorMessage(R"({"status":"failure","message":7})"), "failure");
}

TEST(ParseErrorMessageTest, ReturnsEmptyForGarbage) {
  EXPECT_EQ(ParseErrorMessage(""), "");
  EXPECT_EQ(ParseErrorMessage("<html><body>Bad Gateway</body></html>"), "");
  EXPECT_EQ(ParseErrorMessage(R"({"errors":[{"msg":"trunc)"), "");
  EXPECT_EQ(ParseErrorMessage("[1,2,3]"), "");
  EXPECT_EQ(ParseErrorMessage(R"({"other":"x"})"), "");
  EXPECT_EQ(ParseErrorMessage("{\"message\":\"\xff\"}"), "");
}

TEST(ParseErrorMessageTest, DropsControlCharactersAndCapsLength) {
  EXPECT_EQ(ParseErrorMessage(R"({"message":"line1\nline2\u0007\ttab"})"), "line1line2tab");
  const std::string long_message(1000, 'm');
  EXPECT_EQ(ParseErrorMessage("{\"message\":\"" + long_message + "\"}").size(),
            kMaxUpstreamMessageBytes);
  // 299 ASCII bytes then a 2-byte character: the character is dropped, not split.
  const std::string text = std::string(299, 'a') + "\xc3\xa9" + "tail";
  const std::string cut = ParseErrorMessage("{\"message\":\"" + text + "\"}");
  EXPECT_EQ(cut, std::string(299, 'a'));
}

google::protobuf::Timestamp MustParse(std::string_view text) {
  google::protobuf::Timestamp out;
  EXPECT_TRUE(ParseTimestamp(text, &out)) << text;
  return out;
}

bool Parses(std::string_view text) {
  google::protobuf::Timestamp out;
  return ParseTimestamp(text, &out);
}

TEST(ParseTimestampTest, ReadsUtcWithAndWithoutFraction) {
  EXPECT_EQ(MustParse("1970-01-01T00:00:00Z").seconds(), 0);
  EXPECT_EQ(MustParse("2024-05-01T10:20:30Z").seconds(), k20240501T102030);
  google::protobuf::Timestamp t = MustParse("2024-05-01T10:20:30.123Z");
  EXPECT_EQ(t.seconds(), k20240501T102030);
  EXPECT_EQ(t.nanos(), 123000000);
  EXPECT_EQ(MustParse("2024-05-01T10:20:30.000000001Z").nanos(), 1);
  EXPECT_EQ(MustParse("2024-05-01T10:20:30.999999999Z").nanos(), 999999999);
  EXPECT_EQ(MustParse("2024-05-01T10:20:30,5Z").nanos(), 500000000);
  EXPECT_EQ(MustParse("2024-05-01 10:20:30Z").seconds(), k20240501T102030);
}

TEST(ParseTimestampTest, AppliesOffsets) {
  EXPECT_EQ(MustParse("2024-05-01T12:20:30+02:00").seconds(), k20240501T102030);
  EXPECT_EQ(MustParse("2024-05-01T05:50:30-04:30").seconds(), k20240501T102030);
  EXPECT_EQ(MustParse("2024-05-01T12:20:30.25+0200").nanos(), 250000000);
  EXPECT_EQ(MustParse("2024-05-01T00:20:30-10:00").seconds(), k20240501T102030);
  EXPECT_EQ(MustParse("2024-05-01T10:20:30+00:00").seconds(), k20240501T102030);
}

TEST(ParseTimestampTest, HandlesLeapDays) {
  EXPECT_EQ(MustParse("2024-02-29T00:00:00Z").seconds(), 1709164800);
  EXPECT_EQ(MustParse("2000-02-29T00:00:00Z").seconds(), 951782400);
  EXPECT_FALSE(Parses("2023-02-29T00:00:00Z"));
  EXPECT_FALSE(Parses("1900-02-29T00:00:00Z"));
  EXPECT_EQ(MustParse("2023-12-31T23:59:59Z").seconds(), 1704067199);
}

TEST(ParseTimestampTest, CoversTimestampRange) {
  EXPECT_EQ(MustParse("0001-01-01T00:00:00Z").seconds(), -62135596800);
  EXPECT_EQ(MustParse("9999-12-31T23:59:59.999999999Z").seconds(), 253402300799);
  EXPECT_EQ(MustParse("1969-12-31T23:59:59Z").seconds(), -1);
  EXPECT_FALSE(Parses("0000-12-31T23:59:59Z"));
  EXPECT_FALSE(Parses("0001-01-01T00:00:00+01:00"));  // before year 1 in UTC
  EXPECT_FALSE(Parses("9999-12-31T23:59:59-01:00"));  // after year 9999 in UTC
}

TEST(ParseTimestampTest, RejectsBadDatesAndTimes) {
  for (std::string_view bad : {"",
                               "2024-05-01",
                               "2024-05-01T10:20",
                               "2024-13-01T00:00:00Z",
                               "2024-00-01T00:00:00Z",
                               "2024-04-31T00:00:00Z",
                               "2024-05-00T00:00:00Z",
                               "2024-05-32T00:00:00Z",
                               "2024-05-01T24:00:00Z",
                               "2024-05-01T10:60:00Z",
                               "2024-05-01T10:20:60Z",
                               "2024-05-01X10:20:30Z",
                               "2024/05/01T10:20:30Z",
                               "2024-5-01T10:20:30Z",
                               "24-05-01T10:20:30Z",
                               "2024-05-01T10:20:30.Z",
                               "2024-05-01T10:20:30.1234567890Z",
                               "2024-05-01T10:20:30ZZ",
                               "2024-05-01T10:20:30+2",
                               "2024-05-01T10:20:30+02:0",
                               "2024-05-01T10:20:30+24:00",
                               "2024-05-01T10:20:30+02:60",
                               "2024-05-01T10:20:30 Z",
                               "2024-05-01T10:20:30Zjunk",
                               "+2024-05-01T10:20:30Z",
                               "2024-05-01T1a:20:30Z",
                               "\xff\xff\xff\xff-05-01T10:20:30Z"}) {
    EXPECT_FALSE(Parses(bad)) << bad;
  }
}

TEST(ParseTimestampTest, LeavesOutputUnchangedOnFailure) {
  google::protobuf::Timestamp out;
  out.set_seconds(42);
  out.set_nanos(7);
  EXPECT_FALSE(ParseTimestamp("2024-02-30T00:00:00Z", &out));
  EXPECT_EQ(out.seconds(), 42);
  EXPECT_EQ(out.nanos(), 7);
}

}  // namespace
}  // namespace contacts::gateway
