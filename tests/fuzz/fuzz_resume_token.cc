// libFuzzer target: DecodeResumeToken on arbitrary text, on arbitrary token bodies signed with the
// target's key (so that the fuzzer gets past the HMAC and reaches the field reader), and
// Encode → Decode round trips of resume points built from the input.
// Checked: a decoded point is within the token's limits and survives re-encoding unchanged; every
// encoded point decodes to itself, only for its own list and only with its key; a token with any
// one character changed is rejected; every error is kInvalidArgument naming `resume_token`.
// The corpus's signed tokens use kKey below (the version 1 ones are refused as such).
#include <fuzzer/FuzzedDataProvider.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "server/core/encoding.h"
#include "server/stream/resume_token.h"

namespace {

using contacts::gateway::DecodeResumeToken;
using contacts::gateway::EncodeResumeToken;
using contacts::gateway::ResumePoint;
using contacts::gateway::ResumeTokenKeys;

constexpr char kKey[] = "fuzz_resume_token-key-0123456789abcdef";
constexpr char kOtherKey[] = "fuzz_resume_token-other-key-0123456789";

// Made once, kept for the process (a static pointer, so LeakSanitizer sees them reachable).
const std::shared_ptr<const ResumeTokenKeys>* Keys(const char* key) {
  absl::StatusOr<std::shared_ptr<const ResumeTokenKeys>> keys = ResumeTokenKeys::Create({key});
  if (!keys.ok()) std::abort();
  return new std::shared_ptr<const ResumeTokenKeys>(*std::move(keys));
}
const ResumeTokenKeys& TheKeys() {
  static const std::shared_ptr<const ResumeTokenKeys>* keys = Keys(kKey);
  return **keys;
}
const ResumeTokenKeys& OtherKeys() {
  static const std::shared_ptr<const ResumeTokenKeys>* keys = Keys(kOtherKey);
  return **keys;
}

constexpr uint64_t kMaxCounter = uint64_t{1} << 48;  // resume_token.cc's bound on the counters
constexpr size_t kMaxIdBytes = 256;                  // and on one id
constexpr std::string_view kAlphabet =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

void Fail(const char* what) {
  std::fprintf(stderr, "fuzz_resume_token: %s\n", what);
  std::abort();
}

bool Same(const ResumePoint& a, const ResumePoint& b) {
  return a.next_offset == b.next_offset && a.delivered == b.delivered && a.last_ids == b.last_ids;
}

void CheckError(const absl::Status& status) {
  if (status.code() != absl::StatusCode::kInvalidArgument) Fail("error is not kInvalidArgument");
  if (status.message().find("resume_token") == absl::string_view::npos) {
    Fail("error message does not name resume_token");
  }
}

// A decoded point: within limits, and Encode(point) decodes to the same point.
void CheckDecoded(const absl::StatusOr<ResumePoint>& point, uint64_t fingerprint) {
  if (!point.ok()) {
    CheckError(point.status());
    return;
  }
  if (point->next_offset < 0 || static_cast<uint64_t>(point->next_offset) > kMaxCounter ||
      point->delivered < 0 || static_cast<uint64_t>(point->delivered) > kMaxCounter) {
    Fail("decoded counter out of range");
  }
  if (point->last_ids.size() > contacts::gateway::kMaxResumeIds) Fail("too many ids");
  for (const std::string& id : point->last_ids) {
    if (id.empty() || id.size() > kMaxIdBytes) Fail("decoded id of a bad length");
  }
  absl::StatusOr<ResumePoint> again =
      DecodeResumeToken(EncodeResumeToken(*point, fingerprint, TheKeys()), fingerprint, TheKeys());
  if (!again.ok() || !Same(*again, *point)) Fail("a decoded point does not survive re-encoding");
}

// base64url(bytes + their HMAC under kKey): a token with a valid signature.
std::string Sign(std::string_view bytes) {
  std::string raw(bytes);
  raw.append(TheKeys().Sign(bytes));
  return contacts::gateway::Base64UrlEncode(raw);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  constexpr uint64_t kFingerprint = 0x0123456789abcdefULL;

  // 1. The input as a token, as a caller may send anything.
  CheckDecoded(DecodeResumeToken(input, kFingerprint, TheKeys()), kFingerprint);

  // 2. The input as a token body with a valid signature, decoded for the list it names.
  {
    uint64_t fingerprint = 0;
    if (size >= 9) {
      for (int i = 8; i >= 1; --i) fingerprint = (fingerprint << 8) | data[i];
    }
    CheckDecoded(DecodeResumeToken(Sign(input), fingerprint, TheKeys()), fingerprint);
  }

  // 3. A point built from the input: round trip, other list, other key, one changed character.
  FuzzedDataProvider in(data, size);
  ResumePoint point;
  const uint64_t fingerprint = in.ConsumeIntegral<uint64_t>();
  point.next_offset = static_cast<int64_t>(in.ConsumeIntegralInRange<uint64_t>(0, kMaxCounter));
  point.delivered = static_cast<int64_t>(in.ConsumeIntegralInRange<uint64_t>(0, kMaxCounter));
  const size_t ids = in.ConsumeIntegralInRange<size_t>(0, contacts::gateway::kMaxResumeIds);
  for (size_t i = 0; i < ids; ++i) {
    std::string id = in.ConsumeRandomLengthString(kMaxIdBytes);
    if (id.empty()) id = "x";
    point.last_ids.push_back(std::move(id));
  }
  const std::string token = EncodeResumeToken(point, fingerprint, TheKeys());
  absl::StatusOr<ResumePoint> decoded = DecodeResumeToken(token, fingerprint, TheKeys());
  if (!decoded.ok()) Fail("an encoded point does not decode");
  if (!Same(*decoded, point)) Fail("an encoded point decodes to another point");
  absl::StatusOr<ResumePoint> other = DecodeResumeToken(token, fingerprint ^ 1, TheKeys());
  if (other.ok()) Fail("a token decodes for another list");
  CheckError(other.status());
  absl::StatusOr<ResumePoint> unsigned_here = DecodeResumeToken(token, fingerprint, OtherKeys());
  if (unsigned_here.ok()) Fail("a token decodes with a key that did not sign it");
  CheckError(unsigned_here.status());
  if (!token.empty()) {
    const size_t at = in.ConsumeIntegralInRange<size_t>(0, token.size() - 1);
    const size_t shift = in.ConsumeIntegralInRange<size_t>(1, kAlphabet.size() - 1);
    std::string tampered = token;
    tampered[at] = kAlphabet[(kAlphabet.find(token[at]) + shift) % kAlphabet.size()];
    absl::StatusOr<ResumePoint> changed = DecodeResumeToken(tampered, fingerprint, TheKeys());
    if (changed.ok()) Fail("a token with one character changed is accepted");
    CheckError(changed.status());
  }
  return 0;
}
