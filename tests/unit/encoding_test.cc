// The encodings of server/core/encoding.h: canonical base64url and protobuf varints.
#include "server/core/encoding.h"

#include <gtest/gtest.h>

#include <optional>
#include <string>

namespace contacts::gateway {
namespace {

TEST(EncodingTest, Base64UrlRoundTripsEveryLength) {
  std::string bytes;
  for (int i = 0; i < 70; ++i) {
    EXPECT_EQ(Base64UrlDecode(Base64UrlEncode(bytes)), bytes);
    bytes.push_back(static_cast<char>(i * 37));
  }
  EXPECT_FALSE(Base64UrlDecode("a+b/").has_value());
}

// Found by fuzz_resume_token: "AB" and "AC" both decoded to "\0" (the low bits of a last
// character were ignored), so a resume token or a JWT signature could be altered unnoticed.
TEST(EncodingTest, Base64UrlRejectsNonZeroTrailingBits) {
  EXPECT_EQ(Base64UrlDecode("AA"), std::string(1, '\0'));
  EXPECT_EQ(Base64UrlDecode("AB"), std::nullopt);
  EXPECT_EQ(Base64UrlDecode("AAA"), std::string(2, '\0'));
  EXPECT_EQ(Base64UrlDecode("AAB"), std::nullopt);
}

// JWTs (RFC 7515) and resume tokens are written without padding: padded text is another encoding.
TEST(EncodingTest, Base64UrlRejectsPadding) {
  EXPECT_EQ(Base64UrlDecode("AA=="), std::nullopt);
  EXPECT_EQ(Base64UrlDecode("AAA="), std::nullopt);
  EXPECT_EQ(Base64UrlDecode("AA="), std::nullopt);
}

TEST(EncodingTest, VarintsAreProtobufs) {
  std::string out;
  AppendVarint(&out, 1);
  AppendVarint(&out, 300);
  AppendVarint(&out, uint64_t{1} << 63);
  EXPECT_EQ(out, std::string("\x01\xac\x02\x80\x80\x80\x80\x80\x80\x80\x80\x80\x01", 13));
  EXPECT_EQ(VarintSize(127), 1u);
  EXPECT_EQ(VarintSize(128), 2u);
}

}  // namespace
}  // namespace contacts::gateway
