#ifndef CONTACTS_GATEWAY_SERVER_STREAM_RESUME_TOKEN_H_
#define CONTACTS_GATEWAY_SERVER_STREAM_RESUME_TOKEN_H_

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace contacts::gateway {

// Where a stream stopped, as carried by the opaque `resume_token` of every response.
//
// Guarantee: a stream resumed with the token of the last message a caller received continues with
// the contact after the last one delivered, without repeating any of `last_ids`. The gateway
// re-reads the upstream from a little before `next_offset` and looks for `last_ids` there, so
// contacts added or removed before the offset in the meantime do not cause a skip or a repeat
// (within `kMaxResumeIds` contacts of drift).
struct ResumePoint {
  int64_t next_offset = 0;            // upstream index after the last delivered contact
  int64_t delivered = 0;              // contacts delivered so far, across resumes
  std::vector<std::string> last_ids;  // ids of the last delivered contacts, oldest first
};

inline constexpr size_t kMaxResumeIds = 4;

// The secret keys that sign resume tokens (HMAC-SHA256), so that a caller cannot make up a token
// for an offset or a list it was never given. The first key signs; every key is accepted, so that
// a new key can reach every replica before any replica signs with it (rotation). Immutable and
// shared; never logged.
class ResumeTokenKeys {
 public:
  static constexpr size_t kMinKeyBytes = 32;

  // Errors: kInvalidArgument when there is no key or a key is shorter than kMinKeyBytes; the
  // message names the key by its position, never by its value.
  static absl::StatusOr<std::shared_ptr<const ResumeTokenKeys>> Create(
      std::vector<std::string> keys);
  // A key file (--resume-token-key-file): one key per line, the signing key first; surrounding
  // whitespace and empty lines are ignored. Errors as Create's, naming the line.
  static absl::StatusOr<std::shared_ptr<const ResumeTokenKeys>> Parse(std::string_view text);
  // One random key, made the first time it is asked for and kept for the life of the process:
  // its tokens do not survive a restart, and no other process accepts them.
  static const std::shared_ptr<const ResumeTokenKeys>& ProcessRandom();

  // Appends to `bytes`, a token's other bytes, the truncated HMAC that ends it (signing key).
  void AppendSignature(std::string* bytes) const;
  // That HMAC of `body` alone, for tests and the fuzzer that build token bodies of their own.
  std::string Sign(std::string_view body) const;
  // Whether `mac` is Sign(body) under any of the keys (compared in constant time).
  bool Verify(std::string_view body, std::string_view mac) const;

  ~ResumeTokenKeys();

 private:
  class Key;  // one key's HMAC-SHA256, its padded key blocks hashed once (resume_token.cc)
  explicit ResumeTokenKeys(const std::vector<std::string>& keys);
  std::vector<std::unique_ptr<const Key>> keys_;
};

// Identifies the list a token belongs to: (stream_id, contact_list_id, account_id).
uint64_t ListFingerprint(std::string_view stream_id, std::string_view list_id,
                         std::string_view account_id);

// Versioned binary form, signed with `keys`' first key, base64url-encoded.
std::string EncodeResumeToken(const ResumePoint& point, uint64_t list_fingerprint,
                              const ResumeTokenKeys& keys);

// Errors: kInvalidArgument when the token is malformed, not signed by any of `keys` (made up,
// modified, or from a gateway with other keys), of an older or unknown version, or issued for
// another list; the message names the `resume_token` field.
absl::StatusOr<ResumePoint> DecodeResumeToken(std::string_view token, uint64_t list_fingerprint,
                                              const ResumeTokenKeys& keys);

}  // namespace contacts::gateway

#endif  // CONTACTS_GATEWAY_SERVER_STREAM_RESUME_TOKEN_H_
