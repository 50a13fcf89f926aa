#ifndef CONTACTS_GATEWAY_SERVER_UPSTREAM_PAGE_PARSER_H_
#define CONTACTS_GATEWAY_SERVER_UPSTREAM_PAGE_PARSER_H_

// Reads the JSON bodies of Kore.ai's getAllContacts endpoint (docs/upstream.md): the success answer
// into a Page, an error answer into a short human-readable message. (Timestamps: timestamp.h.)
//
// All functions are thread-safe. ParsePage keeps one simdjson parser per thread (its buffers are
// reused from call to call and dropped when a page needed more than kRetainedParserBytes).

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "server/core/page.h"
#include "server/upstream/error_body.h"

namespace contacts::gateway {

// Limits against a hostile or broken upstream; a page beyond any of them is an error.
inline constexpr size_t kMaxContactsPerPage = 100000;
inline constexpr size_t kMaxContactIdBytes = 256;
inline constexpr size_t kMaxPhoneNumberBytes = 64;
// A thread's parser buffers are freed after a page that needed more than this.
inline constexpr size_t kRetainedParserBytes = size_t{16} << 20;

// Parses one getAllContacts answer body (HTTP 200) into a Page.
//
// Accepted shape (fields in any order, keys matched exactly, unknown fields ignored):
//   {"status":"success", "message":..., "data":{"results":[...], "skip":0, "limit":50,
//    "hasMore":false, "totalPages":1, "totalResults":3}}
// - The paging facts may also sit at the top level; when both places have one, `data` wins.
//   Each may be a number, a numeric string ("50") or null/""; hasMore may also be a bool,
//   "true"/"false" or 0/1. A fact that is absent or null stays std::nullopt.
// - `results` (inside `data`, else at the top level) is an array, or null/absent (no contacts).
// - Per contact: `_id` a non-empty string, or a number (kept as its JSON text, so an integer
//   becomes its decimal digits); `phoneNumber` a string, a number (likewise) or null/absent
//   (empty);
//   `createdAt`/`updatedAt` an ISO-8601 string (see ParseTimestamp), a number or digit string of
//   epoch milliseconds, or null/absent/"" (unset).
// - A top-level `status` other than "success" (case-insensitive) fails with the upstream's own
//   message (see ParseErrorMessage).
//
// Grows body's capacity by simdjson's padding (its contents are unchanged) so that the body is
// parsed in place without a copy.
//
// Errors: an invalid body that stops inside a string or with objects or arrays still open is
// absl::UnavailableError ("truncated body: ...": cut off on the way, worth another attempt);
// every other error is
// absl::InternalError (the upstream answered something that cannot be read); the message starts
// with "upstream page: ", names where the problem is
// ("data.results[3]._id: expected a non-empty string"), and never quotes more than a short
// snippet of the body. Covers: not JSON or truncated JSON, trailing content, invalid UTF-8, a
// wrong type at any documented place, a missing or empty `_id`, an unreadable timestamp, a limit
// above exceeded, and a non-success `status` (then the message is the upstream's, e.g.
// `upstream page: status "failure": Invalid JWT token`, also when `status` follows a `data` of
// the wrong shape). Values of unknown fields are skipped without full validation (simdjson
// on-demand), but the whole body is always checked to be UTF-8 with balanced strings.
// The parser needs kPagePaddingBytes of capacity behind the body; a body read with that much
// reserved is not copied to get it.
inline constexpr size_t kPagePaddingBytes = 64;
absl::StatusOr<Page> ParsePage(std::string& body);

}  // namespace contacts::gateway

#endif  // CONTACTS_GATEWAY_SERVER_UPSTREAM_PAGE_PARSER_H_
