#include "server/stream/resume_token.h"

#include <openssl/sha.h>

#include <cstring>
#include <optional>

#include "absl/strings/str_cat.h"
#include "google/protobuf/io/coded_stream.h"
#include "server/core/encoding.h"

namespace contacts::gateway {
namespace {

// Layout of version 1, before base64url:
//   u8 version | u64 list fingerprint | varint next_offset | varint delivered |
//   varint id count | (varint length, bytes) per id | 8 bytes of SHA-256 over all of the above.
constexpr uint8_t kVersion = 1;
constexpr size_t kCheckBytes = 8;
constexpr size_t kMaxIdBytes = 256;

std::string Check(std::string_view bytes) {
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size(), digest);
  return std::string(reinterpret_cast<const char*>(digest), kCheckBytes);
}

absl::Status Malformed() {
  return absl::InvalidArgumentError(
      "resume_token: not a token this gateway issued (malformed or modified); pass the "
      "resume_token of a previous response unchanged");
}

}  // namespace

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

std::string EncodeResumeToken(const ResumePoint& point, uint64_t list_fingerprint) {
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
  bytes.append(Check(bytes));
  return Base64UrlEncode(bytes);
}

absl::StatusOr<ResumePoint> DecodeResumeToken(std::string_view token, uint64_t list_fingerprint) {
  std::optional<std::string> bytes = Base64UrlDecode(token);
  if (!bytes || bytes->size() < 1 + 8 + kCheckBytes) return Malformed();
  std::string_view body = std::string_view(*bytes).substr(0, bytes->size() - kCheckBytes);
  if (Check(body) != std::string_view(*bytes).substr(body.size())) return Malformed();
  if (static_cast<uint8_t>(body[0]) != kVersion) {
    return absl::InvalidArgumentError(
        absl::StrCat("resume_token: version ", static_cast<int>(static_cast<uint8_t>(body[0])),
                     " is not supported by this gateway (it reads version ", kVersion, ")"));
  }
  google::protobuf::io::CodedInputStream in(reinterpret_cast<const uint8_t*>(body.data()) + 1,
                                            static_cast<int>(body.size() - 1));
  uint64_t fingerprint = 0;
  if (!in.ReadLittleEndian64(&fingerprint)) return Malformed();
  if (fingerprint != list_fingerprint) {
    return absl::InvalidArgumentError(
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
