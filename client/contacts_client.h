// Client side of contacts.v1.ContactService/StreamContacts: one call that streams a whole contact
// list and resumes by itself, with the last resume token, when the gateway answers UNAVAILABLE or
// RESOURCE_EXHAUSTED (after the delay the gateway advises, if it does).
//
// Typical use:
//
//   auto credentials = contacts::client::GatewayChannelCredentials({.ca_file = "ca.pem"});
//   auto channel = grpc::CreateCustomChannel("gateway:50051", *credentials,
//                                            contacts::client::GatewayChannelArguments());
//   auto stub = contacts::v1::ContactService::NewStub(channel);
//   contacts::v1::StreamContactsRequest request;  // stream_id, contact_list_id, account_id, ...
//   contacts::client::StreamResult result = contacts::client::StreamContacts(
//       *stub, request, {}, [&](const contacts::v1::StreamContactsResponse& response) {
//         for (const auto& contact : response.contacts()) Use(contact);
//         return true;  // false stops the stream: result.status is then CANCELLED
//       });
//   if (!result.status.ok()) { /* result.resume_token continues where this stopped */ }
#ifndef CONTACTS_CLIENT_CONTACTS_CLIENT_H_
#define CONTACTS_CLIENT_CONTACTS_CLIENT_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include <grpcpp/grpcpp.h>

#include "absl/functional/function_ref.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "contacts/v1/contacts.grpc.pb.h"
#include "contacts/v1/contacts.pb.h"

namespace contacts::client {

// How StreamContacts calls, retries and authenticates. The defaults suit an interactive tool.
struct StreamOptions {
  // Most resumes in a row without a new contact; a message with contacts resets the count.
  // 0 disables resuming: the first UNAVAILABLE or RESOURCE_EXHAUSTED is returned.
  int max_resumes = 5;
  // Backoff before resume n (n = 1, 2, ... since the last progress) is a uniformly random duration
  // in [0, min(max_backoff, initial_backoff * 2^(n-1))] ("full jitter"), unless the gateway
  // advised a delay (google.rpc.RetryInfo): then that delay, at most max_retry_delay.
  absl::Duration initial_backoff = absl::Milliseconds(200);
  absl::Duration max_backoff = absl::Seconds(10);
  absl::Duration max_retry_delay = absl::Seconds(60);
  // Deadline of each call (not of the whole stream, resumes included); infinite by default.
  // A call that runs out ends the stream with DEADLINE_EXCEEDED, which is not retried.
  absl::Duration deadline = absl::InfiniteDuration();
  // Each call waits for the gateway to be reachable (gRPC wait-for-ready), for this long at most;
  // then it counts as UNAVAILABLE (and is resumed like one).
  absl::Duration connect_timeout = absl::Seconds(20);
  // Optional caller token, sent when non-empty as metadata `authorization: Bearer <token>`: how a
  // caller authenticates to a gateway that authorizes callers (its --credentials-file lists the
  // token's SHA-256). Over a plaintext channel it travels in the clear: use TLS.
  std::string bearer_token;
  // Optional pass-through credentials, sent when non-empty as the metadata entries `auth` (the
  // caller's own Kore.ai JWT, unchanged) and `iid` (the app's client id). Empty: the gateway uses
  // the credentials it holds.
  std::string jwt;
  std::string app_id;
  // bearer_token, jwt and app_id must be printable ASCII (IsValidMetadataValue); otherwise
  // StreamContacts fails at once with INVALID_ARGUMENT naming the field, never its value.
  //
  // Optional; called on the calling thread before each resume's wait, with the status that ended
  // the call, the resume number since the last progress (1..max_resumes) and the wait about to be
  // slept (the gateway's advised delay or the jittered backoff). For logging: it cannot veto.
  std::function<void(const grpc::Status& status, int attempt, absl::Duration backoff)> on_resume;
};

// What a StreamContacts call did, resumes included.
struct StreamResult {
  // OK: the list was streamed to its end (or to request.max_contacts).
  // CANCELLED with message "stopped by the caller": on_response returned false.
  // UNAVAILABLE or RESOURCE_EXHAUSTED: the last failure after max_resumes resumes in a row without
  //   progress (the message says so). Any other code: the gateway's answer to the last call,
  //   returned without retry (see contacts.proto for what each means).
  grpc::Status status;
  // The gateway's reason for `status` (google.rpc.ErrorInfo.reason, e.g. "LIST_NOT_FOUND"), when
  // it gave one.
  std::string error_reason;
  int64_t contacts = 0;  // contacts handed to on_response
  int64_t messages = 0;  // messages handed to on_response
  int resumes = 0;       // calls made after the first one
  // The last non-zero total_results the gateway reported; 0 when it never knew.
  int64_t total_results = 0;
  // The resume_token of the last message received (or request.resume_token if none was): a new call
  // with it continues right after the last contact handed to on_response.
  std::string resume_token;
};

// Streams the list named by `request` and calls `on_response` once per message, in order, on the
// calling thread (this function blocks until the stream ends). `on_response` returns true to go on,
// false to stop: the call is then cancelled and the result's status is CANCELLED.
//
// When a call ends with UNAVAILABLE (the gateway restarted, or its upstream failed) or
// RESOURCE_EXHAUSTED (rate limited), StreamContacts waits (DecideResume) and calls again with the
// resume token of the last message received, so that every contact is handed to on_response
// exactly once and in order. It gives up after options.max_resumes resumes in a row that produced
// no contact. Every other status ends the stream at once. request.resume_token, when set, is where
// the first call starts.
//
// `stub` must outlive the call; it may be a mock (ContactService::StubInterface).
StreamResult StreamContacts(
    contacts::v1::ContactService::StubInterface& stub, contacts::v1::StreamContactsRequest request,
    const StreamOptions& options,
    absl::FunctionRef<bool(const contacts::v1::StreamContactsResponse&)> on_response);

// The backoff before resume `attempt` (1-based, counted since the last progress) for `random`, a
// number in [0, 1): random * min(max_backoff, initial_backoff * 2^(attempt-1)). Exposed for tests.
absl::Duration ResumeBackoff(const StreamOptions& options, int attempt, double random);

// What the gateway's rich error details say (grpc-status-details-bin: a google.rpc.Status whose
// details hold google.rpc.ErrorInfo of domain "contacts-gateway", google.rpc.RetryInfo, ...).
// Empty when the status carries none, or details that do not parse.
struct ErrorAdvice {
  std::string reason;        // ErrorInfo.reason, e.g. "UPSTREAM_RATE_LIMITED"
  std::string resume_token;  // ErrorInfo.metadata["resume_token"]: after the last contact sent
  std::optional<absl::Duration> retry_delay;  // RetryInfo.retry_delay
};
ErrorAdvice ParseErrorAdvice(const grpc::Status& status);

// Whether and how a stream goes on after a call ended with `code` and `advice`.
struct ResumeDecision {
  bool resume = false;
  absl::Duration wait = absl::ZeroDuration();
  std::string resume_token;  // for the next call
};
// UNAVAILABLE and RESOURCE_EXHAUSTED resume, other codes do not, nor does any once `attempt` (the
// resume's number since the last progress, 1-based) exceeds options.max_resumes. The wait is the
// advised RetryInfo delay clamped to [0, max_retry_delay], else ResumeBackoff(options, attempt,
// random). The token is ErrorInfo's resume_token when there is one (the gateway sends every message
// before the status, so it is never behind the last message's), else `own_token`. Exposed for
// tests.
ResumeDecision DecideResume(const StreamOptions& options, grpc::StatusCode code,
                            const ErrorAdvice& advice, int attempt, double random,
                            std::string_view own_token);

// True when `value` can be sent as an ASCII metadata value: printable ASCII (0x20..0x7E) only.
bool IsValidMetadataValue(std::string_view value);

// The token in the file `path` (a bearer token, or a JWT for StreamOptions::jwt), surrounding
// whitespace removed. Errors name the file, never its content: NOT_FOUND (it cannot be read) or
// INVALID_ARGUMENT (it is empty, or holds more than printable ASCII).
absl::StatusOr<std::string> ReadTokenFile(const std::string& path);

// How to reach the gateway: files, read by GatewayChannelCredentials. All empty: plaintext.
struct TlsFiles {
  std::string ca_file{};    // PEM CA bundle the gateway's certificate is checked against; empty
                            // and TLS wanted (cert_file given): the system's roots
  std::string cert_file{};  // PEM client certificate (chain) for mutual TLS; needs key_file
  std::string key_file{};   // its PEM private key
};
// Channel credentials for `tls`: plaintext when every file name is empty, else TLS. Errors
// (INVALID_ARGUMENT: cert_file without key_file or the reverse; NOT_FOUND: a file cannot be read
// or is empty) name the file, never its content.
absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> GatewayChannelCredentials(
    const TlsFiles& tls);

// Channel arguments for a gateway channel: a large receive limit (batches can be big) and quick
// reconnects (100 ms, at most 2 s apart), so that resuming after a gateway restart finds the new
// process within StreamOptions' backoff instead of waiting out gRPC's default reconnect backoff.
grpc::ChannelArguments GatewayChannelArguments();

}  // namespace contacts::client

#endif  // CONTACTS_CLIENT_CONTACTS_CLIENT_H_
