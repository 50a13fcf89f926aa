// Client side of contacts.v1.ContactService/StreamContacts: one call that streams a whole contact
// list and resumes by itself, with the last resume token, when the gateway answers UNAVAILABLE.
//
// Typical use:
//
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
#include <string>

#include <grpcpp/grpcpp.h>

#include "absl/functional/function_ref.h"
#include "absl/time/time.h"
#include "contacts/v1/contacts.grpc.pb.h"
#include "contacts/v1/contacts.pb.h"

namespace contacts::client {

// How StreamContacts calls, retries and authenticates. The defaults suit an interactive tool.
struct StreamOptions {
  // Most resumes in a row without a new contact; a message with contacts resets the count.
  // 0 disables resuming: the first UNAVAILABLE is returned.
  int max_resumes = 5;
  // Backoff before resume n (n = 1, 2, ... since the last progress) is a uniformly random duration
  // in [0, min(max_backoff, initial_backoff * 2^(n-1))] ("full jitter").
  absl::Duration initial_backoff = absl::Milliseconds(200);
  absl::Duration max_backoff = absl::Seconds(10);
  // Deadline of each call (not of the whole stream, resumes included); infinite by default.
  // A call that runs out ends the stream with DEADLINE_EXCEEDED, which is not retried.
  absl::Duration deadline = absl::InfiniteDuration();
  // Each call waits for the gateway to be reachable (gRPC wait-for-ready), for this long at most;
  // then it counts as UNAVAILABLE (and is resumed like one).
  absl::Duration connect_timeout = absl::Seconds(20);
  // Optional pass-through credentials, sent when non-empty as the metadata entries `auth` (the
  // caller's own Kore.ai JWT, unchanged) and `iid` (the app's client id). Empty: the gateway uses
  // the credentials it holds.
  std::string jwt;
  std::string app_id;
  // Optional; called on the calling thread before each resume's backoff, with the status that ended
  // the call, the resume number since the last progress (1..max_resumes) and the backoff about to
  // be slept. For logging: it cannot veto the resume.
  std::function<void(const grpc::Status& status, int attempt, absl::Duration backoff)> on_resume;
};

// What a StreamContacts call did, resumes included.
struct StreamResult {
  // OK: the list was streamed to its end (or to request.max_contacts).
  // CANCELLED with message "stopped by the caller": on_response returned false.
  // UNAVAILABLE: the last failure after max_resumes resumes in a row without progress (the message
  //   says so). Any other code: the gateway's answer to the last call, returned without retry (see
  //   contacts.proto for what each means).
  grpc::Status status;
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
// When a call ends with UNAVAILABLE (the gateway restarted, or its upstream failed), StreamContacts
// sleeps a backoff and calls again with the resume token of the last message received, so that
// every contact is handed to on_response exactly once and in order. It gives up after
// options.max_resumes resumes in a row that produced no contact. Every other status ends the stream
// at once. request.resume_token, when set, is where the first call starts.
//
// `stub` must outlive the call; it may be a mock (ContactService::StubInterface).
StreamResult StreamContacts(
    contacts::v1::ContactService::StubInterface& stub, contacts::v1::StreamContactsRequest request,
    const StreamOptions& options,
    absl::FunctionRef<bool(const contacts::v1::StreamContactsResponse&)> on_response);

// The backoff before resume `attempt` (1-based, counted since the last progress) for `random`, a
// number in [0, 1): random * min(max_backoff, initial_backoff * 2^(attempt-1)). Exposed for tests.
absl::Duration ResumeBackoff(const StreamOptions& options, int attempt, double random);

// Channel arguments for a gateway channel: a large receive limit (batches can be big) and quick
// reconnects (100 ms, at most 2 s apart), so that resuming after a gateway restart finds the new
// process within StreamOptions' backoff instead of waiting out gRPC's default reconnect backoff.
grpc::ChannelArguments GatewayChannelArguments();

}  // namespace contacts::client

#endif  // CONTACTS_CLIENT_CONTACTS_CLIENT_H_
