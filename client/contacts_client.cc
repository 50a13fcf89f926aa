#include "client/contacts_client.h"

#include <algorithm>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <fstream>
#include <memory>
#include <mutex>
#include <sstream>
#include <thread>
#include <utility>

#include <grpcpp/support/error_details.h>

#include "absl/random/random.h"
#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "google/rpc/error_details.pb.h"
#include "google/rpc/status.pb.h"

namespace contacts::client {
namespace {

using ::contacts::v1::StreamContactsRequest;
using ::contacts::v1::StreamContactsResponse;

constexpr char kErrorDomain[] = "contacts-gateway";  // ErrorInfo.domain of the gateway's errors

bool Resumable(grpc::StatusCode code) {
  return code == grpc::StatusCode::UNAVAILABLE || code == grpc::StatusCode::RESOURCE_EXHAUSTED;
}

// A whole small file (a token or a PEM file); `what` names it in errors.
absl::StatusOr<std::string> ReadFile(const std::string& path, absl::string_view what) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::NotFoundError(
        absl::StrCat("cannot read the ", what, " ", path, ": ", std::strerror(errno)));
  }
  std::ostringstream content;
  content << in.rdbuf();
  if (in.bad()) return absl::NotFoundError(absl::StrCat("cannot read the ", what, " ", path));
  if (content.view().empty()) {
    return absl::NotFoundError(absl::StrCat("the ", what, " ", path, " is empty"));
  }
  return std::move(content).str();
}

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
  if (!options.bearer_token.empty()) {
    context.AddMetadata("authorization", absl::StrCat("Bearer ", options.bearer_token));
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

ErrorAdvice ParseErrorAdvice(const grpc::Status& status) {
  ErrorAdvice advice;
  google::rpc::Status details;
  if (status.error_details().empty() || !grpc::ExtractErrorDetails(status, &details).ok()) {
    return advice;
  }
  for (const google::protobuf::Any& detail : details.details()) {
    if (google::rpc::ErrorInfo info; detail.UnpackTo(&info)) {
      if (info.domain() != kErrorDomain) continue;  // e.g. a proxy's own
      advice.reason = info.reason();
      if (auto it = info.metadata().find("resume_token"); it != info.metadata().end()) {
        advice.resume_token = it->second;
      }
    } else if (google::rpc::RetryInfo retry; detail.UnpackTo(&retry) && retry.has_retry_delay()) {
      advice.retry_delay = absl::Seconds(retry.retry_delay().seconds()) +
                           absl::Nanoseconds(retry.retry_delay().nanos());
    }
  }
  return advice;
}

ResumeDecision DecideResume(const StreamOptions& options, grpc::StatusCode code,
                            const ErrorAdvice& advice, int attempt, double random,
                            std::string_view own_token) {
  ResumeDecision decision;
  decision.resume_token =
      advice.resume_token.empty() ? std::string(own_token) : advice.resume_token;
  if (!Resumable(code) || attempt > options.max_resumes) return decision;
  decision.resume = true;
  decision.wait =
      advice.retry_delay.has_value()
          ? std::clamp(*advice.retry_delay, absl::ZeroDuration(), options.max_retry_delay)
          : ResumeBackoff(options, attempt, random);
  return decision;
}

bool IsValidMetadataValue(std::string_view value) {
  return std::all_of(value.begin(), value.end(), [](char c) { return c >= 0x20 && c <= 0x7E; });
}

absl::StatusOr<std::string> ReadTokenFile(const std::string& path) {
  absl::StatusOr<std::string> content = ReadFile(path, "token file");
  if (!content.ok()) return content.status();
  std::string token(absl::StripAsciiWhitespace(*content));
  if (token.empty())
    return absl::InvalidArgumentError(absl::StrCat("the token file ", path, " is empty"));
  if (!IsValidMetadataValue(token)) {
    return absl::InvalidArgumentError(
        absl::StrCat("the token file ", path, " holds characters other than printable ASCII"));
  }
  return token;
}

absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> GatewayChannelCredentials(
    const TlsFiles& tls) {
  if (tls.cert_file.empty() != tls.key_file.empty()) {
    return absl::InvalidArgumentError(
        "a client certificate file needs its key file, and the key file its certificate");
  }
  if (tls.ca_file.empty() && tls.cert_file.empty()) return grpc::InsecureChannelCredentials();
  grpc::SslCredentialsOptions ssl;
  struct PemFile {
    const std::string& path;
    absl::string_view what;
    std::string* pem;
  };
  for (const PemFile& file :
       {PemFile{tls.ca_file, "CA file", &ssl.pem_root_certs},
        PemFile{tls.cert_file, "client certificate file", &ssl.pem_cert_chain},
        PemFile{tls.key_file, "client key file", &ssl.pem_private_key}}) {
    if (file.path.empty()) continue;
    absl::StatusOr<std::string> pem = ReadFile(file.path, file.what);
    if (!pem.ok()) return pem.status();
    *file.pem = *std::move(pem);
  }
  return grpc::SslCredentials(ssl);
}

StreamResult StreamContacts(contacts::v1::ContactService::StubInterface& stub,
                            StreamContactsRequest request, const StreamOptions& options,
                            absl::FunctionRef<bool(const StreamContactsResponse&)> on_response) {
  StreamResult result;
  result.resume_token = request.resume_token();
  struct Metadata {
    const char* field;
    const std::string& value;
  };
  for (const Metadata& metadata :
       {Metadata{"bearer_token", options.bearer_token}, Metadata{"jwt", options.jwt},
        Metadata{"app_id", options.app_id}}) {
    if (!IsValidMetadataValue(metadata.value)) {
      result.status = grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                                   absl::StrCat("StreamOptions.", metadata.field,
                                                " holds characters other than printable ASCII"));
      return result;
    }
  }
  absl::BitGen bitgen;
  int resumes_without_progress = 0;
  while (true) {
    CallOutcome outcome = CallOnce(stub, request, options, on_response, result);
    if (outcome.progressed) resumes_without_progress = 0;
    if (outcome.stopped) {
      result.status = std::move(outcome.status);
      return result;
    }
    const ErrorAdvice advice = ParseErrorAdvice(outcome.status);
    ResumeDecision decision =
        DecideResume(options, outcome.status.error_code(), advice, resumes_without_progress + 1,
                     absl::Uniform<double>(bitgen, 0.0, 1.0), result.resume_token);
    result.resume_token = std::move(decision.resume_token);
    if (!decision.resume) {
      result.error_reason = advice.reason;
      result.status =
          !Resumable(outcome.status.error_code()) || options.max_resumes == 0
              ? std::move(outcome.status)
              : grpc::Status(outcome.status.error_code(),
                             absl::StrCat(outcome.status.error_message(), " (gave up after ",
                                          options.max_resumes, " resumes without progress)"));
      return result;
    }
    ++resumes_without_progress;
    if (options.on_resume)
      options.on_resume(outcome.status, resumes_without_progress, decision.wait);
    absl::SleepFor(decision.wait);
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
