#include "server/upstream/jwt.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace contacts::gateway {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

// The HS256 example of RFC 7519 / jwt.io: header, payload and secret give this exact token.
constexpr char kHeader[] = R"({"alg":"HS256","typ":"JWT"})";
constexpr char kPayload[] = R"({"sub":"1234567890","name":"John Doe","iat":1516239022})";
constexpr char kSecret[] = "your-256-bit-secret";
constexpr char kToken[] =
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwia"
    "WF0IjoxNTE2MjM5MDIyfQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c";

TEST(JwtTest, SignsTheKnownHs256Vector) {
  EXPECT_EQ(SignHs256(kHeader, kPayload, kSecret), kToken);
}

TEST(JwtTest, VerifiesTheKnownVector) {
  absl::StatusOr<std::string> payload = VerifyHs256(kToken, kSecret);
  ASSERT_TRUE(payload.ok()) << payload.status();
  EXPECT_EQ(*payload, kPayload);
}

TEST(JwtTest, RejectsWrongSecretWithoutEchoingIt) {
  absl::StatusOr<std::string> payload = VerifyHs256(kToken, "another-secret");
  EXPECT_EQ(payload.status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_THAT(payload.status().message(), Not(HasSubstr("another-secret")));
  EXPECT_THAT(payload.status().message(), Not(HasSubstr(kToken)));
}

TEST(JwtTest, RejectsASignatureWithAlteredTrailingBits) {
  std::string token = kToken;
  ASSERT_EQ(token.back(), 'c');  // 43 characters: the last one carries 2 unused bits
  token.back() = 'd';
  EXPECT_EQ(VerifyHs256(token, kSecret).status().code(), absl::StatusCode::kUnauthenticated);
}

TEST(JwtMinterTest, MintsAppIdSubAndLifetime) {
  JwtMinter minter("cs-app", "s3cret", JwtOptions{.subject = "gw", .ttl = absl::Minutes(5)});
  absl::Time now = absl::FromUnixSeconds(1700000000);
  absl::StatusOr<std::string> payload = VerifyHs256(minter.Token(now), "s3cret");
  ASSERT_TRUE(payload.ok());
  EXPECT_EQ(*payload, R"({"sub":"gw","appId":"cs-app","iat":1700000000,"exp":1700000300})");
}

TEST(JwtMinterTest, CachesUntilNearExpiry) {
  JwtMinter minter("cs-app", "s3cret", JwtOptions{.ttl = absl::Minutes(5)});
  absl::Time now = absl::FromUnixSeconds(1700000000);
  std::string first = minter.Token(now);
  EXPECT_EQ(minter.Token(now + absl::Minutes(3)), first);
  EXPECT_NE(minter.Token(now + absl::Minutes(4) + absl::Seconds(1)), first);
}

TEST(JwtMinterTest, JtiMakesEveryTokenUnique) {
  JwtMinter minter("cs-app", "s3cret", JwtOptions{.with_jti = true, .ttl = absl::ZeroDuration()});
  std::string a = minter.Token(), b = minter.Token();
  EXPECT_NE(a, b);
  EXPECT_THAT(*VerifyHs256(a, "s3cret"), HasSubstr(R"("jti":")"));
  EXPECT_THAT(*VerifyHs256(a, "s3cret"), Not(HasSubstr("exp")));
}

}  // namespace
}  // namespace contacts::gateway
