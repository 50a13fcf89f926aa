#include "server/stream/resume_token.h"

// SHA256_CTX: see ResumeTokenKeys::Key.
#define OPENSSL_SUPPRESS_DEPRECATED
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include <cstdlib>
#include <cstring>
#include <optional>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "google/protobuf/io/coded_stream.h"
#include "server/core/encoding.h"
#include "server/core/error_reason.h"

namespace contacts::gateway {
namespace {

// Layout of version 2, before base64url:
//   u8 version | u64 list fingerprint | varint next_offset | varint delivered |
//   varint id count | (varint length, bytes) per id | 16 bytes of HMAC-SHA256 over all of the
//   above.
// Version 1 had 8 bytes of an unkeyed SHA-256 in place of the HMAC: anyone could make one up.
constexpr uint8_t kVersion = 2;
constexpr uint8_t kChecksummedVersion = 1;
constexpr size_t kMacBytes = 16;
constexpr size_t kMaxIdBytes = 256;

// Every refusal of a token: kInvalidArgument with the reason INVALID_RESUME_TOKEN.
absl::Status Invalid(std::string_view message) {
  return WithReason(absl::InvalidArgumentError(AsAbsl(message)), reason::kInvalidResumeToken);
}

absl::Status Malformed() {
  return Invalid(
      "resume_token: not a token this gateway issued (malformed, modified, or signed with a key "
      "this gateway does not hold); pass the resume_token of a previous response unchanged");
}

}  // namespace

// HMAC-SHA256 (RFC 2104) with the key's inner and outer blocks hashed once: every message of a
// stream carries a signed token, and OpenSSL's one-shot HMAC() sets the key up anew on each call
// (about 1.2 us). The hashed blocks are SHA256_CTX structs, copied per token: OpenSSL 3.0's
// EVP_MD_CTX_copy_ex frees and allocates the digest state on every copy, two of each per token.
// SHA256_Init and its kin are deprecated since OpenSSL 3.0 but kept, and compute the same digest.
class ResumeTokenKeys::Key {
 public:
  explicit Key(std::string_view secret) {
    constexpr size_t kBlock = 64;
    unsigned char key[kBlock] = {};
    if (secret.size() > kBlock) {
      SHA256(reinterpret_cast<const unsigned char*>(secret.data()), secret.size(), key);
    } else {
      std::memcpy(key, secret.data(), secret.size());
    }
    unsigned char pad[kBlock];
    for (auto [ctx, byte] : {std::pair{&inner_, 0x36}, std::pair{&outer_, 0x5c}}) {
      for (size_t i = 0; i < kBlock; ++i) pad[i] = key[i] ^ byte;
      SHA256_Init(ctx);
      SHA256_Update(ctx, pad, kBlock);
    }
    OPENSSL_cleanse(key, sizeof key);
    OPENSSL_cleanse(pad, sizeof pad);
  }
  ~Key() {
    OPENSSL_cleanse(&inner_, sizeof inner_);
    OPENSSL_cleanse(&outer_, sizeof outer_);
  }
  Key(const Key&) = delete;
  Key& operator=(const Key&) = delete;

  // Writes the first kMacBytes of HMAC-SHA256(secret, body) to `mac`. Thread-safe: the hashed
  // blocks are only copied from.
  void Mac(std::string_view body, unsigned char* mac) const {
    SHA256_CTX ctx = inner_;
    unsigned char digest[SHA256_DIGEST_LENGTH];
    SHA256_Update(&ctx, body.data(), body.size());
    SHA256_Final(digest, &ctx);
    ctx = outer_;
    SHA256_Update(&ctx, digest, sizeof digest);
    SHA256_Final(digest, &ctx);
    std::memcpy(mac, digest, kMacBytes);
    OPENSSL_cleanse(&ctx, sizeof ctx);
  }

 private:
  SHA256_CTX inner_;  // after key XOR ipad
  SHA256_CTX outer_;  // after key XOR opad
};

ResumeTokenKeys::ResumeTokenKeys(const std::vector<std::string>& keys) {
  for (const std::string& key : keys) keys_.push_back(std::make_unique<const Key>(key));
}

ResumeTokenKeys::~ResumeTokenKeys() = default;

absl::StatusOr<std::shared_ptr<const ResumeTokenKeys>> ResumeTokenKeys::Create(
    std::vector<std::string> keys) {
  if (keys.empty()) return absl::InvalidArgumentError("no resume token key");
  for (size_t i = 0; i < keys.size(); ++i) {
    if (keys[i].size() < kMinKeyBytes) {
      return absl::InvalidArgumentError(
          absl::StrCat("resume token key ", i + 1, " has fewer than ", kMinKeyBytes, " bytes"));
    }
  }
  return std::shared_ptr<const ResumeTokenKeys>(new ResumeTokenKeys(keys));
}

absl::StatusOr<std::shared_ptr<const ResumeTokenKeys>> ResumeTokenKeys::Parse(
    std::string_view text) {
  std::vector<std::string> keys;
  int line_number = 0;
  for (absl::string_view line : absl::StrSplit(AsAbsl(text), '\n')) {
    ++line_number;
    line = absl::StripAsciiWhitespace(line);
    if (line.empty()) continue;
    if (line.size() < kMinKeyBytes) {
      return absl::InvalidArgumentError(absl::StrCat("line ", line_number,
                                                     ": a key needs at least ", kMinKeyBytes,
                                                     " bytes (e.g. `openssl rand -base64 48`)"));
    }
    keys.emplace_back(line);
  }
  if (keys.empty()) return absl::InvalidArgumentError("no key in the file (one key per line)");
  return Create(std::move(keys));
}

const std::shared_ptr<const ResumeTokenKeys>& ResumeTokenKeys::ProcessRandom() {
  static const auto* keys = [] {
    std::string key(kMinKeyBytes, '\0');
    if (RAND_bytes(reinterpret_cast<unsigned char*>(key.data()), static_cast<int>(key.size())) !=
        1) {
      std::abort();  // no randomness: nothing secret could be made
    }
    auto* keys = new std::shared_ptr<const ResumeTokenKeys>(new ResumeTokenKeys({key}));
    OPENSSL_cleanse(key.data(), key.size());
    return keys;
  }();
  return *keys;
}

void ResumeTokenKeys::AppendSignature(std::string* bytes) const {
  const size_t body = bytes->size();
  bytes->resize(body + kMacBytes);
  keys_.front()->Mac(std::string_view(*bytes).substr(0, body),
                     reinterpret_cast<unsigned char*>(bytes->data() + body));
}

std::string ResumeTokenKeys::Sign(std::string_view body) const {
  std::string bytes(body);
  AppendSignature(&bytes);
  return bytes.substr(body.size());
}

bool ResumeTokenKeys::Verify(std::string_view body, std::string_view mac) const {
  if (mac.size() != kMacBytes) return false;
  bool ok = false;
  unsigned char expected[kMacBytes];
  for (const std::unique_ptr<const Key>& key : keys_) {
    key->Mac(body, expected);
    ok |= CRYPTO_memcmp(expected, mac.data(), kMacBytes) == 0;
  }
  return ok;
}

uint64_t ListFingerprint(std::string_view stream_id, std::string_view list_id,
                         std::string_view account_id) {
  std::string key;
  for (std::string_view part : {stream_id, list_id, account_id}) {
    AppendVarint(&key, part.size());
    key.append(part);
  }
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(key.data()), key.size(), digest);
  uint64_t v = 0;
  std::memcpy(&v, digest, sizeof v);
  return v;
}

std::string EncodeResumeToken(const ResumePoint& point, uint64_t list_fingerprint,
                              const ResumeTokenKeys& keys) {
  size_t ids_bytes = 0;
  for (const std::string& id : point.last_ids) ids_bytes += VarintSize(id.size()) + id.size();
  std::string bytes;
  bytes.reserve(1 + sizeof(uint64_t) + 3 * 10 + ids_bytes + kMacBytes);
  bytes.push_back(static_cast<char>(kVersion));
  bytes.resize(1 + sizeof(uint64_t));
  google::protobuf::io::CodedOutputStream::WriteLittleEndian64ToArray(
      list_fingerprint, reinterpret_cast<uint8_t*>(bytes.data()) + 1);
  AppendVarint(&bytes, static_cast<uint64_t>(point.next_offset));
  AppendVarint(&bytes, static_cast<uint64_t>(point.delivered));
  AppendVarint(&bytes, point.last_ids.size());
  for (const std::string& id : point.last_ids) {
    AppendVarint(&bytes, id.size());
    bytes.append(id);
  }
  keys.AppendSignature(&bytes);
  return Base64UrlEncode(bytes);
}

absl::StatusOr<ResumePoint> DecodeResumeToken(std::string_view token, uint64_t list_fingerprint,
                                              const ResumeTokenKeys& keys) {
  std::optional<std::string> bytes = Base64UrlDecode(token);
  if (!bytes || bytes->empty()) return Malformed();
  const auto version = static_cast<uint8_t>((*bytes)[0]);
  if (version == kChecksummedVersion) {
    return Invalid(
        "resume_token: a version 1 token (checksummed, not signed), which this gateway no longer "
        "accepts; start the stream again without resume_token");
  }
  if (version != kVersion) {
    return Invalid(absl::StrCat("resume_token: version ", static_cast<int>(version),
                                " is not supported by this gateway (it reads version ", kVersion,
                                ")"));
  }
  if (bytes->size() < 1 + 8 + kMacBytes) return Malformed();
  std::string_view body = std::string_view(*bytes).substr(0, bytes->size() - kMacBytes);
  if (!keys.Verify(body, std::string_view(*bytes).substr(body.size()))) return Malformed();
  google::protobuf::io::CodedInputStream in(reinterpret_cast<const uint8_t*>(body.data()) + 1,
                                            static_cast<int>(body.size() - 1));
  uint64_t fingerprint = 0;
  if (!in.ReadLittleEndian64(&fingerprint)) return Malformed();
  if (fingerprint != list_fingerprint) {
    return Invalid(
        "resume_token: issued for another list; a token resumes only the stream_id, "
        "contact_list_id and account_id it came from");
  }
  ResumePoint point;
  uint64_t offset = 0, delivered = 0, count = 0;
  if (!in.ReadVarint64(&offset) || !in.ReadVarint64(&delivered) || !in.ReadVarint64(&count) ||
      count > kMaxResumeIds || offset > uint64_t{1} << 48 || delivered > uint64_t{1} << 48) {
    return Malformed();
  }
  point.next_offset = static_cast<int64_t>(offset);
  point.delivered = static_cast<int64_t>(delivered);
  for (uint64_t i = 0; i < count; ++i) {
    uint64_t length = 0;
    std::string id;
    if (!in.ReadVarint64(&length) || length == 0 || length > kMaxIdBytes ||
        !in.ReadString(&id, static_cast<int>(length))) {
      return Malformed();
    }
    point.last_ids.push_back(std::move(id));
  }
  if (in.CurrentPosition() != static_cast<int>(body.size() - 1)) return Malformed();
  return point;
}

}  // namespace contacts::gateway
