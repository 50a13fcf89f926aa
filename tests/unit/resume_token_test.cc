#include "server/stream/resume_token.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>

#include <atomic>
#include <thread>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "server/core/encoding.h"
#include "server/core/error_reason.h"

namespace contacts::gateway {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;

const uint64_t kList = ListFingerprint("st-1", "cl-1", "acct-1");
constexpr char kKeyA[] = "key-a-0123456789abcdef0123456789abcdef";
constexpr char kKeyB[] = "key-b-fedcba9876543210fedcba9876543210";

std::shared_ptr<const ResumeTokenKeys> Keys(std::vector<std::string> keys) {
  absl::StatusOr<std::shared_ptr<const ResumeTokenKeys>> made = ResumeTokenKeys::Create(keys);
  EXPECT_TRUE(made.ok()) << made.status();
  return made.ok() ? *made : nullptr;
}
const ResumeTokenKeys& A() {
  static const auto* keys = new std::shared_ptr<const ResumeTokenKeys>(Keys({kKeyA}));
  return **keys;
}

TEST(ResumeTokenTest, RoundTrips) {
  ResumePoint point{.next_offset = 123456789, .delivered = 42, .last_ids = {"c-1", "c-2"}};
  absl::StatusOr<ResumePoint> back =
      DecodeResumeToken(EncodeResumeToken(point, kList, A()), kList, A());
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->next_offset, 123456789);
  EXPECT_EQ(back->delivered, 42);
  EXPECT_THAT(back->last_ids, ElementsAre("c-1", "c-2"));
}

TEST(ResumeTokenTest, IsUrlSafeText) {
  std::string token =
      EncodeResumeToken({.next_offset = 5, .delivered = 5, .last_ids = {"x"}}, kList, A());
  EXPECT_EQ(
      token.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"),
      std::string::npos);
}

TEST(ResumeTokenTest, RejectsATokenOfAnotherList) {
  std::string token =
      EncodeResumeToken({.next_offset = 5, .delivered = 0, .last_ids = {}}, kList, A());
  absl::StatusOr<ResumePoint> back =
      DecodeResumeToken(token, ListFingerprint("st-1", "cl-2", "acct-1"), A());
  EXPECT_EQ(back.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(back.status().message(), HasSubstr("another list"));
}

TEST(ResumeTokenTest, FingerprintSeparatesFields) {
  EXPECT_NE(ListFingerprint("ab", "c", "d"), ListFingerprint("a", "bc", "d"));
}

TEST(ResumeTokenTest, RejectsEveryTamperedByte) {
  std::string bytes = *Base64UrlDecode(
      EncodeResumeToken({.next_offset = 77, .delivered = 7, .last_ids = {"c-9"}}, kList, A()));
  for (size_t i = 0; i < bytes.size(); ++i) {
    std::string tampered = bytes;
    tampered[i] ^= 0x01;
    absl::StatusOr<ResumePoint> back = DecodeResumeToken(Base64UrlEncode(tampered), kList, A());
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
        EncodeResumeToken({.next_offset = 77, .delivered = 7, .last_ids = {id}}, list, A());
    for (size_t i = 0; i < token.size(); ++i) {
      for (char c : kAlphabet) {
        if (c == token[i]) continue;
        std::string changed = token;
        changed[i] = c;
        EXPECT_EQ(DecodeResumeToken(changed, list, A()).status().code(),
                  absl::StatusCode::kInvalidArgument)
            << "position " << i << " as '" << c << "'";
      }
    }
  }
}

TEST(ResumeTokenTest, RejectsGarbage) {
  for (const char* token : {"", "x", "not a token!", "AAAAAAAAAAAAAAAAAAAAAAAAAAAA"}) {
    EXPECT_EQ(DecodeResumeToken(token, kList, A()).status().code(),
              absl::StatusCode::kInvalidArgument)
        << token;
  }
}

TEST(ResumeTokenTest, OnlyTheKeysThatSignedATokenAcceptIt) {
  const ResumePoint point{.next_offset = 40, .delivered = 40, .last_ids = {"c-39"}};
  const std::string token = EncodeResumeToken(point, kList, A());
  // Another holder of key A (another replica) accepts it; a gateway with key B does not.
  EXPECT_TRUE(DecodeResumeToken(token, kList, *Keys({kKeyA})).ok());
  absl::StatusOr<ResumePoint> other = DecodeResumeToken(token, kList, *Keys({kKeyB}));
  EXPECT_EQ(other.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(other.status().message(), HasSubstr("signed with a key this gateway does not hold"));
  EXPECT_EQ(ReasonOf(other.status()), reason::kInvalidResumeToken);
}

TEST(ResumeTokenTest, RotationSignsWithTheFirstKeyAndAcceptsEvery) {
  const ResumePoint point{.next_offset = 7, .delivered = 7, .last_ids = {"c-6"}};
  const std::shared_ptr<const ResumeTokenKeys> rotated = Keys({kKeyB, kKeyA});
  const std::string old_token = EncodeResumeToken(point, kList, A());
  const std::string new_token = EncodeResumeToken(point, kList, *rotated);
  EXPECT_NE(old_token, new_token);
  absl::StatusOr<ResumePoint> old_back = DecodeResumeToken(old_token, kList, *rotated);
  ASSERT_TRUE(old_back.ok()) << old_back.status();
  EXPECT_EQ(old_back->next_offset, 7);
  EXPECT_TRUE(DecodeResumeToken(new_token, kList, *rotated).ok());
  EXPECT_TRUE(DecodeResumeToken(new_token, kList, *Keys({kKeyB})).ok());  // B signed it
  EXPECT_FALSE(DecodeResumeToken(new_token, kList, A()).ok());
}

// RFC 4231 test cases 6 and 7 (a key longer than SHA-256's block is hashed first; the second
// message spans several blocks), truncated to the 16 bytes a token carries.
TEST(ResumeTokenTest, SignsWithHmacSha256) {
  const std::string key(131, '\xaa');
  const std::shared_ptr<const ResumeTokenKeys> keys = Keys({key});
  EXPECT_EQ(
      absl::BytesToHexString(keys->Sign("Test Using Larger Than Block-Size Key - Hash Key First")),
      "60e431591ee0b67f0d8a26aacbf5b77f");
  EXPECT_EQ(absl::BytesToHexString(keys->Sign(
                "This is a test using a larger than block-size key and a larger than block-size "
                "data. The key needs to be hashed before being used by the HMAC algorithm.")),
            "9b09ffa71b942fcb27635fbcd5b0e944");
}

// Keys up to SHA-256's block size are padded, not hashed: the same MAC as OpenSSL's HMAC().
TEST(ResumeTokenTest, SignsAsOpenSslsHmacForEveryKeyLength) {
  for (size_t length : {32, 63, 64, 65, 200}) {
    std::string key(length, '\0');
    for (size_t i = 0; i < length; ++i) key[i] = static_cast<char>('a' + i % 26);
    for (std::string body : {std::string(), std::string("x"), std::string(300, 'y')}) {
      unsigned char digest[EVP_MAX_MD_SIZE];
      unsigned int size = 0;
      HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
           reinterpret_cast<const unsigned char*>(body.data()), body.size(), digest, &size);
      EXPECT_EQ(Keys({key})->Sign(body), std::string(reinterpret_cast<char*>(digest), 16))
          << "key of " << length << " bytes, body of " << body.size();
    }
  }
}

// Tokens signed on many threads at once are each right (each thread hashes on a context of its
// own).
TEST(ResumeTokenTest, SignsOnManyThreadsAtOnce) {
  const std::string expected = A().Sign("body");
  std::vector<std::thread> threads;
  std::atomic<int> wrong{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 2000; ++i) {
        if (A().Sign("body") != expected) ++wrong;
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(wrong.load(), 0);
}

// A version 1 token as that scheme built it (8 bytes of an unkeyed SHA-256): anyone could make one
// for any offset of any list, so none is accepted any more.
TEST(ResumeTokenTest, RefusesTokensOfTheOldChecksumScheme) {
  std::string bytes(1, '\x01');
  bytes.resize(9);
  const uint64_t list = kList;
  for (int i = 0; i < 8; ++i) bytes[1 + i] = static_cast<char>(list >> (8 * i));
  AppendVarint(&bytes, 1000000);  // an offset this caller was never given
  AppendVarint(&bytes, 0);
  AppendVarint(&bytes, 0);
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size(), digest);
  bytes.append(reinterpret_cast<const char*>(digest), 8);
  absl::StatusOr<ResumePoint> back = DecodeResumeToken(Base64UrlEncode(bytes), kList, A());
  EXPECT_EQ(back.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(back.status().message(), HasSubstr("version 1 token (checksummed, not signed)"));
  EXPECT_THAT(back.status().message(), HasSubstr("start the stream again without resume_token"));
}

TEST(ResumeTokenTest, KeyFilesNeedLongKeysAndNeverQuoteThem) {
  absl::StatusOr<std::shared_ptr<const ResumeTokenKeys>> two =
      ResumeTokenKeys::Parse(absl::StrCat("  ", kKeyB, "\n\n", kKeyA, "\r\n"));
  ASSERT_TRUE(two.ok()) << two.status();
  const std::string token =
      EncodeResumeToken({.next_offset = 1, .delivered = 1, .last_ids = {"c-0"}}, kList, **two);
  EXPECT_TRUE(DecodeResumeToken(token, kList, *Keys({kKeyB})).ok());  // the first line signs
  EXPECT_TRUE(DecodeResumeToken(EncodeResumeToken({}, kList, A()), kList, **two).ok());

  const std::string short_key = "short-key-S3CR3T";
  absl::StatusOr<std::shared_ptr<const ResumeTokenKeys>> bad =
      ResumeTokenKeys::Parse(absl::StrCat(kKeyA, "\n", short_key, "\n"));
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(bad.status().message(), HasSubstr("line 2: a key needs at least 32 bytes"));
  EXPECT_THAT(bad.status().message(), Not(HasSubstr(short_key)));
  EXPECT_THAT(bad.status().message(), Not(HasSubstr(kKeyA)));
  EXPECT_THAT(ResumeTokenKeys::Parse(" \n\n").status().message(), HasSubstr("no key"));
}

TEST(ResumeTokenTest, TheProcessKeyIsRandomButStable) {
  const std::shared_ptr<const ResumeTokenKeys>& keys = ResumeTokenKeys::ProcessRandom();
  EXPECT_EQ(keys, ResumeTokenKeys::ProcessRandom());
  const std::string token =
      EncodeResumeToken({.next_offset = 3, .delivered = 3, .last_ids = {"c-2"}}, kList, *keys);
  EXPECT_TRUE(DecodeResumeToken(token, kList, *keys).ok());
  EXPECT_FALSE(DecodeResumeToken(token, kList, A()).ok());
}

}  // namespace
}  // namespace contacts::gateway
