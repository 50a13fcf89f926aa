// ContactService's reactor through a real gRPC channel on port 0, with a scripted PageSource.
#include "server/service/contact_service.h"

#include <gmock/gmock.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <condition_variable>
#include <deque>
#include <mutex>
#include <optional>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "google/rpc/error_details.pb.h"
#include "google/rpc/status.pb.h"
#include "server/core/error_reason.h"
#include "server/stream/local_page_size_memory.h"
#include "tests/unit/fake_page_source.h"

namespace contacts::gateway {
namespace {

using ::contacts::v1::StreamContactsRequest;
using ::contacts::v1::StreamContactsResponse;
using ::testing::HasSubstr;

class ContactServiceTest : public ::testing::Test {
 protected:
  void StartServer(int64_t list_size, size_t phone_bytes = 12, bool with_minter = true) {
    source_ = std::make_unique<FakePageSource>(list_size, phone_bytes);
    if (with_minter) {
      credentials_ = *CredentialStore::Create({.default_app = {"cs-test", "secret"}});
      authorizer_ =
          std::make_unique<Authorizer>(*credentials_, AuthzOptions{.allow_unauthenticated = true});
    }
    service_ = std::make_unique<ContactService>(*source_, authorizer_.get(), options_, page_sizes_);
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
    builder.RegisterService(service_.get());
    server_ = builder.BuildAndStart();
    ASSERT_NE(port, 0);
    stub_ = contacts::v1::ContactService::NewStub(
        grpc::CreateChannel(absl::StrCat("127.0.0.1:", port), grpc::InsecureChannelCredentials()));
  }
  void TearDown() override {
    if (server_) server_->Shutdown(std::chrono::system_clock::now());
  }

  static StreamContactsRequest Request() {
    StreamContactsRequest request;
    request.set_stream_id("st-1");
    request.set_contact_list_id("cl-1");
    request.set_account_id("acct-1");
    return request;
  }

  // Reads a whole stream; returns its status and fills ids and the messages' resume tokens.
  grpc::Status ReadAll(const StreamContactsRequest& request, std::vector<std::string>* ids,
                       std::vector<StreamContactsResponse>* messages = nullptr,
                       std::multimap<std::string, std::string> metadata = {}) {
    grpc::ClientContext context;
    for (auto& [k, v] : metadata) context.AddMetadata(k, v);
    auto reader = stub_->StreamContacts(&context, request);
    StreamContactsResponse response;
    while (reader->Read(&response)) {
      for (const auto& c : response.contacts()) ids->push_back(c.id());
      if (messages) messages->push_back(response);
    }
    return reader->Finish();
  }

  StreamOptions options_{.default_page_size = 50, .default_batch_size = 100};
  PageSizeMemory* page_sizes_ = nullptr;
  std::unique_ptr<FakePageSource> source_;
  std::unique_ptr<CredentialStore> credentials_;
  std::unique_ptr<Authorizer> authorizer_;
  std::unique_ptr<ContactService> service_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<contacts::v1::ContactService::Stub> stub_;
};

std::vector<std::string> Range(int64_t from, int64_t to) {
  std::vector<std::string> ids;
  for (int64_t i = from; i < to; ++i) ids.push_back(absl::StrCat("c", i));
  return ids;
}

TEST_F(ContactServiceTest, StreamsWholeListInOrderInBatches) {
  StartServer(1234);
  std::vector<std::string> ids;
  std::vector<StreamContactsResponse> messages;
  grpc::Status status = ReadAll(Request(), &ids, &messages);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(ids, Range(0, 1234));
  int64_t running = 0;
  for (const auto& m : messages) {
    EXPECT_GT(m.contacts_size(), 0);
    EXPECT_LE(m.contacts_size(), 100);
    running += m.contacts_size();
    EXPECT_EQ(m.delivered_count(), running);
    EXPECT_EQ(m.total_results(), 1234);
    EXPECT_FALSE(m.resume_token().empty());
  }
  EXPECT_EQ(source_->requests().size(), 25u);  // ceil(1234 / 50)
  EXPECT_EQ(source_->requests()[0].credentials.app_id, "cs-test");
}

// Small messages are written with gRPC's buffer hint while more contacts are ready; the last one
// ready must go without it, or the caller would wait for the next page to get it.
TEST_F(ContactServiceTest, SendsEveryContactReadyWithoutWaitingForTheNextPage) {
  StartServer(100);
  source_->HoldFrom(50 - 1);  // the second page (with its one contact of seam overlap)
  StreamContactsRequest request = Request();
  request.set_max_batch_size(1);
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
  auto reader = stub_->StreamContacts(&context, request);
  std::vector<std::string> ids;
  StreamContactsResponse response;
  while (ids.size() < 50 && reader->Read(&response)) {
    ASSERT_EQ(response.contacts_size(), 1);
    ids.push_back(response.contacts(0).id());
  }
  EXPECT_EQ(ids, Range(0, 50));  // all of the first page, while the second is held
  source_->Release();
  while (reader->Read(&response)) ids.push_back(response.contacts(0).id());
  ASSERT_TRUE(reader->Finish().ok());
  EXPECT_EQ(ids, Range(0, 100));
}

TEST_F(ContactServiceTest, HonoursPageAndBatchSizeFromTheRequest) {
  StartServer(100);
  StreamContactsRequest request = Request();
  request.set_page_size(30);
  request.set_max_batch_size(7);
  std::vector<std::string> ids;
  std::vector<StreamContactsResponse> messages;
  ASSERT_TRUE(ReadAll(request, &ids, &messages).ok());
  EXPECT_EQ(ids, Range(0, 100));
  for (const auto& m : messages) EXPECT_LE(m.contacts_size(), 7);
  EXPECT_EQ(source_->requests()[1].skip, 29);  // one contact of overlap checks the seam
  EXPECT_EQ(source_->requests()[1].limit, 31);
}

// A message joins runs of several pages: runs under 4 KiB are copied into one slice with what
// follows them, larger ones are referenced. With contacts of ~410 bytes (a run of 10 is over
// 4 KiB) and pages of 50, once the caller's pauses let pages wait ready, batches of 57 start at
// page offsets 0, 7, ..., 42 (a copied run, then a referenced one) and batches of 13 hold two
// copied runs (e.g. 41-49 and 0-3). Whatever the timing, every contact arrives whole and in order.
TEST_F(ContactServiceTest, MessagesJoinCopiedAndReferencedRunsInOrder) {
  StartServer(2000, /*phone_bytes=*/400);
  for (int batch : {57, 13}) {
    StreamContactsRequest request = Request();
    request.set_page_size(50);
    request.set_max_batch_size(batch);
    grpc::ClientContext context;
    auto reader = stub_->StreamContacts(&context, request);
    std::this_thread::sleep_for(std::chrono::milliseconds(100));  // pages get ready meanwhile
    std::vector<std::string> ids;
    StreamContactsResponse m;
    while (reader->Read(&m)) {
      ASSERT_GT(m.contacts_size(), 0);
      ASSERT_LE(m.contacts_size(), batch);
      for (const auto& c : m.contacts()) {
        ids.push_back(c.id());
        ASSERT_EQ(c.phone_number(), std::string(400, '5')) << c.id();
      }
      EXPECT_EQ(m.delivered_count(), static_cast<int64_t>(ids.size()));
      EXPECT_EQ(m.total_results(), 2000);
      std::this_thread::sleep_for(std::chrono::microseconds(500));
    }
    ASSERT_TRUE(reader->Finish().ok());
    EXPECT_EQ(ids, Range(0, 2000)) << "batch " << batch;
  }
}

TEST_F(ContactServiceTest, ResumeTokenOfAnyMessageContinuesExactly) {
  StartServer(777);
  std::vector<std::string> ids;
  std::vector<StreamContactsResponse> messages;
  ASSERT_TRUE(ReadAll(Request(), &ids, &messages).ok());
  for (size_t m : {size_t{0}, size_t{3}, messages.size() - 2}) {
    StreamContactsRequest request = Request();
    request.set_resume_token(messages[m].resume_token());
    std::vector<std::string> rest;
    ASSERT_TRUE(ReadAll(request, &rest).ok());
    int64_t done = messages[m].delivered_count();
    EXPECT_EQ(rest, Range(done, 777)) << "resumed after message " << m;
  }
}

TEST_F(ContactServiceTest, MaxContactsCountsAcrossResumes) {
  StartServer(500);
  StreamContactsRequest request = Request();
  request.set_max_contacts(250);
  std::vector<std::string> ids;
  std::vector<StreamContactsResponse> messages;
  ASSERT_TRUE(ReadAll(request, &ids, &messages).ok());
  EXPECT_EQ(ids, Range(0, 250));
  request.set_max_contacts(300);
  request.set_resume_token(messages.back().resume_token());
  std::vector<std::string> rest;
  ASSERT_TRUE(ReadAll(request, &rest).ok());
  EXPECT_EQ(rest, Range(250, 300));
}

TEST_F(ContactServiceTest, UnreadableDataAfterSomeContactsIsDataLoss) {
  StartServer(1000);
  source_->FailAt(99, absl::InternalError("upstream page: not valid JSON"));  // the third page
  std::vector<std::string> ids;
  std::vector<StreamContactsResponse> messages;
  grpc::Status status = ReadAll(Request(), &ids, &messages);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::DATA_LOSS);
  EXPECT_THAT(status.error_message(), HasSubstr("not valid JSON"));
  EXPECT_THAT(status.error_message(), HasSubstr("resume"));
  EXPECT_EQ(ids, Range(0, 100));
  EXPECT_EQ(messages.back().delivered_count(), 100);
}

TEST_F(ContactServiceTest, UpstreamErrorBeforeAnyContactKeepsItsCode) {
  StartServer(1000);
  source_->FailAt(0, absl::NotFoundError("upstream answered HTTP 404: Contact list not found"));
  std::vector<std::string> ids;
  grpc::Status status = ReadAll(Request(), &ids);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_THAT(status.error_message(), HasSubstr("Contact list not found"));
  EXPECT_TRUE(ids.empty());
}

TEST_F(ContactServiceTest, InvalidRequestNeverReachesTheUpstream) {
  StartServer(10);
  StreamContactsRequest request = Request();
  request.set_contact_list_id("../admin");
  std::vector<std::string> ids;
  grpc::Status status = ReadAll(request, &ids);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("contact_list_id"));
  request = Request();
  request.set_resume_token("tampered");
  status = ReadAll(request, &ids);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("resume_token"));
  EXPECT_TRUE(source_->requests().empty());
}

TEST_F(ContactServiceTest, WithoutCredentialsIsUnauthenticated) {
  StartServer(10, 12, /*with_minter=*/false);
  std::vector<std::string> ids;
  grpc::Status status = ReadAll(Request(), &ids);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_THAT(status.error_message(), HasSubstr("'auth'"));
  EXPECT_TRUE(source_->requests().empty());
}

TEST_F(ContactServiceTest, PassesCallerCredentialsThrough) {
  StartServer(10, 12, /*with_minter=*/false);
  std::vector<std::string> ids;
  ASSERT_TRUE(
      ReadAll(Request(), &ids, nullptr, {{"auth", "caller.jwt.value"}, {"iid", "cs-caller"}}).ok());
  EXPECT_EQ(ids.size(), 10u);
  ASSERT_EQ(source_->requests().size(), 1u);
  EXPECT_EQ(source_->requests()[0].credentials.jwt, "caller.jwt.value");
  EXPECT_EQ(source_->requests()[0].credentials.app_id, "cs-caller");

  grpc::Status status = ReadAll(Request(), &ids, nullptr, {{"auth", "caller.jwt.value"}});
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("'iid'"));
}

TEST_F(ContactServiceTest, SlowCallerBoundsUpstreamFetching) {
  // 2,000 pages of ~50 KB: a caller that stops reading must stop the paging soon after the
  // transport's flow-control windows are full, not let the gateway buffer the list.
  StartServer(100000, 1000);
  grpc::ClientContext context;
  auto reader = stub_->StreamContacts(&context, Request());
  StreamContactsResponse response;
  ASSERT_TRUE(reader->Read(&response));
  std::this_thread::sleep_for(std::chrono::seconds(1));
  size_t after_stall = source_->requests().size();
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  EXPECT_EQ(source_->requests().size(), after_stall) << "still fetching while the caller stalls";
  EXPECT_LT(after_stall, 200u);
  context.TryCancel();
  reader->Finish();
}

TEST_F(ContactServiceTest, CancellationStopsUpstreamFetching) {
  StartServer(1000000);
  {
    grpc::ClientContext context;
    auto reader = stub_->StreamContacts(&context, Request());
    StreamContactsResponse response;
    ASSERT_TRUE(reader->Read(&response));
    context.TryCancel();
    while (reader->Read(&response)) {
    }
    EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::CANCELLED);
  }
  // Pages already asked for may still arrive; wait (up to 10 s) until no new request is seen for
  // 300 ms, then the count must stay still. The list has 20,000 pages of 50.
  size_t after_cancel = source_->requests().size();
  for (int i = 0; i < 33; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    size_t now = source_->requests().size();
    if (now == after_cancel) break;
    after_cancel = now;
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_EQ(source_->requests().size(), after_cancel);
  EXPECT_LT(after_cancel, 2000u) << "fetching went on long after the cancellation";
}

TEST_F(ContactServiceTest, CallerDeadlineReachesTheUpstreamRequest) {
  StartServer(10);
  grpc::ClientContext context;
  auto deadline = std::chrono::system_clock::now() + std::chrono::seconds(30);
  context.set_deadline(deadline);
  auto reader = stub_->StreamContacts(&context, Request());
  StreamContactsResponse response;
  while (reader->Read(&response)) {
  }
  ASSERT_TRUE(reader->Finish().ok());
  absl::Duration skew = absl::FromChrono(deadline) - source_->requests()[0].deadline;
  EXPECT_LT(absl::AbsDuration(skew), absl::Seconds(1));
}

// The google.rpc.Status details of a failed call (grpc-status-details-bin).
struct Details {
  std::optional<google::rpc::ErrorInfo> info;
  std::optional<google::rpc::RetryInfo> retry;
  std::optional<google::rpc::BadRequest> bad_request;
};
Details DetailsOf(const grpc::Status& status) {
  Details out;
  google::rpc::Status rich;
  EXPECT_TRUE(rich.ParseFromString(status.error_details())) << "no google.rpc.Status details";
  EXPECT_EQ(rich.code(), static_cast<int>(status.error_code()));
  for (const google::protobuf::Any& any : rich.details()) {
    if (google::rpc::ErrorInfo info; any.UnpackTo(&info)) out.info = info;
    if (google::rpc::RetryInfo retry; any.UnpackTo(&retry)) out.retry = retry;
    if (google::rpc::BadRequest bad; any.UnpackTo(&bad)) out.bad_request = bad;
  }
  return out;
}

TEST_F(ContactServiceTest, ABadFieldIsNamedInBadRequestAndErrorInfo) {
  StartServer(10);
  StreamContactsRequest request = Request();
  request.set_contact_list_id("../admin");
  std::vector<std::string> ids;
  grpc::Status status = ReadAll(request, &ids);
  ASSERT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  Details details = DetailsOf(status);
  ASSERT_TRUE(details.info.has_value());
  EXPECT_EQ(details.info->reason(), "INVALID_REQUEST");
  EXPECT_EQ(details.info->domain(), "contacts-gateway");
  EXPECT_FALSE(details.info->metadata().contains("resume_token"));
  ASSERT_TRUE(details.bad_request.has_value());
  ASSERT_EQ(details.bad_request->field_violations_size(), 1);
  EXPECT_EQ(details.bad_request->field_violations(0).field(), "contact_list_id");
  EXPECT_FALSE(details.retry.has_value());
  request = Request();
  request.set_resume_token("tampered");
  details = DetailsOf(ReadAll(request, &ids));
  EXPECT_EQ(details.info->reason(), "INVALID_RESUME_TOKEN");
  EXPECT_EQ(details.bad_request->field_violations(0).field(), "resume_token");
}

TEST_F(ContactServiceTest, UnavailableAfterContactsCarriesTheResumeTokenAndWhenToRetry) {
  StartServer(1000);
  source_->FailAt(99, WithReason(absl::UnavailableError("upstream answered HTTP 503"),
                                 reason::kUpstreamUnavailable));
  std::vector<std::string> ids;
  std::vector<StreamContactsResponse> messages;
  grpc::Status status = ReadAll(Request(), &ids, &messages);
  ASSERT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE);
  ASSERT_FALSE(messages.empty());
  Details details = DetailsOf(status);
  ASSERT_TRUE(details.info.has_value());
  EXPECT_EQ(details.info->reason(), "UPSTREAM_UNAVAILABLE");
  EXPECT_EQ(details.info->metadata().at("resume_token"), messages.back().resume_token());
  ASSERT_TRUE(details.retry.has_value());
  EXPECT_GT(details.retry->retry_delay().seconds() + details.retry->retry_delay().nanos(), 0);
}

TEST_F(ContactServiceTest, TheUpstreamsRetryAfterBecomesRetryInfo) {
  StartServer(1000);
  source_->Script({{WithReason(absl::ResourceExhaustedError("upstream answered HTTP 429"),
                               reason::kUpstreamRateLimited),
                    {.throttled = true, .retry_after = absl::Seconds(42)}}});
  std::vector<std::string> ids;
  grpc::Status status = ReadAll(Request(), &ids);
  ASSERT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  Details details = DetailsOf(status);
  EXPECT_EQ(details.info->reason(), "UPSTREAM_RATE_LIMITED");
  EXPECT_FALSE(details.info->metadata().contains("resume_token"));  // nothing went out
  ASSERT_TRUE(details.retry.has_value());
  EXPECT_EQ(details.retry->retry_delay().seconds(), 42);
}

TEST_F(ContactServiceTest, ACallerRefusalNamesTheCaller) {
  StartServer(10, 12, /*with_minter=*/false);
  std::vector<std::string> ids;
  grpc::Status status = ReadAll(Request(), &ids);
  ASSERT_EQ(status.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(DetailsOf(status).info->reason(), "CALLER_UNAUTHENTICATED");
}

// A stream without a page size asks for --max-page-size; a 400 refusing it is not the caller's
// error, the stream goes on with the size the upstream named, and the account's next stream asks
// for that size at once.
TEST_F(ContactServiceTest, RemembersTheLargestPageTheUpstreamServesForTheAccountsNextStream) {
  LocalPageSizeMemory memory;
  options_.default_page_size = 0;
  page_sizes_ = &memory;
  StartServer(250);
  source_->Script(
      {{absl::InvalidArgumentError("upstream answered HTTP 400: limit must be between 1 "
                                   "and 100"),
        {},
        LimitRefusal{.names_limit = true, .allowed = 100}}});
  std::vector<std::string> ids;
  ASSERT_TRUE(ReadAll(Request(), &ids).ok());
  EXPECT_EQ(ids, Range(0, 250));
  std::vector<PageRequest> first = source_->requests();
  ASSERT_GE(first.size(), 2u);
  EXPECT_EQ(first[0].limit, 1000);
  EXPECT_EQ(first[1].skip, 0);
  EXPECT_EQ(first[1].limit, 100);
  EXPECT_TRUE(first[1].first_page);  // asked again, still the stream's first page
  EXPECT_EQ(memory.Peek("acct-1"), 100);

  ids.clear();
  ASSERT_TRUE(ReadAll(Request(), &ids).ok());
  EXPECT_EQ(ids, Range(0, 250));
  std::vector<PageRequest> second = source_->requests();
  second.erase(second.begin(), second.begin() + static_cast<ptrdiff_t>(first.size()));
  ASSERT_EQ(second.size(), 3u);  // 100 + 99 + 99 >= 250
  for (const PageRequest& request : second) EXPECT_EQ(request.limit, 100);
}

// A PageSizeMemory that answers Recall when the test says so, as a shared store answers later on
// a thread of its own.
class HeldPageSizeMemory final : public PageSizeMemory {
 public:
  void Recall(std::string_view, Callback done) override {
    std::lock_guard<std::mutex> lock(mu_);
    held_.push_back(std::move(done));
    wake_.notify_all();
  }
  bool Learn(std::string_view, int32_t) override { return false; }
  // Waits (up to 10 s) until a Recall is held; false on timeout.
  bool WaitHeld() {
    std::unique_lock<std::mutex> lock(mu_);
    return wake_.wait_for(lock, std::chrono::seconds(10), [&] { return !held_.empty(); });
  }
  // Answers the oldest Recall held with `size`, on the calling thread.
  bool Answer(std::optional<int32_t> size) {
    Callback done;
    {
      if (!WaitHeld()) return false;
      std::lock_guard<std::mutex> lock(mu_);
      done = std::move(held_.front());
      held_.pop_front();
    }
    std::move(done)(size);
    return true;
  }

 private:
  std::mutex mu_;
  std::condition_variable wake_;
  std::deque<Callback> held_;
};

TEST_F(ContactServiceTest, AStreamWaitsForTheMemoryAndACallCancelledMeanwhileNeverFetches) {
  HeldPageSizeMemory memory;
  options_.default_page_size = 0;
  page_sizes_ = &memory;
  StartServer(30);
  std::vector<std::string> ids;
  grpc::Status status;
  std::thread caller([&] { status = ReadAll(Request(), &ids); });
  ASSERT_TRUE(memory.Answer(20));
  caller.join();
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(ids, Range(0, 30));
  ASSERT_EQ(source_->requests().size(), 2u);
  EXPECT_EQ(source_->requests()[0].limit, 20);  // the remembered size, at once

  grpc::ClientContext context;
  auto reader = stub_->StreamContacts(&context, Request());
  ASSERT_TRUE(memory.WaitHeld());  // the call is in, waiting for the memory
  context.TryCancel();
  StreamContactsResponse response;
  EXPECT_FALSE(reader->Read(&response));
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::CANCELLED);
  const absl::Time give_up = absl::Now() + absl::Seconds(10);
  while (service_->active_streams() > 0 && absl::Now() < give_up) {
    absl::SleepFor(absl::Milliseconds(5));
  }
  ASSERT_EQ(service_->active_streams(), 0u);
  ASSERT_TRUE(memory.Answer(std::nullopt));  // after the call ended: nothing is fetched
  EXPECT_EQ(source_->requests().size(), 2u);
}

}  // namespace
}  // namespace contacts::gateway
