#include "server/service/contact_service.h"

#include <algorithm>
#include <atomic>
#include <deque>
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
#include "server/stream/pager.h"
#include "server/stream/resume_token.h"

namespace contacts::gateway {
namespace {

using contacts::v1::StreamContactsRequest;
using contacts::v1::StreamContactsResponse;

// Batches up to this size go out as one copied slice, larger ones as slices of the pages.
constexpr size_t kCopyBelowBytes = 4096;

std::string_view MetadataValue(const grpc::CallbackServerContext& context, std::string_view key) {
  auto it = context.client_metadata().find(grpc::string_ref(key.data(), key.size()));
  if (it == context.client_metadata().end()) return {};
  return std::string_view(it->second.data(), it->second.size());
}

std::string ToString(const grpc::ByteBuffer& buffer) {
  std::vector<grpc::Slice> slices;
  std::string out;
  if (!buffer.Dump(&slices).ok()) return out;
  for (const grpc::Slice& slice : slices)
    out.append(reinterpret_cast<const char*>(slice.begin()), slice.size());
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
grpc::Slice SliceOf(const ContactRun& run, size_t end) {
  std::string_view bytes = run.contacts.wire(run.begin, end);
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

}  // namespace

// One StreamContacts call. gRPC holds one reference until OnDone; each upstream fetch in flight
// holds another, so a page arriving after the call ended finds the reactor alive. The state is
// guarded by mu_; gRPC and the page source call in on their own threads, and no lock is held
// while calling StartWrite, Finish or Fetch.
class StreamContactsReactor final : public grpc::ServerWriteReactor<grpc::ByteBuffer> {
 public:
  StreamContactsReactor(ContactService& service, grpc::CallbackServerContext* context,
                        const grpc::ByteBuffer& wire)
      : service_(service), source_(service.source_), context_(context) {
    log_.request_id = RequestId(*context);
    context->AddInitialMetadata("x-request-id", log_.request_id);
    absl::StatusOr<StreamContactsRequest> request = ParseRequest(ToString(wire));
    absl::Status started =
        request.ok() ? Start(service.options_, *context, *request) : request.status();
    absl::Status refusal;
    if (started.ok() && !service_.Register(this, &refusal)) started = refusal;
    if (!started.ok()) {
      absl::MutexLock lock(&mu_);
      end_ = started;
    } else {
      StartSendInitialMetadata();  // tells the caller at once that the stream was taken
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
      ready_.clear();
      ready_count_ = 0;
    }
    cancel_->Cancel();
    Pump();
  }

  void OnWriteDone(bool ok) override {
    write_hand_over_.Received();
    {
      absl::MutexLock lock(&mu_);
      writing_ = false;
      if (!ok) {
        // The caller is gone: stop the upstream side and finish.
        if (!end_) end_ = absl::CancelledError("the stream broke while writing");
        ready_.clear();
        ready_count_ = 0;
      }
    }
    if (!ok) cancel_->Cancel();
    Pump();
  }

  void OnCancel() override {
    cancel_->Cancel();
    {
      absl::MutexLock lock(&mu_);
      cancelled_ = true;
      ready_.clear();
      ready_count_ = 0;
    }
    Pump();
  }

  void OnDone() override {
    {
      absl::MutexLock lock(&mu_);
      Log(Severity::kInfo,
          absl::StrCat("stream ended: contacts=", delivered_ - resumed_at_, " pages=", pages_,
                       " status=", absl::StatusCodeToString(final_code_), " list_changed=",
                       list_changed_, " duration=", absl::FormatDuration(absl::Now() - started_)),
          log_);
    }
    Metrics().stream_duration_seconds.Observe(SecondsSince(started_));
    service_.Unregister(this);
    cancel_->Cancel();  // prefetched pages still in flight are of no use now
    ContactService& service = service_;
    Unref();
    // gRPC's Server::Wait returns only after every OnDone returned, but counts them down with an
    // atomic TSan cannot see; GatewayServer::Shutdown takes this edge after Wait.
    HappensBefore(&service);
  }

 private:
  absl::Status Start(const StreamOptions& options, const grpc::CallbackServerContext& context,
                     const StreamContactsRequest& request) {
    base_.stream_id = request.stream_id();
    base_.list_id = request.contact_list_id();
    base_.account_id = request.account_id();
    base_.deadline = Deadline(context);
    log_.stream_id = base_.stream_id;
    log_.list_id = base_.list_id;
    log_.account_id = base_.account_id;
    base_.owner = reinterpret_cast<uintptr_t>(this);
    fingerprint_ = ListFingerprint(base_.stream_id, base_.list_id, base_.account_id);

    std::string_view jwt = MetadataValue(context, "auth");
    std::string_view app_id = MetadataValue(context, "iid");
    if (!jwt.empty()) {
      if (app_id.empty()) {
        return absl::InvalidArgumentError(
            "metadata 'iid' (the app's client id) must accompany the JWT in metadata 'auth'");
      }
      base_.credentials = {std::string(jwt), std::string(app_id)};
      base_.caller_credentials = true;
    } else if (service_.authorizer_ == nullptr) {
      return absl::UnauthenticatedError(
          "no upstream credentials: send the app's JWT in metadata 'auth' and its client id in "
          "'iid', or configure the gateway with --credentials-file or --client-id");
    } else {
      absl::StatusOr<Grant> grant =
          service_.authorizer_->Authorize(IdentifyCaller(context), base_.account_id);
      if (!grant.ok()) return grant.status();
      grant_ = *std::move(grant);
    }

    ResumePoint start;
    if (!request.resume_token().empty()) {
      absl::StatusOr<ResumePoint> point = DecodeResumeToken(request.resume_token(), fingerprint_);
      if (!point.ok()) return point.status();
      start = *std::move(point);
      Metrics().resumed_streams.Increment();
    }
    delivered_ = resumed_at_ = start.delivered;
    next_offset_ = start.next_offset;
    last_ids_.assign(start.last_ids.begin(), start.last_ids.end());

    int32_t page_size = request.page_size() == 0 ? options.default_page_size : request.page_size();
    batch_size_ =
        request.max_batch_size() == 0 ? options.default_batch_size : request.max_batch_size();
    batch_size_ = std::min(batch_size_, options.max_batch_size);
    max_batch_bytes_ = options.max_batch_bytes;
    window_ = std::max(1, options.prefetch_pages);
    page_size_ = std::min(page_size, options.max_page_size);
    absl::MutexLock lock(&mu_);
    pager_.emplace(
        PagerOptions{page_size_, options.max_pages, request.max_contacts(), options.seam_overlap},
        std::move(start));
    return absl::OkStatus();
  }

  // Decides, under the lock, whether to write, finish or fetch; then does it without the lock.
  void Pump() {
    std::optional<grpc::Status> finish;
    bool write = false;
    std::vector<std::pair<uint64_t, PageRequest>> fetch;
    {
      absl::MutexLock lock(&mu_);
      if (finished_) return;
      if (!writing_) {
        if (cancelled_) {
          finish = grpc::Status::CANCELLED;
        } else if (abort_) {
          if (delivered_ > 0) {
            context_->AddTrailingMetadata("contacts-resume-token", ResumeToken());
          }
          finish = ToGrpcStatus(*abort_);
        } else if (!ready_.empty()) {
          BuildResponse();
          // More contacts ready: let gRPC hold this message and send it with the next ones in one
          // socket write (a hinted write completes at once while the stream holds less than
          // GRPC_ARG_HTTP2_WRITE_BUFFER_SIZE, see gateway_server.cc). The last message of the
          // queue goes without the hint, which flushes them all.
          hint_ = ready_count_ > 0;
          writing_ = write = true;
        } else if (end_) {
          finish = FinalStatus();
        }
      }
      if (finish) {
        finished_ = true;
        final_code_ = static_cast<absl::StatusCode>(finish->error_code());
      } else if (!end_ && !cancelled_ && !abort_) {
        // Pages in flight plus the pages' worth of contacts waiting for the caller stay within
        // the window: a slow caller stops the prefetching.
        for (;;) {
          std::optional<Pager::Request> next =
              slots_.empty() ? pager_->Next() : pager_->Ahead(static_cast<int>(slots_.size()));
          const size_t page = static_cast<size_t>(page_size_);
          const size_t buffered = (ready_count_ + page - 1) / page;
          if (!next || slots_.size() + buffered >= static_cast<size_t>(window_)) break;
          slots_.push_back(Slot{++last_slot_, *next, std::nullopt});
          PageRequest& request = fetch.emplace_back(slots_.back().id, base_).second;
          request.skip = next->skip;
          request.limit = next->limit;
        }
      }
    }
    if (write) {
      write_hand_over_.Across([this] {
        StartWrite(&wire_, hint_ ? grpc::WriteOptions().set_buffer_hint() : grpc::WriteOptions());
      });
    }
    if (finish) Finish(*finish);
    for (auto& [id, request] : fetch) {
      if (grant_.minter) request.credentials = {grant_.minter->Token(), grant_.minter->client_id()};
      refs_.fetch_add(1);
      source_.Fetch(std::move(request), cancel_, [this, slot = id](absl::StatusOr<Page> page) {
        OnPage(slot, std::move(page));
      });
    }
  }

  // Takes the answer of one slot, then accepts the answered pages at the front, in order.
  void OnPage(uint64_t slot, absl::StatusOr<Page> page) {
    {
      absl::MutexLock lock(&mu_);
      auto it = std::find_if(slots_.begin(), slots_.end(),
                             [slot](const Slot& s) { return s.id == slot; });
      if (it != slots_.end()) {
        it->answer = std::move(page);
        ++pages_;
      }
      while (!slots_.empty() && slots_.front().answer && !end_ && !cancelled_) {
        Slot front = std::move(slots_.front());
        slots_.pop_front();
        if (std::optional<Pager::Request> expected = pager_->Next();
            !expected || !(front.asked == *expected)) {
          // Prefetched for a list that then shifted: ask again from where the Pager is now.
          slots_.clear();
          break;
        }
        if (!front.answer->ok()) {
          end_ = front.answer->status();
          break;
        }
        const size_t before = ready_.size();
        absl::Status accepted = pager_->Accept(front.asked, **front.answer, &ready_);
        for (size_t i = before; i < ready_.size(); ++i) ready_count_ += ready_[i].size();
        total_results_ = pager_->total_results();
        if (pager_->list_changed() && !list_changed_) {
          list_changed_ = true;
          Log(Severity::kWarning,
              absl::StrCat("the list changed during the stream: ", pager_->change()), log_);
        }
        if (!accepted.ok()) {
          end_ = accepted;
        } else if (pager_->done()) {
          end_ = absl::OkStatus();
        }
      }
      if (end_ || cancelled_) slots_.clear();
    }
    Pump();
    Unref();
  }

  // Moves up to one batch from ready_ into wire_: the contacts' entries as the page holds them,
  // then the message's other fields (protobuf lets fields come in any order).
  void BuildResponse() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    std::vector<grpc::Slice> slices;
    std::string copied;  // small batches: one copy is cheaper than a slice per run
    size_t count = 0;
    size_t bytes = 0;
    while (!ready_.empty() && count < static_cast<size_t>(batch_size_) &&
           bytes < max_batch_bytes_) {
      ContactRun& run = ready_.front();
      size_t end = run.begin;
      while (end < run.end && count < static_cast<size_t>(batch_size_) &&
             bytes < max_batch_bytes_) {
        bytes += run.contacts.wire(end, end + 1).size();
        ++end;
        ++count;
      }
      if (std::string_view taken = run.contacts.wire(run.begin, end);
          taken.size() <= kCopyBelowBytes) {
        copied.append(taken);
      } else {
        if (!copied.empty()) slices.emplace_back(std::exchange(copied, {}));
        slices.push_back(SliceOf(run, end));
      }
      for (size_t i = end - std::min(end - run.begin, kMaxResumeIds); i < end; ++i) {
        last_ids_.emplace_back(run.contacts.id(i));
        if (last_ids_.size() > kMaxResumeIds) last_ids_.pop_front();
      }
      next_offset_ = run.next_offset(end - 1);
      run.begin = end;
      if (run.begin == run.end) ready_.pop_front();
    }
    ready_count_ -= count;
    if (delivered_ == resumed_at_) Metrics().first_message_seconds.Observe(SecondsSince(started_));
    delivered_ += static_cast<int64_t>(count);
    Metrics().contacts_streamed.Increment(count);
    StreamContactsResponse rest;
    rest.set_total_results(total_results_);
    rest.set_delivered_count(delivered_);
    rest.set_list_changed(list_changed_);
    rest.set_resume_token(ResumeToken());
    rest.AppendToString(&copied);
    slices.emplace_back(copied);
    grpc::ByteBuffer wire(slices.data(), slices.size());
    wire_.Swap(&wire);
  }

  // Resumes right after the last contact written.
  std::string ResumeToken() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return EncodeResumeToken(
        ResumePoint{next_offset_, delivered_,
                    std::vector<std::string>(last_ids_.begin(), last_ids_.end())},
        fingerprint_);
  }

  grpc::Status FinalStatus() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    absl::Status status = *end_;
    if (status.ok() || delivered_ == resumed_at_) return ToGrpcStatus(status);
    // Some contacts went out: say how to continue, and call unreadable data a loss.
    absl::StatusCode code =
        status.code() == absl::StatusCode::kInternal ? absl::StatusCode::kDataLoss : status.code();
    return ToGrpcStatus(
        absl::Status(code, absl::StrCat(status.message(), "; stopped after ", delivered_,
                                        " contacts, resume with the last resume_token received")));
  }

  ContactService& service_;
  PageSource& source_;
  grpc::CallbackServerContext* const context_;
  const absl::Time started_ = absl::Now();
  std::shared_ptr<Cancellation> cancel_ = std::make_shared<Cancellation>();
  std::atomic<int> refs_{1};

  // Set once by Start(), read-only afterwards.
  PageRequest base_;
  Grant grant_;  // when the gateway's own credentials are used
  LogContext log_;
  uint64_t fingerprint_ = 0;
  int32_t batch_size_ = 0;
  size_t max_batch_bytes_ = 0;
  int32_t window_ = 1;
  int32_t page_size_ = 1;
  int64_t resumed_at_ = 0;

  absl::Mutex mu_;
  std::optional<Pager> pager_ ABSL_GUARDED_BY(mu_);
  // Pages asked for (in flight, or answered and waiting for the pages before them), in Next()
  // order.
  struct Slot {
    uint64_t id;
    Pager::Request asked;
    std::optional<absl::StatusOr<Page>> answer;
  };
  std::deque<Slot> slots_ ABSL_GUARDED_BY(mu_);
  uint64_t last_slot_ ABSL_GUARDED_BY(mu_) = 0;
  std::deque<ContactRun> ready_ ABSL_GUARDED_BY(mu_);
  size_t ready_count_ ABSL_GUARDED_BY(mu_) = 0;           // contacts in ready_
  std::optional<absl::Status> end_ ABSL_GUARDED_BY(mu_);  // the upstream side is done
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  std::optional<absl::Status> abort_ ABSL_GUARDED_BY(mu_);    // draining: end after this write
  absl::StatusCode final_code_ = absl::StatusCode::kUnknown;  // written before Finish
  int64_t pages_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t delivered_ = 0;  // guarded by mu_ after Start()
  int64_t next_offset_ = 0;
  int64_t total_results_ = 0;
  bool list_changed_ = false;
  std::deque<std::string> last_ids_;
  bool hint_ = false;         // wire_ goes out with the buffer hint
  grpc::ByteBuffer wire_;     // the message being written, owned by gRPC while writing_
  HandOver write_hand_over_;  // StartWrite -> OnWriteDone, for TSan (server/sync.h)
};

grpc::Status ToGrpcStatus(const absl::Status& status) {
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()), std::string(status.message()));
}

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
