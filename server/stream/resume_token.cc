#include "server/stream/resume_token.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include <cstdlib>
#include <cstring>
#include <optional>

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

// The first kMacBytes of HMAC-SHA256(key, body).
std::string Mac(const std::string& key, std::string_view body) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(body.data()), body.size(), digest, &length);
  return std::string(reinterpret_cast<const char*>(digest), kMacBytes);
}

}  // namespace

absl::StatusOr<std::shared_ptr<const ResumeTokenKeys>> ResumeTokenKeys::Create(
    std::vector<std::string> keys) {
  if (keys.empty()) return absl::InvalidArgumentError("no resume token key");
  for (size_t i = 0; i < keys.size(); ++i) {
    if (keys[i].size() < kMinKeyBytes) {
      return absl::InvalidArgumentError(
          absl::StrCat("resume token key ", i + 1, " has fewer than ", kMinKeyBytes, " bytes"));
    }
  }
  return std::shared_ptr<const ResumeTokenKeys>(new ResumeTokenKeys(std::move(keys)));
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
    return new std::shared_ptr<const ResumeTokenKeys>(new ResumeTokenKeys({std::move(key)}));
  }();
  return *keys;
}

std::string ResumeTokenKeys::Sign(std::string_view body) const { return Mac(keys_.front(), body); }

bool ResumeTokenKeys::Verify(std::string_view body, std::string_view mac) const {
  if (mac.size() != kMacBytes) return false;
  bool ok = false;
  for (const std::string& key : keys_) {
    ok |= CRYPTO_memcmp(Mac(key, body).data(), mac.data(), kMacBytes) == 0;
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
  std::string bytes;
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
  bytes.append(keys.Sign(bytes));
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
