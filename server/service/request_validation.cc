#include "server/service/request_validation.h"

#include <string_view>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "google/protobuf/unknown_field_set.h"
#include "server/core/error_reason.h"
#include "simdjson.h"

namespace contacts::gateway {
namespace {

// kInvalidArgument naming `field`, with the reason INVALID_REQUEST and the field for BadRequest.
absl::Status Invalid(std::string_view field, std::string message) {
  return WithField(WithReason(absl::InvalidArgumentError(message), reason::kInvalidRequest), field);
}

absl::Status CheckId(std::string_view field, std::string_view value) {
  absl::string_view name(field.data(), field.size());
  if (value.empty()) return absl::InvalidArgumentError(absl::StrCat(name, " is required"));
  if (value.size() > kMaxIdBytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        name, " is ", value.size(), " bytes long; at most ", kMaxIdBytes, " are allowed"));
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
  for (auto [field, value] :
       {std::pair<std::string_view, std::string_view>{"stream_id", request.stream_id()},
        {"contact_list_id", request.contact_list_id()},
        {"account_id", request.account_id()}}) {
    if (absl::Status status = CheckId(field, value); !status.ok()) {
      return Invalid(field, std::string(status.message()));
    }
  }
  if (request.page_size() < 0) return Invalid("page_size", "page_size must not be negative");
  if (request.max_batch_size() < 0) {
    return Invalid("max_batch_size", "max_batch_size must not be negative");
  }
  if (request.max_contacts() < 0) {
    return Invalid("max_contacts", "max_contacts must not be negative");
  }
  return absl::OkStatus();
}

absl::StatusOr<contacts::v1::StreamContactsRequest> ParseRequest(std::string_view wire) {
  contacts::v1::StreamContactsRequest request;
  if (!request.ParseFromArray(wire.data(), static_cast<int>(wire.size()))) {
    // Find the culprit: protobuf refuses proto3 strings that are not UTF-8.
    google::protobuf::UnknownFieldSet fields;
    if (fields.ParseFromArray(wire.data(), static_cast<int>(wire.size()))) {
      for (int i = 0; i < fields.field_count(); ++i) {
        const google::protobuf::UnknownField& field = fields.field(i);
        const google::protobuf::FieldDescriptor* known =
            contacts::v1::StreamContactsRequest::descriptor()->FindFieldByNumber(field.number());
        if (known != nullptr && known->type() == google::protobuf::FieldDescriptor::TYPE_STRING &&
            field.type() == google::protobuf::UnknownField::TYPE_LENGTH_DELIMITED &&
            !simdjson::validate_utf8(field.length_delimited().data(),
                                     field.length_delimited().size())) {
          return Invalid(known->name(), absl::StrCat(known->name(), " is not valid UTF-8"));
        }
      }
    }
    return WithReason(absl::InvalidArgumentError(
                          "the request is not a contacts.v1.StreamContactsRequest: its bytes are "
                          "not a valid protobuf message of that type"),
                      reason::kInvalidRequest);
  }
  if (absl::Status valid = ValidateRequest(request); !valid.ok()) return valid;
  return request;
}

}  // namespace contacts::gateway
