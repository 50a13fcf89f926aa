#include "server/upstream/jwt.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <array>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "server/core/encoding.h"

namespace contacts::gateway {
namespace {

constexpr std::string_view kHs256Header = R"({"alg":"HS256","typ":"JWT"})";

std::string HmacSha256(std::string_view key, std::string_view data) {
  std::array<unsigned char, EVP_MAX_MD_SIZE> mac;
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(data.data()), data.size(), mac.data(), &len);
  return std::string(reinterpret_cast<const char*>(mac.data()), len);
}

// JSON string literal for configuration values (ids, subjects): quotes, backslashes and control
// characters escaped.
std::string JsonString(std::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      absl::StrAppend(&out, "\\u00", absl::Hex(static_cast<unsigned char>(c), absl::kZeroPad2));
    } else {
      out += c;
    }
  }
  return out + "\"";
}

std::string RandomHex(size_t bytes) {
  std::string raw(bytes, '\0');
  RAND_bytes(reinterpret_cast<unsigned char*>(raw.data()), static_cast<int>(raw.size()));
  std::string hex;
  for (unsigned char c : raw) absl::StrAppend(&hex, absl::Hex(c, absl::kZeroPad2));
  return hex;
}

}  // namespace

std::string SignHs256(std::string_view header_json, std::string_view payload_json,
                      std::string_view secret) {
  std::string signing_input =
      absl::StrCat(Base64UrlEncode(header_json), ".", Base64UrlEncode(payload_json));
  std::string mac = HmacSha256(secret, signing_input);
  return absl::StrCat(signing_input, ".", Base64UrlEncode(mac));
}

absl::StatusOr<std::string> VerifyHs256(std::string_view token, std::string_view secret) {
  std::vector<absl::string_view> parts = absl::StrSplit(AsAbsl(token), '.');
  if (parts.size() != 3)
    return absl::UnauthenticatedError("JWT is not of the form header.payload.signature");
  std::optional<std::string> header = Base64UrlDecode({parts[0].data(), parts[0].size()});
  std::optional<std::string> payload = Base64UrlDecode({parts[1].data(), parts[1].size()});
  std::optional<std::string> signature = Base64UrlDecode({parts[2].data(), parts[2].size()});
  if (!header || !payload || !signature) return absl::UnauthenticatedError("JWT is not base64url");
  std::string compact_header;
  for (char c : *header) {
    if (c != ' ' && c != '\n' && c != '\r' && c != '\t') compact_header += c;
  }
  if (compact_header.find(R"("alg":"HS256")") == std::string::npos) {
    return absl::UnauthenticatedError("JWT algorithm is not HS256");
  }
  std::string expected = HmacSha256(secret, token.substr(0, parts[0].size() + 1 + parts[1].size()));
  if (signature->size() != expected.size() ||
      CRYPTO_memcmp(signature->data(), expected.data(), expected.size()) != 0) {
    return absl::UnauthenticatedError("JWT signature does not verify");
  }
  return *std::move(payload);
}

JwtMinter::JwtMinter(std::string client_id, std::string client_secret, JwtOptions options)
    : client_id_(std::move(client_id)),
      client_secret_(std::move(client_secret)),
      options_(std::move(options)) {}

std::string JwtMinter::Token(absl::Time now) {
  if (options_.with_jti) return Mint(now);
  absl::MutexLock lock(&mu_);
  if (now >= refresh_at_) {
    cached_ = Mint(now);
    // Re-mint when 80% of the lifetime has passed, so a token never expires in flight.
    refresh_at_ =
        options_.ttl == absl::ZeroDuration() ? absl::InfiniteFuture() : now + options_.ttl * 0.8;
  }
  return cached_;
}

std::string JwtMinter::Mint(absl::Time now) const {
  std::string payload = absl::StrCat(R"({"sub":)", JsonString(options_.subject), R"(,"appId":)",
                                     JsonString(client_id_));
  if (options_.with_jti) absl::StrAppend(&payload, R"(,"jti":")", RandomHex(16), "\"");
  if (options_.ttl > absl::ZeroDuration()) {
    int64_t iat = absl::ToUnixSeconds(now);
    absl::StrAppend(&payload, R"(,"iat":)", iat, R"(,"exp":)",
                    iat + absl::ToInt64Seconds(options_.ttl));
  }
  payload += "}";
  return SignHs256(kHs256Header, payload, client_secret_);
}

}  // namespace contacts::gateway
