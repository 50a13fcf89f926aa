#include "server/upstream/jwt.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <array>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace contacts::gateway {
namespace {

constexpr std::string_view kAlphabet =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
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

std::string Base64UrlEncode(std::string_view bytes) {
  std::string out((bytes.size() * 4 + 2) / 3, '\0');  // no padding
  char* o = out.data();
  size_t i = 0;
  for (; i + 2 < bytes.size(); i += 3) {
    uint32_t n = (uint8_t(bytes[i]) << 16) | (uint8_t(bytes[i + 1]) << 8) | uint8_t(bytes[i + 2]);
    *o++ = kAlphabet[n >> 18];
    *o++ = kAlphabet[(n >> 12) & 63];
    *o++ = kAlphabet[(n >> 6) & 63];
    *o++ = kAlphabet[n & 63];
  }
  if (i < bytes.size()) {
    uint32_t n = uint8_t(bytes[i]) << 16;
    if (i + 1 < bytes.size()) n |= uint8_t(bytes[i + 1]) << 8;
    *o++ = kAlphabet[n >> 18];
    *o++ = kAlphabet[(n >> 12) & 63];
    if (i + 1 < bytes.size()) *o++ = kAlphabet[(n >> 6) & 63];
  }
  return out;
}

std::optional<std::string> Base64UrlDecode(std::string_view text) {
  // Padding, if any, only as much as completes the last group of four.
  size_t padding = 0;
  while (!text.empty() && text.back() == '=') {
    text.remove_suffix(1);
    ++padding;
  }
  if (text.size() % 4 == 1) return std::nullopt;
  if (padding != 0 && padding != (4 - text.size() % 4) % 4) return std::nullopt;
  std::string out;
  out.reserve(text.size() * 3 / 4);
  uint32_t acc = 0;
  int bits = 0;
  for (char c : text) {
    size_t v = kAlphabet.find(c);
    if (v == std::string_view::npos) return std::nullopt;
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((acc >> bits) & 0xff);
    }
  }
  // Canonical form only: the bits left over after the last byte must be zero, so that one byte
  // string has exactly one encoding (else "AB" and "AC" would both decode to the same byte, and
  // a resume token or JWT signature could be altered without being rejected).
  if ((acc & ((uint32_t{1} << bits) - 1)) != 0) return std::nullopt;
  return out;
}

std::string SignHs256(std::string_view header_json, std::string_view payload_json,
                      std::string_view secret) {
  std::string signing_input =
      absl::StrCat(Base64UrlEncode(header_json), ".", Base64UrlEncode(payload_json));
  std::string mac = HmacSha256(secret, signing_input);
  return absl::StrCat(signing_input, ".", Base64UrlEncode(mac));
}

absl::StatusOr<std::string> VerifyHs256(std::string_view token, std::string_view secret) {
  std::vector<absl::string_view> parts =
      absl::StrSplit(absl::string_view(token.data(), token.size()), '.');
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
