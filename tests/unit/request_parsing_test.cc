#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "absl/strings/str_cat.h"
#include "server/service/request_validation.h"

namespace contacts::gateway {
namespace {

using ::testing::HasSubstr;

// Wire bytes of a request whose `field` (1 stream_id, 2 contact_list_id, 3 account_id, 7
// resume_token) is `value`, the other ids valid: serialized by hand, as protobuf would not write
// invalid UTF-8 itself.
std::string Wire(int field, const std::string& value) {
  std::string out;
  for (int f : {1, 2, 3, 7}) {
    std::string v = f == field ? value : (f == 7 ? "" : "ok-id");
    if (v.empty() && f == 7) continue;
    out.push_back(static_cast<char>(f << 3 | 2));
    out.push_back(static_cast<char>(v.size()));
    out += v;
  }
  return out;
}

TEST(RequestParsingTest, ParsesAValidRequest) {
  absl::StatusOr<contacts::v1::StreamContactsRequest> request = ParseRequest(Wire(2, "cl-1"));
  ASSERT_TRUE(request.ok()) << request.status();
  EXPECT_EQ(request->contact_list_id(), "cl-1");
  EXPECT_EQ(request->stream_id(), "ok-id");
}

TEST(RequestParsingTest, NamesTheFieldThatIsNotUtf8) {
  const std::pair<int, const char*> kFields[] = {
      {1, "stream_id"}, {2, "contact_list_id"}, {3, "account_id"}, {7, "resume_token"}};
  for (auto [number, name] : kFields) {
    absl::StatusOr<contacts::v1::StreamContactsRequest> request =
        ParseRequest(Wire(number, "a\xff\xfe"));
    EXPECT_EQ(request.status().code(), absl::StatusCode::kInvalidArgument) << name;
    EXPECT_EQ(request.status().message(), absl::StrCat(name, " is not valid UTF-8"));
  }
}

TEST(RequestParsingTest, ValidatesAfterParsing) {
  absl::StatusOr<contacts::v1::StreamContactsRequest> request = ParseRequest(Wire(3, "../x"));
  EXPECT_EQ(request.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(request.status().message(), HasSubstr("account_id"));
}

TEST(RequestParsingTest, RejectsBytesThatAreNoRequest) {
  absl::StatusOr<contacts::v1::StreamContactsRequest> request = ParseRequest("\x0a\x7f");
  EXPECT_EQ(request.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(request.status().message(), HasSubstr("not a contacts.v1.StreamContactsRequest"));
}

}  // namespace
}  // namespace contacts::gateway
