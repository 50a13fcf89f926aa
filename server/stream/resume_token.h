#ifndef CONTACTS_GATEWAY_SERVER_STREAM_RESUME_TOKEN_H_
#define CONTACTS_GATEWAY_SERVER_STREAM_RESUME_TOKEN_H_

#include <cstdint>
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

// Identifies the list a token belongs to: (stream_id, contact_list_id, account_id).
uint64_t ListFingerprint(std::string_view stream_id, std::string_view list_id,
                         std::string_view account_id);

// Versioned binary form with a checksum (a truncated, unkeyed SHA-256: it catches corruption, not
// forgery), base64url-encoded.
std::string EncodeResumeToken(const ResumePoint& point, uint64_t list_fingerprint);

// Errors: kInvalidArgument when the token is malformed or corrupted, of an unknown version,
// or issued for another list; the message names the `resume_token` field.
absl::StatusOr<ResumePoint> DecodeResumeToken(std::string_view token, uint64_t list_fingerprint);

}  // namespace contacts::gateway

#endif  // CONTACTS_GATEWAY_SERVER_STREAM_RESUME_TOKEN_H_
