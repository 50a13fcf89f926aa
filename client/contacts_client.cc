#include "client/contacts_client.h"

#include <algorithm>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <thread>
#include <utility>

#include "absl/random/random.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace contacts::client {
namespace {

using ::contacts::v1::StreamContactsRequest;
using ::contacts::v1::StreamContactsResponse;

// How one call ended.
struct CallOutcome {
  grpc::Status status;
  bool progressed = false;  // at least one contact was handed to on_response
  bool stopped = false;     // on_response returned false
};

CallOutcome CallOnce(contacts::v1::ContactService::StubInterface& stub,
                     const StreamContactsRequest& request, const StreamOptions& options,
                     absl::FunctionRef<bool(const StreamContactsResponse&)> on_response,
                     StreamResult& result) {
  grpc::ClientContext context;
  if (options.deadline != absl::InfiniteDuration()) {
    context.set_deadline(absl::ToChronoTime(absl::Now() + options.deadline));
  }
  if (!options.jwt.empty()) context.AddMetadata("auth", options.jwt);
  if (!options.app_id.empty()) context.AddMetadata("iid", options.app_id);
  // Wait for the gateway to be reachable (a restarting gateway comes back within seconds), but
  // only up to connect_timeout: the gateway sends its headers as soon as it takes the call.
  context.set_wait_for_ready(true);

  CallOutcome outcome;
  std::unique_ptr<grpc::ClientReaderInterface<StreamContactsResponse>> reader =
      stub.StreamContacts(&context, request);
  bool answered = false, gave_up = false;
  {
    std::mutex mu;
    std::condition_variable cv;
    std::thread watchdog([&] {
      std::unique_lock<std::mutex> lock(mu);
      if (!cv.wait_for(lock, absl::ToChronoNanoseconds(options.connect_timeout),
                       [&] { return answered; })) {
        gave_up = true;
        context.TryCancel();
      }
    });
    reader->WaitForInitialMetadata();
    {
      std::lock_guard<std::mutex> lock(mu);
      answered = true;
    }
    cv.notify_one();
    watchdog.join();
  }
  if (gave_up) {
    reader->Finish();
    outcome.status = grpc::Status(
        grpc::StatusCode::UNAVAILABLE,
        absl::StrCat("no gateway answered within ", absl::FormatDuration(options.connect_timeout)));
    return outcome;
  }
  StreamContactsResponse response;
  while (reader->Read(&response)) {
    result.messages++;
    result.contacts += response.contacts_size();
    if (response.contacts_size() > 0) outcome.progressed = true;
    if (response.total_results() > 0) result.total_results = response.total_results();
    if (!response.resume_token().empty()) result.resume_token = response.resume_token();
    if (!on_response(response)) {
      outcome.stopped = true;
      context.TryCancel();
      while (reader->Read(&response)) {  // drain what was already in flight; it is not handed on
      }
      break;
    }
  }
  outcome.status = reader->Finish();
  if (outcome.stopped)
    outcome.status = grpc::Status(grpc::StatusCode::CANCELLED, "stopped by the caller");
  return outcome;
}

}  // namespace

absl::Duration ResumeBackoff(const StreamOptions& options, int attempt, double random) {
  absl::Duration cap = options.initial_backoff;
  for (int i = 1; i < attempt && cap < options.max_backoff; ++i) cap *= 2;
  cap = std::min(cap, options.max_backoff);
  if (cap <= absl::ZeroDuration()) return absl::ZeroDuration();
  return cap * std::clamp(random, 0.0, 1.0);
}

StreamResult StreamContacts(contacts::v1::ContactService::StubInterface& stub,
                            StreamContactsRequest request, const StreamOptions& options,
                            absl::FunctionRef<bool(const StreamContactsResponse&)> on_response) {
  StreamResult result;
  result.resume_token = request.resume_token();
  absl::BitGen bitgen;
  int resumes_without_progress = 0;
  while (true) {
    CallOutcome outcome = CallOnce(stub, request, options, on_response, result);
    if (outcome.progressed) resumes_without_progress = 0;
    if (outcome.stopped || outcome.status.error_code() != grpc::StatusCode::UNAVAILABLE) {
      result.status = std::move(outcome.status);
      return result;
    }
    if (resumes_without_progress >= options.max_resumes) {
      result.status =
          options.max_resumes == 0
              ? std::move(outcome.status)
              : grpc::Status(outcome.status.error_code(),
                             absl::StrCat(outcome.status.error_message(), " (gave up after ",
                                          options.max_resumes, " resumes without progress)"));
      return result;
    }
    ++resumes_without_progress;
    const absl::Duration backoff =
        ResumeBackoff(options, resumes_without_progress, absl::Uniform<double>(bitgen, 0.0, 1.0));
    if (options.on_resume) options.on_resume(outcome.status, resumes_without_progress, backoff);
    absl::SleepFor(backoff);
    request.set_resume_token(result.resume_token);
    result.resumes++;
  }
}

grpc::ChannelArguments GatewayChannelArguments() {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(64 << 20);
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 2000);
  args.SetInt(GRPC_ARG_DNS_MIN_TIME_BETWEEN_RESOLUTIONS_MS, 200);
  return args;
}

}  // namespace contacts::client
