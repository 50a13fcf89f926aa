#include "server/service/request_validation.h"

#include <string_view>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"

namespace contacts::gateway {
namespace {

absl::Status ValidateId(std::string_view field, std::string_view value) {
  absl::string_view name(field.data(), field.size());
  if (value.empty()) return absl::InvalidArgumentError(absl::StrCat(name, " is required"));
  if (value.size() > kMaxIdBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat(name, " is ", value.size(), " bytes long; at most ", kMaxIdBytes, " are allowed"));
  }
  for (unsigned char c : value) {
    if (!absl::ascii_isalnum(c) && c != '-' && c != '_' && c != '.') {
      return absl::InvalidArgumentError(absl::StrCat(
          name, " may hold only letters, digits, '-', '_' and '.'; found ",
          absl::ascii_isprint(c) ? absl::StrCat("'", std::string(1, static_cast<char>(c)), "'")
                                 : absl::StrCat("byte 0x", absl::Hex(c, absl::kZeroPad2))));
    }
  }
  if (value == "." || value == "..") {
    return absl::InvalidArgumentError(absl::StrCat(name, " must not be '.' or '..'"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ValidateRequest(const contacts::v1::StreamContactsRequest& request) {
  for (auto [field, value] : {std::pair<std::string_view, std::string_view>{"stream_id", request.stream_id()},
                              {"contact_list_id", request.contact_list_id()},
                              {"account_id", request.account_id()}}) {
    if (absl::Status status = ValidateId(field, value); !status.ok()) return status;
  }
  if (request.page_size() < 0) return absl::InvalidArgumentError("page_size must not be negative");
  if (request.max_batch_size() < 0) {
    return absl::InvalidArgumentError("max_batch_size must not be negative");
  }
  if (request.max_contacts() < 0) return absl::InvalidArgumentError("max_contacts must not be negative");
  return absl::OkStatus();
}

}  // namespace contacts::gateway
