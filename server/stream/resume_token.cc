#include "server/stream/resume_token.h"

#include <openssl/sha.h>

#include <cstring>
#include <optional>

#include "absl/strings/str_cat.h"
#include "server/upstream/jwt.h"

namespace contacts::gateway {
namespace {

// Layout of version 1, before base64url:
//   u8 version | u64 list fingerprint | varint next_offset | varint delivered |
//   varint id count | (varint length, bytes) per id | 8 bytes of SHA-256 over all of the above.
constexpr uint8_t kVersion = 1;
constexpr size_t kCheckBytes = 8;
constexpr size_t kMaxIdBytes = 256;

void PutVarint(std::string* out, uint64_t v) {
  while (v >= 0x80) {
    out->push_back(static_cast<char>(v | 0x80));
    v >>= 7;
  }
  out->push_back(static_cast<char>(v));
}

void PutFixed64(std::string* out, uint64_t v) {
  for (int i = 0; i < 8; ++i) out->push_back(static_cast<char>(v >> (8 * i)));
}

std::string Check(std::string_view bytes) {
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size(), digest);
  return std::string(reinterpret_cast<const char*>(digest), kCheckBytes);
}

// Reads from the front of `in`; nullopt when it runs out or overflows.
class Reader {
 public:
  explicit Reader(std::string_view in) : in_(in) {}
  std::optional<uint64_t> Varint() {
    uint64_t v = 0;
    for (int shift = 0; shift < 64 && !in_.empty(); shift += 7) {
      auto byte = static_cast<uint8_t>(in_.front());
      in_.remove_prefix(1);
      v |= static_cast<uint64_t>(byte & 0x7f) << shift;
      if ((byte & 0x80) == 0) return v;
    }
    return std::nullopt;
  }
  std::optional<std::string_view> Bytes(size_t n) {
    if (in_.size() < n) return std::nullopt;
    std::string_view out = in_.substr(0, n);
    in_.remove_prefix(n);
    return out;
  }
  bool empty() const { return in_.empty(); }

 private:
  std::string_view in_;
};

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
    PutVarint(&key, part.size());
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
  PutFixed64(&bytes, list_fingerprint);
  PutVarint(&bytes, static_cast<uint64_t>(point.next_offset));
  PutVarint(&bytes, static_cast<uint64_t>(point.delivered));
  PutVarint(&bytes, point.last_ids.size());
  for (const std::string& id : point.last_ids) {
    PutVarint(&bytes, id.size());
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
  Reader in(body.substr(1));
  std::optional<std::string_view> fingerprint = in.Bytes(8);
  uint64_t fp = 0;
  for (int i = 7; i >= 0; --i) fp = (fp << 8) | static_cast<uint8_t>((*fingerprint)[i]);
  if (fp != list_fingerprint) {
    return absl::InvalidArgumentError(
        "resume_token: issued for another list; a token resumes only the stream_id, "
        "contact_list_id and account_id it came from");
  }
  ResumePoint point;
  std::optional<uint64_t> offset = in.Varint(), delivered = in.Varint(), count = in.Varint();
  if (!offset || !delivered || !count || *count > kMaxResumeIds || *offset > uint64_t{1} << 48 ||
      *delivered > uint64_t{1} << 48) {
    return Malformed();
  }
  point.next_offset = static_cast<int64_t>(*offset);
  point.delivered = static_cast<int64_t>(*delivered);
  for (uint64_t i = 0; i < *count; ++i) {
    std::optional<uint64_t> length = in.Varint();
    if (!length || *length == 0 || *length > kMaxIdBytes) return Malformed();
    std::optional<std::string_view> id = in.Bytes(*length);
    if (!id) return Malformed();
    point.last_ids.emplace_back(*id);
  }
  if (!in.empty()) return Malformed();
  return point;
}

}  // namespace contacts::gateway
