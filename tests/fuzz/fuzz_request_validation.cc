// libFuzzer target: ValidateRequest on StreamContactsRequests parsed from the input (protobuf
// wire format), and on requests whose three ids are cut from the raw input (so that the fuzzer
// reaches every byte value in an id without having to learn the wire format first).
// Checked: when ValidateRequest says OK, every id is 1..128 bytes of [A-Za-z0-9._-], not "." or
// "..", and no numeric field is negative; otherwise the error is kInvalidArgument with a message.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "contacts/v1/contacts.pb.h"
#include "server/service/request_validation.h"

namespace {

using contacts::v1::StreamContactsRequest;

void Fail(const char* what, std::string_view value = {}) {
  std::fprintf(stderr, "fuzz_request_validation: %s [%.*s]\n", what, static_cast<int>(value.size()),
               value.data());
  std::abort();
}

bool IdByte(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' ||
         c == '_' || c == '-';
}

void CheckId(std::string_view id) {
  if (id.empty()) Fail("accepted an empty id");
  if (id.size() > 128) Fail("accepted an id longer than 128 bytes", id);
  for (char c : id) {
    if (!IdByte(c)) Fail("accepted an id with a byte outside [A-Za-z0-9._-]", id);
  }
  if (id == "." || id == "..") Fail("accepted '.' or '..' as an id", id);
}

void Check(const StreamContactsRequest& request) {
  const absl::Status status = contacts::gateway::ValidateRequest(request);
  if (status.ok()) {
    CheckId(request.stream_id());
    CheckId(request.contact_list_id());
    CheckId(request.account_id());
    if (request.page_size() < 0 || request.max_batch_size() < 0 || request.max_contacts() < 0) {
      Fail("accepted a negative number");
    }
  } else {
    if (status.code() != absl::StatusCode::kInvalidArgument) Fail("error is not kInvalidArgument");
    if (status.message().empty()) Fail("error without a message");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  StreamContactsRequest request;
  if (request.ParseFromArray(data, static_cast<int>(size))) Check(request);

  // The raw bytes as "stream_id\0contact_list_id\0account_id".
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  StreamContactsRequest raw;
  std::string* ids[3] = {raw.mutable_stream_id(), raw.mutable_contact_list_id(),
                         raw.mutable_account_id()};
  size_t start = 0;
  for (int i = 0; i < 3; ++i) {
    const size_t end = i < 2 ? input.find('\0', start) : std::string_view::npos;
    ids[i]->assign(
        input.substr(start, end == std::string_view::npos ? input.size() - start : end - start));
    if (end == std::string_view::npos) {
      start = input.size();
    } else {
      start = end + 1;
    }
  }
  Check(raw);
  return 0;
}
