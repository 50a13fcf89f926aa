#include "server/service/request_validation.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>

namespace contacts::gateway {
namespace {

using ::testing::HasSubstr;

contacts::v1::StreamContactsRequest Valid() {
  contacts::v1::StreamContactsRequest request;
  request.set_stream_id("st-1f2e3d");
  request.set_contact_list_id("cl-sim-100");
  request.set_account_id("acct_01.x");
  return request;
}

TEST(RequestValidationTest, AcceptsKoreIds) { EXPECT_TRUE(ValidateRequest(Valid()).ok()); }

TEST(RequestValidationTest, RejectsBadIdsNamingTheField) {
  const std::string kBad[] = {"",
                              "../x",
                              "a/b",
                              "%2F",
                              "a\r\nb",
                              ".",
                              "..",
                              "a b",
                              "é",
                              std::string(129, 'a'),
                              std::string("a\0b", 3),
                              "a?b",
                              "a#b"};
  for (const std::string& bad : kBad) {
    for (const char* field : {"stream_id", "contact_list_id", "account_id"}) {
      contacts::v1::StreamContactsRequest request = Valid();
      if (std::string(field) == "stream_id") request.set_stream_id(bad);
      if (std::string(field) == "contact_list_id") request.set_contact_list_id(bad);
      if (std::string(field) == "account_id") request.set_account_id(bad);
      absl::Status status = ValidateRequest(request);
      EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << field << "=" << bad;
      EXPECT_THAT(status.message(), HasSubstr(field)) << bad;
    }
  }
}

TEST(RequestValidationTest, RejectsNegativeNumbers) {
  contacts::v1::StreamContactsRequest request = Valid();
  request.set_page_size(-1);
  EXPECT_THAT(ValidateRequest(request).message(), HasSubstr("page_size"));
  request = Valid();
  request.set_max_batch_size(-5);
  EXPECT_THAT(ValidateRequest(request).message(), HasSubstr("max_batch_size"));
  request = Valid();
  request.set_max_contacts(-5);
  EXPECT_THAT(ValidateRequest(request).message(), HasSubstr("max_contacts"));
}

}  // namespace
}  // namespace contacts::gateway
