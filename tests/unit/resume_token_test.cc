#include "server/stream/resume_token.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "server/core/encoding.h"

namespace contacts::gateway {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

const uint64_t kList = ListFingerprint("st-1", "cl-1", "acct-1");

TEST(ResumeTokenTest, RoundTrips) {
  ResumePoint point{.next_offset = 123456789, .delivered = 42, .last_ids = {"c-1", "c-2"}};
  absl::StatusOr<ResumePoint> back = DecodeResumeToken(EncodeResumeToken(point, kList), kList);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->next_offset, 123456789);
  EXPECT_EQ(back->delivered, 42);
  EXPECT_THAT(back->last_ids, ElementsAre("c-1", "c-2"));
}

TEST(ResumeTokenTest, IsUrlSafeText) {
  std::string token =
      EncodeResumeToken({.next_offset = 5, .delivered = 5, .last_ids = {"x"}}, kList);
  EXPECT_EQ(
      token.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"),
      std::string::npos);
}

TEST(ResumeTokenTest, RejectsATokenOfAnotherList) {
  std::string token = EncodeResumeToken({.next_offset = 5, .delivered = 0, .last_ids = {}}, kList);
  absl::StatusOr<ResumePoint> back =
      DecodeResumeToken(token, ListFingerprint("st-1", "cl-2", "acct-1"));
  EXPECT_EQ(back.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(back.status().message(), HasSubstr("another list"));
}

TEST(ResumeTokenTest, FingerprintSeparatesFields) {
  EXPECT_NE(ListFingerprint("ab", "c", "d"), ListFingerprint("a", "bc", "d"));
}

TEST(ResumeTokenTest, RejectsEveryTamperedByte) {
  std::string bytes = *Base64UrlDecode(
      EncodeResumeToken({.next_offset = 77, .delivered = 7, .last_ids = {"c-9"}}, kList));
  for (size_t i = 0; i < bytes.size(); ++i) {
    std::string tampered = bytes;
    tampered[i] ^= 0x01;
    absl::StatusOr<ResumePoint> back = DecodeResumeToken(Base64UrlEncode(tampered), kList);
    EXPECT_EQ(back.status().code(), absl::StatusCode::kInvalidArgument) << "byte " << i;
    EXPECT_THAT(back.status().message(), HasSubstr("resume_token")) << "byte " << i;
  }
}

// Found by fuzz_resume_token (input tests/fuzz/corpus/fuzz_resume_token/crash-trailing-bits):
// changing the last character of a token within its unused low bits was accepted.
TEST(ResumeTokenTest, RejectsEveryChangedCharacter) {
  constexpr std::string_view kAlphabet =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  // Ids of 3, 4 and 5 bytes: token bodies of every length modulo 3, so the last character has
  // 0, 4 or 2 unused bits.
  for (const char* id : {"c-9", "c-10", "c-100"}) {
    const uint64_t list = kList;
    const std::string token =
        EncodeResumeToken({.next_offset = 77, .delivered = 7, .last_ids = {id}}, list);
    for (size_t i = 0; i < token.size(); ++i) {
      for (char c : kAlphabet) {
        if (c == token[i]) continue;
        std::string changed = token;
        changed[i] = c;
        EXPECT_EQ(DecodeResumeToken(changed, list).status().code(),
                  absl::StatusCode::kInvalidArgument)
            << "position " << i << " as '" << c << "'";
      }
    }
  }
}

TEST(ResumeTokenTest, RejectsGarbage) {
  for (const char* token : {"", "x", "not a token!", "AAAAAAAAAAAAAAAAAAAAAAAAAAAA"}) {
    EXPECT_EQ(DecodeResumeToken(token, kList).status().code(), absl::StatusCode::kInvalidArgument)
        << token;
  }
}

}  // namespace
}  // namespace contacts::gateway
