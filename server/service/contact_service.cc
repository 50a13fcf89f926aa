#include "server/service/contact_service.h"

#include <algorithm>
#include <atomic>
#include <optional>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "server/core/log.h"
#include "server/core/metrics.h"
#include "server/core/sync.h"
#include "server/service/request_validation.h"
#include "server/service/status.h"
#include "server/stream/prefetch_window.h"
#include "server/stream/resume_token.h"

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

absl::Time Deadline(const grpc::CallbackServerContext& context) {
  auto deadline = context.deadline();
  if (deadline == std::chrono::system_clock::time_point::max()) return absl::InfiniteFuture();
  return absl::FromChrono(deadline);
}

// Everything one stream is set up with, from its request, its metadata and the gateway's options.
struct StreamSetup {
  PageRequest base;  // each page request is this one with skip and limit set
  StreamCredentials credentials;
  uint64_t fingerprint = 0;  // of the list, for resume tokens
  PrefetchWindow::Options window;
  ResumePoint start;
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
  if (!credentials.ok()) return credentials.status();
  setup.credentials = *std::move(credentials);
  setup.base.caller_credentials = setup.credentials.pass_through();
  if (!request->resume_token().empty()) {
    absl::StatusOr<ResumePoint> point =
        DecodeResumeToken(request->resume_token(), setup.fingerprint);
    if (!point.ok()) return point.status();
    setup.start = *std::move(point);
  }
  const int32_t page_size =
      request->page_size() == 0 ? options.default_page_size : request->page_size();
  const int32_t batch_size =
      request->max_batch_size() == 0 ? options.default_batch_size : request->max_batch_size();
  setup.batch_size = static_cast<size_t>(std::min(batch_size, options.max_batch_size));
  setup.max_batch_bytes = options.max_batch_bytes;
  setup.window.window = std::max(1, options.prefetch_pages);
  setup.window.pager = PagerOptions{std::min(page_size, options.max_page_size), options.max_pages,
                                    request->max_contacts(), options.seam_overlap};
  return setup;
}

LogContext LogFor(const grpc::CallbackServerContext& context) {
  LogContext log;
  log.request_id = RequestId(context);
  return log;
}

}  // namespace

// One StreamContacts call. It only reacts: to gRPC (a write done, a cancellation, the end) and to
// pages arriving; what to fetch, in which order pages count and where a stream resumes is the
// PrefetchWindow's. gRPC holds one reference until OnDone; each upstream fetch in flight holds
// another, so a page arriving after the call ended finds the reactor alive. gRPC and the page
// source call in on their own threads; the state is guarded by mu_, and no lock is held while
// calling StartWrite, Finish or Fetch.
class StreamContactsReactor final : public grpc::ServerWriteReactor<grpc::ByteBuffer> {
 public:
  StreamContactsReactor(ContactService& service, grpc::CallbackServerContext* context,
                        const grpc::ByteBuffer& wire)
      : service_(service),
        context_(context),
        log_(LogFor(*context)),
        setup_(Setup(service.options_, *context, wire, service.authorizer_,
                     reinterpret_cast<uintptr_t>(this))) {
    context->AddInitialMetadata("x-request-id", log_.request_id);
    absl::Status started = setup_.status();
    if (setup_.ok()) {
      log_.stream_id = setup_->base.stream_id;
      log_.list_id = setup_->base.list_id;
      log_.account_id = setup_->base.account_id;
      absl::MutexLock lock(&mu_);
      window_.emplace(setup_->window, setup_->start);
    }
    absl::Status refusal;
    if (started.ok() && !service_.Register(this, &refusal)) started = refusal;
    if (started.ok()) {
      StartSendInitialMetadata();  // tells the caller at once that the stream was taken
    } else {
      absl::MutexLock lock(&mu_);
      refused_ = started;
    }
    Pump();
  }

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
        if (window_->delivered() > 0) {
          context_->AddTrailingMetadata("contacts-resume-token", ResumeToken());
        }
        finish = ToGrpcStatus(*abort_);
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
      } else if (window_) {
        // Pages in flight plus the pages' worth of contacts ready stay within the window: a slow
        // caller stops the prefetching.
        fetch = window_->Refill();
      }
    }
    if (write) write_hand_over_.Across([&] { StartWrite(&wire_, *write); });
    if (finish) Finish(*finish);
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

  void OnPage(uint64_t slot, PageResult result) {
    {
      absl::MutexLock lock(&mu_);
      const bool changed = window_->list_changed();
      window_->Accept(slot, std::move(result));
      if (!changed && window_->list_changed()) {
        Log(Severity::kWarning,
            absl::StrCat("the list changed during the stream: ", window_->change()), log_);
      }
    }
    Pump();
    Unref();
  }

  // Moves up to one batch of ready contacts into wire_: their entries as the pages hold them,
  // then the message's other fields (protobuf lets fields come in any order).
  void BuildResponse() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    std::vector<grpc::Slice> slices;
    std::string copied;  // small batches: one copy is cheaper than a slice per run
    size_t count = 0;
    for (const ContactRun& run : window_->Take(setup_->batch_size, setup_->max_batch_bytes)) {
      count += run.size();
      if (std::string_view taken = run.contacts.wire(run.begin, run.end);
          taken.size() <= kCopyBelowBytes) {
        copied.append(taken);
      } else {
        if (!copied.empty()) slices.emplace_back(std::exchange(copied, {}));
        slices.push_back(SliceOf(run));
      }
    }
    Metrics().contacts_streamed.Increment(count);
    StreamContactsResponse rest;
    rest.set_total_results(window_->total_results());
    rest.set_delivered_count(window_->delivered());
    rest.set_list_changed(window_->list_changed());
    rest.set_resume_token(ResumeToken());
    rest.AppendToString(&copied);
    slices.emplace_back(copied);
    grpc::ByteBuffer wire(slices.data(), slices.size());
    wire_.Swap(&wire);
  }

  // Resumes right after the last contact written.
  std::string ResumeToken() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return EncodeResumeToken(window_->resume_point(), setup_->fingerprint);
  }

  grpc::Status FinalStatus() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    const absl::Status& status = *window_->end();
    if (status.ok() || window_->delivered() == window_->resumed_at()) return ToGrpcStatus(status);
    // Some contacts went out: say how to continue, and call unreadable data a loss.
    absl::StatusCode code =
        status.code() == absl::StatusCode::kInternal ? absl::StatusCode::kDataLoss : status.code();
    return ToGrpcStatus(
        absl::Status(code, absl::StrCat(status.message(), "; stopped after ", window_->delivered(),
                                        " contacts, resume with the last resume_token received")));
  }

  // Set in the constructor, read-only afterwards.
  ContactService& service_;
  grpc::CallbackServerContext* const context_;
  const absl::Time started_ = absl::Now();
  LogContext log_;
  const absl::StatusOr<StreamSetup> setup_;
  const std::shared_ptr<Cancellation> cancel_ = std::make_shared<Cancellation>();
  std::atomic<int> refs_{1};

  absl::Mutex mu_;
  std::optional<PrefetchWindow> window_ ABSL_GUARDED_BY(mu_);  // set unless setup_ failed
  std::optional<absl::Status> refused_ ABSL_GUARDED_BY(mu_);   // the call was not taken
  std::optional<absl::Status> abort_ ABSL_GUARDED_BY(mu_);     // draining: end after this write
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  absl::StatusCode final_code_ ABSL_GUARDED_BY(mu_) = absl::StatusCode::kUnknown;
  // The message being written: built under mu_, then gRPC's from StartWrite until OnWriteDone
  // (writing_ says so), so it needs no lock of its own.
  grpc::ByteBuffer wire_;
  HandOver write_hand_over_;  // StartWrite -> OnWriteDone, for TSan (server/core/sync.h)
};

ContactService::ContactService(PageSource& source, Authorizer* authorizer, StreamOptions options)
    : source_(source), authorizer_(authorizer), options_(options) {}

grpc::ServerWriteReactor<grpc::ByteBuffer>* ContactService::StreamContacts(
    grpc::CallbackServerContext* context, const grpc::ByteBuffer* request) {
  return new StreamContactsReactor(*this, context, *request);
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
