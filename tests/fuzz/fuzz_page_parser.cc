// libFuzzer target: ParsePage, ParseErrorMessage and ParseTimestamp on arbitrary upstream bodies.
// Beyond "no crash, no sanitizer report" it checks what page_parser.h promises: an accepted page
// respects every limit, an error is kInternal (kUnavailable for a truncated body) and its message
// starts with "upstream page: " (after "truncated body: "), the body is left
// unchanged, and ParseErrorMessage returns at most kMaxUpstreamMessageBytes of valid UTF-8 without
// control characters.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "server/upstream/page_parser.h"
#include "server/upstream/timestamp.h"

namespace {

using contacts::gateway::Page;

constexpr int64_t kMinSeconds = -62135596800;  // 0001-01-01T00:00:00Z
constexpr int64_t kMaxSeconds = 253402300799;  // 9999-12-31T23:59:59Z

void Fail(const char* what) {
  std::fprintf(stderr, "fuzz_page_parser: %s\n", what);
  std::abort();
}

bool ValidTimestamp(const google::protobuf::Timestamp& t) {
  return t.seconds() >= kMinSeconds && t.seconds() <= kMaxSeconds && t.nanos() >= 0 &&
         t.nanos() <= 999999999;
}

// Well-formed UTF-8 (no overlongs, no surrogates, at most U+10FFFF).
bool IsUtf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    size_t n = 0;
    uint32_t cp = 0;
    if (c < 0x80) {
      ++i;
      continue;
    } else if ((c & 0xE0) == 0xC0) {
      n = 1, cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      n = 2, cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      n = 3, cp = c & 0x07;
    } else {
      return false;
    }
    for (size_t k = 1; k <= n; ++k) {
      if (i + k >= s.size()) return false;
      const auto cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3F);
    }
    static constexpr uint32_t kMin[4] = {0, 0x80, 0x800, 0x10000};
    if (cp < kMin[n] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    i += n + 1;
  }
  return true;
}

void CheckPage(const Page& page) {
  if (page.contacts.size() > contacts::gateway::kMaxContactsPerPage) Fail("too many contacts");
  for (size_t i = 0; i < page.contacts.size(); ++i) {
    const contacts::v1::Contact c = page.contacts[i];
    if (page.contacts.id(i) != c.id()) Fail("the id read in place differs from the encoded one");
    if (c.id().empty()) Fail("accepted an empty _id");
    if (c.id().size() > contacts::gateway::kMaxContactIdBytes) Fail("accepted a too long _id");
    if (c.phone_number().size() > contacts::gateway::kMaxPhoneNumberBytes) {
      Fail("accepted a too long phoneNumber");
    }
    if (!IsUtf8(c.id()) || !IsUtf8(c.phone_number())) Fail("accepted a string that is not UTF-8");
    if (c.has_create_time() && !ValidTimestamp(c.create_time())) Fail("createdAt out of range");
    if (c.has_update_time() && !ValidTimestamp(c.update_time())) Fail("updatedAt out of range");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);

  std::string body(input);
  absl::StatusOr<Page> page = contacts::gateway::ParsePage(body);
  if (body != input) Fail("ParsePage changed the body");
  if (page.ok()) {
    CheckPage(*page);
  } else {
    // kUnavailable for a body cut off on the way ("truncated body: upstream page: ..."),
    // kInternal for everything else ("upstream page: ...").
    const absl::StatusCode code = page.status().code();
    if (code != absl::StatusCode::kInternal && code != absl::StatusCode::kUnavailable) {
      std::fprintf(stderr, "%s\n", page.status().ToString().c_str());
      Fail("error is neither kInternal nor kUnavailable");
    }
    const absl::string_view text = page.status().message();  // Debian's absl: not std::
    std::string_view message(text.data(), text.size());
    if (code == absl::StatusCode::kUnavailable) {
      if (message.substr(0, 16) != "truncated body: ")
        Fail("kUnavailable but not a truncated body");
      message.remove_prefix(16);
    }
    if (message.substr(0, 15) != "upstream page: ") Fail("error message lacks its prefix");
    if (message.size() > 1024) Fail("error message longer than 1 KiB");
    for (char ch : message) {
      if (static_cast<unsigned char>(ch) < 0x20) Fail("control character in the error message");
    }
  }

  const std::string message = contacts::gateway::ParseErrorMessage(input);
  if (message.size() > contacts::gateway::kMaxUpstreamMessageBytes) Fail("error message too long");
  if (!IsUtf8(message)) Fail("error message is not UTF-8");
  for (char ch : message) {
    const auto u = static_cast<unsigned char>(ch);
    if (u < 0x20 || u == 0x7f) Fail("control character in ParseErrorMessage's result");
  }

  if (size <= 64) {
    google::protobuf::Timestamp t;
    t.set_seconds(1), t.set_nanos(2);
    if (contacts::gateway::ParseTimestamp(input, &t)) {
      if (!ValidTimestamp(t)) Fail("ParseTimestamp accepted an out-of-range instant");
    } else if (t.seconds() != 1 || t.nanos() != 2) {
      Fail("ParseTimestamp changed *out on failure");
    }
  }
  return 0;
}
