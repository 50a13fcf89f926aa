// libFuzzer target: DecodePageRecord on arbitrary bytes (what another replica, or anyone who can
// write to Redis, stored as a page). Checked: whatever decodes is canonical (encoding it again
// gives the same bytes), every contact has an id, and every range of contacts parses as a
// StreamContactsResponse holding those contacts.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "contacts/v1/contacts.pb.h"
#include "server/core/page.h"

namespace {

void Fail(const char* what) {
  std::fprintf(stderr, "fuzz_page_record: %s\n", what);
  std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view record(reinterpret_cast<const char*>(data), size);
  absl::StatusOr<contacts::gateway::Page> page = contacts::gateway::DecodePageRecord(record);
  if (!page.ok()) {
    if (page.status().code() != absl::StatusCode::kInvalidArgument) Fail("not kInvalidArgument");
    return 0;
  }
  if (contacts::gateway::EncodePageRecord(*page) != record) Fail("not canonical");
  const contacts::gateway::EncodedContacts& contacts = page->contacts;
  contacts::v1::StreamContactsResponse message;
  if (!message.ParseFromString(std::string(contacts.wire(0, contacts.size())))) {
    Fail("contacts do not parse");
  }
  if (static_cast<size_t>(message.contacts_size()) != contacts.size()) Fail("count differs");
  for (size_t i = 0; i < contacts.size(); ++i) {
    if (contacts.id(i).empty() || message.contacts(static_cast<int>(i)).id() != contacts.id(i)) {
      Fail("id differs");
    }
  }
  return 0;
}
