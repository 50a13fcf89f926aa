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
    service_ = std::make_unique<ContactService>(
        *source_, authorizer_.get(),
        StreamOptions{.default_page_size = 50, .default_batch_size = 100});
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

}  // namespace
}  // namespace contacts::gateway
