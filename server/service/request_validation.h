#ifndef CONTACTS_GATEWAY_SERVER_SERVICE_REQUEST_VALIDATION_H_
#define CONTACTS_GATEWAY_SERVER_SERVICE_REQUEST_VALIDATION_H_

#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "contacts/v1/contacts.pb.h"

namespace contacts::gateway {

inline constexpr size_t kMaxIdBytes = 128;

// Checks a StreamContactsRequest before anything reaches the upstream. Ids must be 1..128 bytes of
// [A-Za-z0-9._-] and not "." or ".." (they become URL path segments); the numeric fields must not
// be negative. Errors: kInvalidArgument naming the field and what is wrong with it.
absl::Status ValidateRequest(const contacts::v1::StreamContactsRequest& request);

// Parses a StreamContactsRequest from its wire form and validates it. Unlike gRPC's own parsing,
// which rejects a non-UTF-8 string without saying which, the error names the field.
// Errors: kInvalidArgument.
absl::StatusOr<contacts::v1::StreamContactsRequest> ParseRequest(std::string_view wire);

}  // namespace contacts::gateway

#endif  // CONTACTS_GATEWAY_SERVER_SERVICE_REQUEST_VALIDATION_H_
