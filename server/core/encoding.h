#ifndef CONTACTS_GATEWAY_SERVER_CORE_ENCODING_H_
#define CONTACTS_GATEWAY_SERVER_CORE_ENCODING_H_

// Byte and text encodings more than one layer needs, as thin names over the libraries that do the
// work (Abseil, protobuf), so that nothing of the kind is written twice.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "absl/strings/escaping.h"
#include "absl/strings/string_view.h"
#include "google/protobuf/io/coded_stream.h"

namespace contacts::gateway {

// Debian's Abseil keeps its own string_view type: the one conversion each way.
inline absl::string_view AsAbsl(std::string_view s) { return {s.data(), s.size()}; }
inline std::string_view AsStd(absl::string_view s) { return {s.data(), s.size()}; }

// RFC 4648 §5 base64url without padding (JWTs, resume tokens).
inline std::string Base64UrlEncode(std::string_view bytes) {
  return absl::WebSafeBase64Escape(AsAbsl(bytes));
}
// Only the canonical form Base64UrlEncode writes: no padding, and no unused low bits set in the
// last character, so that every byte string has exactly one accepted encoding (a changed
// character is never read as the same bytes). nullopt otherwise.
inline std::optional<std::string> Base64UrlDecode(std::string_view text) {
  std::string bytes;
  if (!absl::WebSafeBase64Unescape(AsAbsl(text), &bytes) || Base64UrlEncode(bytes) != text) {
    return std::nullopt;
  }
  return bytes;
}

// Protocol Buffers base-128 varints (protobuf's own writer).
inline size_t VarintSize(uint64_t value) {
  return google::protobuf::io::CodedOutputStream::VarintSize64(value);
}
inline char* PutVarint(char* out, uint64_t value) {
  return reinterpret_cast<char*>(google::protobuf::io::CodedOutputStream::WriteVarint64ToArray(
      value, reinterpret_cast<uint8_t*>(out)));
}
inline void AppendVarint(std::string* out, uint64_t value) {
  const size_t at = out->size();
  out->resize(at + VarintSize(value));
  PutVarint(out->data() + at, value);
}

}  // namespace contacts::gateway

#endif  // CONTACTS_GATEWAY_SERVER_CORE_ENCODING_H_
