#include "server/service/contact_service.h"

#include <algorithm>
#include <atomic>
#include <optional>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/inlined_vector.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "server/core/error_reason.h"
#include "server/core/log.h"
#include "server/core/metrics.h"
#include "server/core/sync.h"
#include "server/core/trace.h"
#include "server/service/grpc_metrics.h"
#include "server/service/request_validation.h"
#include "server/service/status.h"
#include "server/stream/prefetch_window.h"
#include "server/stream/resume_token.h"

// gRPC 1.51 hands on a message whose compressed flag is set while the call declares no encoding
// as if it were not compressed (the protocol says: an error). The flag is visible only through a
// function libgrpc exports for its own tests (src/core/lib/surface/call_test_only.h); declared
// weak, so that a libgrpc without it loses this one check and nothing else.
uint32_t grpc_call_test_only_get_message_flags(grpc_call* call) __attribute__((weak));

namespace contacts::gateway {
namespace {

using contacts::v1::StreamContactsRequest;
using contacts::v1::StreamContactsResponse;

// Batches up to this size go out as one copied slice, larger ones as slices of the pages.
constexpr size_t kCopyBelowBytes = 4096;

std::string ToString(const grpc::ByteBuffer& buffer) {
  std::vector<grpc::Slice> slices;
  std::string out;
  if (!buffer.Dump(&slices).ok()) return out;
  for (const grpc::Slice& slice : slices) {
    out.append(reinterpret_cast<const char*>(slice.begin()), slice.size());
  }
  return out;
}

// The caller's x-request-id when it is 1-128 printable ASCII characters, else a new random one.
std::string RequestId(const grpc::CallbackServerContext& context) {
  std::string_view given = MetadataValue(context, "x-request-id");
  if (!given.empty() && given.size() <= 128 &&
      std::all_of(given.begin(), given.end(), [](char c) { return c > ' ' && c <= '~'; })) {
    return std::string(given);
  }
  thread_local std::mt19937_64 random(std::random_device{}());
  return absl::StrCat(absl::Hex(random(), absl::kZeroPad16));
}

// Contacts [begin, end) of a run, for gRPC to send without a copy: the slice keeps the page's
// buffer alive until gRPC is done with it.
grpc::Slice SliceOf(const ContactRun& run) {
  std::string_view bytes = run.contacts.wire(run.begin, run.end);
  auto* keep = new std::shared_ptr<const void>(run.contacts.Retain());
  return grpc::Slice(
      const_cast<char*>(bytes.data()), bytes.size(),
      [](void* keep) { delete static_cast<std::shared_ptr<const void>*>(keep); }, keep);
}

double SecondsSince(absl::Time since) { return absl::ToDoubleSeconds(absl::Now() - since); }

absl::Time Deadline(const grpc::CallbackServerContext& context) {
  auto deadline = context.deadline();
  if (deadline == std::chrono::system_clock::time_point::max()) return absl::InfiniteFuture();
  return absl::FromChrono(deadline);
}

// A refusal of the caller (authorization, credentials) with its reason, unless the failure set one
// itself (a caller's own JWT the upstream refused keeps the upstream's reason).
absl::Status CallerFailure(absl::Status status) {
  if (!ReasonOf(status).empty()) return status;
  switch (status.code()) {
    case absl::StatusCode::kResourceExhausted:
      return WithReason(std::move(status), reason::kCallerStreamLimit);
    case absl::StatusCode::kPermissionDenied:
      return WithReason(std::move(status), reason::kCallerNotAllowed);
    case absl::StatusCode::kInvalidArgument:
      return WithReason(std::move(status), reason::kInvalidRequest);
    default:
      return WithReason(std::move(status), reason::kCallerUnauthenticated);
  }
}

constexpr uint32_t kCompressedFlag = 0x80000000u;  // GRPC_WRITE_INTERNAL_COMPRESS, core-internal

bool CompressedWithoutEncoding(grpc::CallbackServerContext& context) {
  if (::grpc_call_test_only_get_message_flags == nullptr || context.c_call() == nullptr) {
    return false;
  }
  std::string_view encoding = MetadataValue(context, "grpc-encoding");
  return (::grpc_call_test_only_get_message_flags(context.c_call()) & kCompressedFlag) != 0 &&
         (encoding.empty() || encoding == "identity");
}

// Everything one stream is set up with, from its request, its metadata and the gateway's options.
struct StreamSetup {
  PageRequest base;  // each page request is this one with skip and limit set
  StreamCredentials credentials;
  uint64_t fingerprint = 0;  // of the list, for resume tokens
  PrefetchWindow::Options window;
  ResumePoint start;
  bool resumed = false;  // the request came with a resume token
  size_t batch_size = 0;
  size_t max_batch_bytes = 0;
};

absl::StatusOr<StreamSetup> Setup(const StreamOptions& options,
                                  const grpc::CallbackServerContext& context,
                                  const grpc::ByteBuffer& wire, Authorizer* authorizer,
                                  uint64_t owner) {
  absl::StatusOr<StreamContactsRequest> request = ParseRequest(ToString(wire));
  if (!request.ok()) return request.status();
  StreamSetup setup;
  setup.base.stream_id = request->stream_id();
  setup.base.list_id = request->contact_list_id();
  setup.base.account_id = request->account_id();
  setup.base.deadline = Deadline(context);
  setup.base.owner = owner;
  setup.fingerprint =
      ListFingerprint(setup.base.stream_id, setup.base.list_id, setup.base.account_id);
  absl::StatusOr<StreamCredentials> credentials =
      ChooseCredentials(context, setup.base.account_id, authorizer);
  if (!credentials.ok()) return CallerFailure(credentials.status());
  setup.credentials = *std::move(credentials);
  setup.base.caller_credentials = setup.credentials.pass_through();
  setup.base.caller = setup.credentials.caller();
  if (!request->resume_token().empty()) {
    absl::StatusOr<ResumePoint> point =
        DecodeResumeToken(request->resume_token(), setup.fingerprint, *options.resume_token_keys);
    if (!point.ok()) {
      return WithField(WithReason(point.status(), reason::kInvalidResumeToken), "resume_token");
    }
    setup.start = *std::move(point);
    setup.resumed = true;
  }
  const int32_t asked =
      request->page_size() == 0 ? options.default_page_size : request->page_size();
  // 0: the largest the upstream serves (the Pager asks for the ceiling, then learns).
  const int32_t page_size = asked == 0 ? options.max_page_size : asked;
  const int32_t batch_size =
      request->max_batch_size() == 0 ? options.default_batch_size : request->max_batch_size();
  setup.batch_size = static_cast<size_t>(std::min(batch_size, options.max_batch_size));
  setup.max_batch_bytes = options.max_batch_bytes;
  setup.window.window = std::max(1, options.prefetch_pages);
  setup.window.pager =
      PagerOptions{std::min(page_size, options.max_page_size), options.max_pages,
                   request->max_contacts(), options.seam_overlap, options.max_page_size};
  return setup;
}

// The stream's span: a child of the caller's trace context (W3C traceparent, tracestate), or of a
// new trace when the call brings none or an invalid one.
TraceContext StreamTrace(const grpc::CallbackServerContext& context) {
  std::optional<TraceContext> caller = TraceContext::Parse(MetadataValue(context, "traceparent"),
                                                           MetadataValue(context, "tracestate"));
  return caller ? caller->Child() : TraceContext::New();
}

}  // namespace

// One StreamContacts call. It only reacts: to gRPC (a write done, a cancellation, the end) and to
// pages arriving; what to fetch, in which order pages count and where a stream resumes is the
// PrefetchWindow's. gRPC holds one reference until OnDone; each upstream fetch in flight holds
// another, and so does the PageSizeMemory's answer while it is awaited (the window opens with
// it), so a page or an answer arriving after the call ended finds the reactor alive. gRPC, the
// page source and the memory call in on their own threads; the state is guarded by mu_, and no
// lock is held while calling StartWrite, Finish, Fetch, Recall or Learn.
//
// The method is registered as bidirectional streaming, though callers see (and the proto declares)
// a server stream: the reactor reads the request itself, so that it can tell a call that brought
// no request, or a second one, from a good one (gRPC's server-streaming handler would hand it an
// empty request, or drop the second).
class StreamContactsReactor final
    : public grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer> {
 public:
  StreamContactsReactor(ContactService& service, grpc::CallbackServerContext* context)
      : service_(service), context_(context), trace_(StreamTrace(*context)) {
    log_.request_id = RequestId(*context);
    log_.trace_id = trace_.trace_id;
    log_.span_id = trace_.span_id;
    context->AddInitialMetadata("x-request-id", log_.request_id);
    context->AddInitialMetadata("traceparent", trace_.Traceparent());
    StartRead(&request_);  // gRPC starts it once the constructor returned
    // gRPC may run the first reactions on another thread, through its own lock-free hand-over.
    HappensBefore(this);
  }

  // The first read brings the request; the second, the caller's half-close (a message there is a
  // second request, which is refused).
  void OnReadDone(bool ok) override {
    HappensAfter(this);
    if (ok) rpc_metrics_.Received();
    if (!read_request_) {
      read_request_ = true;
      Start(ok);
      return;
    }
    if (ok) {
      Abort(WithReason(
          absl::InvalidArgumentError("StreamContacts takes one request message; a second one came"),
          reason::kInvalidRequest));
    }
  }

 private:
  void Start(bool got_request) {
    absl::StatusOr<StreamSetup> setup =
        !got_request
            ? WithReason(absl::InvalidArgumentError(
                             "the call carried no complete contacts.v1.StreamContactsRequest"),
                         reason::kInvalidRequest)
        : CompressedWithoutEncoding(*context_)
            ? WithReason(absl::InvalidArgumentError(
                             "the request message is flagged compressed but the call names no "
                             "grpc-encoding"),
                         reason::kInvalidRequest)
            : Setup(service_.options_, *context_, request_, service_.authorizer_,
                    reinterpret_cast<uintptr_t>(this));
    absl::Status started = setup.status();
    if (setup.ok()) {
      setup_ = *std::move(setup);
      setup_->base.trace = trace_;
      log_.stream_id = setup_->base.stream_id;
      log_.list_id = setup_->base.list_id;
      log_.account_id = setup_->base.account_id;
      absl::Status refusal;
      if (!service_.Register(this, &refusal)) started = refusal;
    }
    if (started.ok()) {
      if (setup_->resumed) Metrics().resumed_streams.Increment();
      StartSendInitialMetadata();  // tells the caller at once that the stream was taken
      HappensBefore(this);
      StartRead(&request_);  // for the half-close
      if (service_.page_sizes_ != nullptr) {
        Ref();  // until the memory answers (inside Recall, or later on a thread of its own)
        service_.page_sizes_->Recall(setup_->base.account_id, [this](std::optional<int32_t> size) {
          OpenWindow(size);
          Pump();
          Unref();
        });
        return;
      }
      OpenWindow(std::nullopt);
    } else {
      absl::MutexLock lock(&mu_);
      refused_ = started;
    }
    Pump();
  }

 public:
  void Ref() { refs_.fetch_add(1); }
  void Unref() {
    if (refs_.fetch_sub(1) == 1) delete this;
  }

  // Ends the stream with `status` after the write in flight, if any; contacts fetched but not yet
  // written are dropped (the resume token points after the last one written).
  void Abort(const absl::Status& status) {
    {
      absl::MutexLock lock(&mu_);
      if (!abort_) abort_ = status;
      if (window_) window_->Stop(status);
    }
    cancel_->Cancel();
    Pump();
  }

  void OnWriteDone(bool ok) override {
    write_hand_over_.Received();
    {
      absl::MutexLock lock(&mu_);
      writing_ = false;
      // Not ok: the caller is gone; stop the upstream side and finish.
      if (!ok) window_->Stop(absl::CancelledError("the stream broke while writing"));
    }
    if (!ok) cancel_->Cancel();
    Pump();
  }

  void OnCancel() override {
    HappensAfter(this);
    cancel_->Cancel();
    {
      absl::MutexLock lock(&mu_);
      cancelled_ = true;
      if (window_) window_->Stop(absl::CancelledError("the call was cancelled"));
    }
    Pump();
  }

  void OnDone() override {
    {
      absl::MutexLock lock(&mu_);
      if (window_) {
        Log(Severity::kInfo,
            absl::StrCat("stream ended: contacts=", window_->delivered() - window_->resumed_at(),
                         " pages=", window_->pages(),
                         " status=", absl::StatusCodeToString(final_code_),
                         " list_changed=", window_->list_changed(),
                         " duration=", absl::FormatDuration(absl::Now() - started_)),
            log_);
      }
    }
    service_.Unregister(this);
    cancel_->Cancel();  // prefetched pages still in flight are of no use now
    ContactService& service = service_;
    Unref();
    // gRPC's Server::Wait returns only after every OnDone returned, but counts them down with an
    // atomic TSan cannot see; GatewayServer::Shutdown takes this edge after Wait.
    HappensBefore(&service);
  }

 private:
  // Decides, under the lock, whether to write, finish or fetch; then does it without the lock.
  void Pump() {
    std::optional<grpc::Status> finish;
    std::optional<grpc::WriteOptions> write;
    std::vector<PrefetchWindow::Fetch> fetch;
    {
      absl::MutexLock lock(&mu_);
      if (finished_) return;
      if (writing_) {
        // Only fetching: the write in flight comes first.
      } else if (refused_) {
        finish = ToGrpcStatus(*refused_);
      } else if (cancelled_) {
        finish = grpc::Status::CANCELLED;
      } else if (abort_) {
        FailureContext failure{.retry_after = absl::Seconds(1)};
        if (window_ && window_->delivered() > 0) {
          failure.resume_token = ResumeToken();
          context_->AddTrailingMetadata("contacts-resume-token", failure.resume_token);
        }
        finish = ToGrpcStatus(*abort_, failure);
      } else if (!window_) {
        // Still waiting for the request.
      } else if (window_->ready() > 0) {
        BuildResponse();
        // More contacts ready: let gRPC hold this message and send it with the next ones in one
        // socket write (a hinted write completes at once while the stream holds less than
        // GRPC_ARG_HTTP2_WRITE_BUFFER_SIZE, see gateway_server.cc). The last message of the
        // queue goes without the hint, which flushes them all.
        write = grpc::WriteOptions();
        if (window_->ready() > 0) write->set_buffer_hint();
        writing_ = true;
      } else if (window_->end()) {
        finish = FinalStatus();
      }
      if (finish) {
        finished_ = true;
        final_code_ = static_cast<absl::StatusCode>(finish->error_code());
        // Before Finish: a caller that sees the end finds the stream counted.
        Metrics().stream_duration_seconds.Observe(SecondsSince(started_));
      } else if (window_) {
        // Pages in flight plus the pages' worth of contacts ready stay within the window: a slow
        // caller stops the prefetching.
        fetch = window_->Refill();
      }
    }
    if (write) {
      rpc_metrics_.Sent();
      write_hand_over_.Across([&] { StartWrite(&wire_, *write); });
    }
    if (finish) {
      rpc_metrics_.Handled(finish->error_code());
      Finish(*finish);
    }
    for (PrefetchWindow::Fetch& f : fetch) {
      PageRequest request = setup_->base;
      request.skip = f.page.skip;
      request.limit = f.page.limit;
      request.first_page = f.first_page;
      request.credentials = setup_->credentials.Next();
      refs_.fetch_add(1);
      service_.source_.Fetch(std::move(request), cancel_, [this, slot = f.slot](PageResult result) {
        OnPage(slot, std::move(result));
      });
    }
  }

  // Opens the upstream side, with the largest page the upstream serves if it is remembered.
  void OpenWindow(std::optional<int32_t> upstream_serves) {
    PrefetchWindow::Options options = setup_->window;
    if (upstream_serves) {
      options.pager.upstream_serves = *upstream_serves;
      Metrics().AccountPageSize(setup_->base.account_id, *upstream_serves);
    }
    absl::MutexLock lock(&mu_);
    reported_page_size_ = upstream_serves;
    window_.emplace(options, setup_->start);
  }

  void OnPage(uint64_t slot, PageResult result) {
    std::optional<int32_t> learned;
    std::string why;
    {
      absl::MutexLock lock(&mu_);
      const bool changed = window_->list_changed();
      window_->Accept(slot, std::move(result));
      if (!changed && window_->list_changed()) {
        Log(Severity::kWarning,
            absl::StrCat("the list changed during the stream: ", window_->change()), log_);
      }
      if (const std::optional<int32_t>& size = window_->learned_page_size();
          size && size != reported_page_size_) {
        learned = reported_page_size_ = size;
        why = window_->learned_why();
      }
    }
    if (learned && service_.page_sizes_ != nullptr) {
      const std::string& account = setup_->base.account_id;
      if (service_.page_sizes_->Learn(account, *learned)) {
        Log(Severity::kInfo,
            absl::StrCat("the upstream serves pages of at most ", *learned, " for account ",
                         account, ": ", why),
            log_);
      }
      Metrics().AccountPageSize(account, *learned);
    }
    Pump();
    Unref();
  }

  // Moves up to one batch of ready contacts into wire_: their entries as the pages hold them,
  // then the message's other fields (protobuf lets fields come in any order). Runs of at most
  // kCopyBelowBytes are copied into one slice with what follows them, larger ones are referenced.
  void BuildResponse() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    const PrefetchWindow::Runs runs = window_->Take(setup_->batch_size, setup_->max_batch_bytes);
    absl::InlinedVector<grpc::Slice, 4> slices;
    absl::InlinedVector<std::string_view, 4> copied;
    size_t copied_bytes = 0;
    size_t count = 0;
    // One slice of the pieces in `copied`, with `extra` more bytes written by `fill`.
    auto flush = [&](size_t extra, const auto& fill) {
      grpc::Slice slice(copied_bytes + extra);
      auto* out = const_cast<uint8_t*>(slice.begin());
      for (std::string_view piece : copied) out = std::copy(piece.begin(), piece.end(), out);
      fill(out);
      slices.push_back(std::move(slice));
      copied.clear();
      copied_bytes = 0;
    };
    for (const ContactRun& run : runs) {
      count += run.size();
      if (std::string_view taken = run.contacts.wire(run.begin, run.end);
          taken.size() <= kCopyBelowBytes) {
        copied.push_back(taken);
        copied_bytes += taken.size();
      } else {
        if (!copied.empty()) flush(0, [](uint8_t*) {});
        slices.push_back(SliceOf(run));
      }
    }
    Metrics().contacts_streamed.Increment(count);
    if (window_->delivered() == window_->resumed_at() + static_cast<int64_t>(count)) {
      Metrics().first_message_seconds.Observe(SecondsSince(started_));
    }
    StreamContactsResponse rest;
    rest.set_total_results(window_->total_results());
    rest.set_delivered_count(window_->delivered());
    rest.set_list_changed(window_->list_changed());
    rest.set_resume_token(ResumeToken());
    flush(rest.ByteSizeLong(), [&](uint8_t* out) { rest.SerializeWithCachedSizesToArray(out); });
    grpc::ByteBuffer wire(slices.data(), slices.size());
    wire_.Swap(&wire);
  }

  // Resumes right after the last contact written.
  std::string ResumeToken() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return EncodeResumeToken(window_->resume_point(), setup_->fingerprint,
                             *service_.options_.resume_token_keys);
  }

  grpc::Status FinalStatus() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    const absl::Status& status = *window_->end();
    FailureContext failure{.retry_after = window_->end_facts().retry_after};
    if (window_->delivered() > 0) failure.resume_token = ResumeToken();
    if (status.ok() || window_->delivered() == window_->resumed_at()) {
      return ToGrpcStatus(status, failure);
    }
    // Some contacts went out: say how to continue, and call unreadable data a loss.
    absl::StatusCode code =
        status.code() == absl::StatusCode::kInternal ? absl::StatusCode::kDataLoss : status.code();
    return ToGrpcStatus(
        Rewritten(status, code,
                  absl::StrCat(status.message(), "; stopped after ", window_->delivered(),
                               " contacts, resume with the last resume_token received")),
        failure);
  }

  // Set in the constructor, or once with the request (before window_, which every use follows),
  // read-only afterwards.
  ContactService& service_;
  grpc::CallbackServerContext* const context_;
  const absl::Time started_ = absl::Now();
  // Counted here rather than by the metrics interceptor (see GrpcMetricsInterceptorFactory).
  RpcMetrics rpc_metrics_{Metrics(), RpcLabels(StreamContactsMethod())};
  const TraceContext trace_;  // the stream's span
  LogContext log_;
  grpc::ByteBuffer request_;   // gRPC's while a read is pending
  bool read_request_ = false;  // the first read completed (gRPC completes reads one at a time)
  std::optional<StreamSetup> setup_;
  const std::shared_ptr<Cancellation> cancel_ = std::make_shared<Cancellation>();
  std::atomic<int> refs_{1};

  absl::Mutex mu_;
  std::optional<PrefetchWindow> window_ ABSL_GUARDED_BY(mu_);  // set unless setup_ failed
  // The largest page size the memory told or was told (PageSizeMemory), for the window's news.
  std::optional<int32_t> reported_page_size_ ABSL_GUARDED_BY(mu_);
  std::optional<absl::Status> refused_ ABSL_GUARDED_BY(mu_);  // the call was not taken
  std::optional<absl::Status> abort_ ABSL_GUARDED_BY(mu_);    // draining: end after this write
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  absl::StatusCode final_code_ ABSL_GUARDED_BY(mu_) = absl::StatusCode::kUnknown;
  // The message being written: built under mu_, then gRPC's from StartWrite until OnWriteDone
  // (writing_ says so), so it needs no lock of its own.
  grpc::ByteBuffer wire_;
  HandOver write_hand_over_;  // StartWrite -> OnWriteDone, for TSan (server/core/sync.h)
};

const std::string& StreamContactsMethod() {
  static const std::string* const method = new std::string(
      absl::StrCat("/", contacts::v1::ContactService::service_full_name(), "/StreamContacts"));
  return *method;
}

ContactService::ContactService(PageSource& source, Authorizer* authorizer, StreamOptions options,
                               PageSizeMemory* page_sizes)
    : source_(source), authorizer_(authorizer), page_sizes_(page_sizes), options_(options) {
  AddMethod(new grpc::internal::RpcServiceMethod(
      StreamContactsMethod().c_str(), grpc::internal::RpcMethod::BIDI_STREAMING, nullptr));
  MarkMethodRawCallback(0,
                        new grpc::internal::CallbackBidiHandler<grpc::ByteBuffer, grpc::ByteBuffer>(
                            [this](grpc::CallbackServerContext* context) {
                              return new StreamContactsReactor(*this, context);
                            }));
}

bool ContactService::Register(StreamContactsReactor* stream, absl::Status* refusal) {
  absl::MutexLock lock(&mu_);
  if (refusal_) {
    *refusal = *refusal_;
    return false;
  }
  active_.insert(stream);
  Metrics().active_streams.Add(1);
  return true;
}

void ContactService::Unregister(StreamContactsReactor* stream) {
  absl::MutexLock lock(&mu_);
  if (active_.erase(stream)) Metrics().active_streams.Add(-1);
}

size_t ContactService::active_streams() const {
  absl::MutexLock lock(&mu_);
  return active_.size();
}

void ContactService::AbortAll(const absl::Status& status) {
  std::vector<StreamContactsReactor*> streams;
  {
    absl::MutexLock lock(&mu_);
    refusal_ = status;
    for (StreamContactsReactor* stream : active_) {
      stream->Ref();  // alive until aborted, even if it finishes meanwhile
      streams.push_back(stream);
    }
  }
  // Without the lock: Abort may finish a stream, and its OnDone unregisters.
  for (StreamContactsReactor* stream : streams) {
    stream->Abort(status);
    stream->Unref();
  }
}

}  // namespace contacts::gateway
