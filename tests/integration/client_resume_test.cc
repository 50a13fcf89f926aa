// contacts::client::StreamContacts against a real in-process gRPC server (loopback, port 0) running
// a fake ContactService that fails calls on purpose (with the gateway's rich error details when
// asked) and checks the resume tokens it gets back.
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/support/error_details.h>
#include <gtest/gtest.h>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "client/contacts_client.h"
#include "contacts/v1/contacts.grpc.pb.h"
#include "google/rpc/error_details.pb.h"
#include "google/rpc/status.pb.h"

namespace contacts::client {
namespace {

using ::contacts::v1::ContactService;
using ::contacts::v1::StreamContactsRequest;
using ::contacts::v1::StreamContactsResponse;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr int kListSize = 1000;
constexpr int kBatchSize = 100;

std::string IdOf(int index) { return absl::StrCat("c-", index); }

// Serves contacts c-0 .. c-999 in messages of 100, each with resume token "tok-<next index>".
// Call n (0-based) follows plan[n] when there is one: after `messages` messages it ends with
// `code` (unless the list ended first); calls beyond the plan serve to the end and return OK.
// A plan's `reason` or `retry_delay` go with the failure as the gateway sends them (ErrorInfo,
// with resume_token "alt-<next index>": the same place as tok-<next index>, spelled differently;
// RetryInfo). A resume token it did not hand out is INVALID_ARGUMENT. Thread-safe: gRPC runs it on
// its threads.
class FakeContactService final : public ContactService::Service {
 public:
  struct CallPlan {
    grpc::StatusCode code = grpc::StatusCode::UNAVAILABLE;
    int messages = 0;
    bool hang = false;        // after `messages` messages, wait until the call is cancelled instead
    std::string reason = "";  // non-empty: an ErrorInfo with this reason and a resume_token
    std::optional<absl::Duration> retry_delay = std::nullopt;  // a RetryInfo
  };
  struct SeenCall {
    std::string resume_token;
    std::string auth;
    std::string iid;
    std::string authorization;
    absl::Time time;
  };

  void SetPlan(std::vector<CallPlan> plan) {
    absl::MutexLock lock(&mu_);
    plan_ = std::move(plan);
  }
  // Every call fails this way, however many there are.
  void FailEveryCall(CallPlan plan) {
    absl::MutexLock lock(&mu_);
    fail_every_call_ = plan;
  }
  // Accepts the resume tokens `other` handed out, as a restarted gateway accepts its own tokens.
  void AcceptTokensFrom(FakeContactService& other) {
    std::set<std::string> tokens;
    {
      absl::MutexLock lock(&other.mu_);
      tokens = other.issued_tokens_;
    }
    absl::MutexLock lock(&mu_);
    issued_tokens_.insert(tokens.begin(), tokens.end());
  }
  std::vector<SeenCall> calls() {
    absl::MutexLock lock(&mu_);
    return calls_;
  }

  grpc::Status StreamContacts(grpc::ServerContext* context, const StreamContactsRequest* request,
                              grpc::ServerWriter<StreamContactsResponse>* writer) override {
    std::optional<CallPlan> plan;
    int first = 0;
    {
      absl::MutexLock lock(&mu_);
      const size_t call = calls_.size();
      calls_.push_back({request->resume_token(), Metadata(*context, "auth"),
                        Metadata(*context, "iid"), Metadata(*context, "authorization"),
                        absl::Now()});
      if (fail_every_call_.has_value()) {
        plan = fail_every_call_;
      } else if (call < plan_.size()) {
        plan = plan_[call];
      }
      if (!request->resume_token().empty()) {
        if (issued_tokens_.count(request->resume_token()) == 0 ||
            !absl::SimpleAtoi(absl::string_view(request->resume_token()).substr(4), &first)) {
          return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "resume_token: not one of mine");
        }
      }
    }
    int sent = 0;
    for (int next = first; next < kListSize;) {
      if (plan.has_value() && sent == plan->messages) {
        if (!plan->hang) return Failure(*plan, next);
        while (!context->IsCancelled()) absl::SleepFor(absl::Milliseconds(5));
        return grpc::Status(grpc::StatusCode::CANCELLED, "client went away");
      }
      StreamContactsResponse response;
      for (int i = 0; i < kBatchSize && next < kListSize; ++i, ++next)
        response.add_contacts()->set_id(IdOf(next));
      response.set_resume_token(absl::StrCat("tok-", next));
      response.set_total_results(kListSize);
      response.set_delivered_count(next);
      {
        absl::MutexLock lock(&mu_);
        issued_tokens_.insert(response.resume_token());
      }
      if (!writer->Write(response))
        return grpc::Status(grpc::StatusCode::CANCELLED, "write failed");
      ++sent;
    }
    return grpc::Status::OK;
  }

 private:
  grpc::Status Failure(const CallPlan& plan, int next) {
    grpc::Status status(plan.code, "planned failure");
    if (plan.reason.empty() && !plan.retry_delay.has_value()) return status;
    google::rpc::Status rich;
    rich.set_code(plan.code);
    rich.set_message(status.error_message());
    if (!plan.reason.empty()) {
      google::rpc::ErrorInfo info;
      info.set_domain("contacts-gateway");
      info.set_reason(plan.reason);
      const std::string token = absl::StrCat("alt-", next);
      (*info.mutable_metadata())["resume_token"] = token;
      rich.add_details()->PackFrom(info);
      absl::MutexLock lock(&mu_);
      issued_tokens_.insert(token);
    }
    if (plan.retry_delay.has_value()) {
      google::rpc::RetryInfo retry;
      retry.mutable_retry_delay()->set_seconds(absl::ToInt64Seconds(*plan.retry_delay));
      retry.mutable_retry_delay()->set_nanos(
          static_cast<int32_t>(absl::ToInt64Nanoseconds(*plan.retry_delay % absl::Seconds(1))));
      rich.add_details()->PackFrom(retry);
    }
    grpc::SetErrorDetails(rich, &status);
    return status;
  }

  static std::string Metadata(const grpc::ServerContext& context, const char* key) {
    const auto& metadata = context.client_metadata();
    auto it = metadata.find(key);
    return it == metadata.end() ? "" : std::string(it->second.data(), it->second.size());
  }

  absl::Mutex mu_;
  std::vector<CallPlan> plan_ ABSL_GUARDED_BY(mu_);
  std::optional<CallPlan> fail_every_call_ ABSL_GUARDED_BY(mu_);
  std::vector<SeenCall> calls_ ABSL_GUARDED_BY(mu_);
  std::set<std::string> issued_tokens_ ABSL_GUARDED_BY(mu_);
};

class ClientResumeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server_ = StartServer(service_, 0);
    ASSERT_NE(server_, nullptr);
    ASSERT_GT(port_, 0);
    stub_ = ContactService::NewStub(
        grpc::CreateChannel(absl::StrCat("127.0.0.1:", port_), grpc::InsecureChannelCredentials()));
    options_.initial_backoff = absl::Milliseconds(1);
    options_.max_backoff = absl::Milliseconds(5);
    request_.set_stream_id("st-1");
    request_.set_contact_list_id("cl-1");
    request_.set_account_id("acc-1");
  }

  void TearDown() override {
    server_->Shutdown(absl::ToChronoTime(absl::Now() + absl::Seconds(1)));
  }

  // Starts a server for `service` on 127.0.0.1:`port` (0: any free port, stored in port_).
  std::unique_ptr<grpc::Server> StartServer(FakeContactService& service, int port) {
    grpc::ServerBuilder builder;
    builder.AddListeningPort(absl::StrCat("127.0.0.1:", port), grpc::InsecureServerCredentials(),
                             &port_);
    builder.RegisterService(&service);
    return builder.BuildAndStart();
  }

  // Streams with options_ and request_, collecting the ids received.
  StreamResult Stream() {
    return StreamContacts(*stub_, request_, options_,
                          [this](const StreamContactsResponse& response) {
                            for (const auto& contact : response.contacts())
                              ids_.push_back(contact.id());
                            return true;
                          });
  }

  static std::vector<std::string> Ids(int from, int to) {
    std::vector<std::string> ids;
    for (int i = from; i < to; ++i) ids.push_back(IdOf(i));
    return ids;
  }

  std::vector<std::string> ResumeTokensSeen() {
    std::vector<std::string> tokens;
    for (const auto& call : service_.calls()) tokens.push_back(call.resume_token);
    return tokens;
  }

  FakeContactService service_;
  int port_ = 0;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<ContactService::Stub> stub_;
  StreamOptions options_;
  StreamContactsRequest request_;
  std::vector<std::string> ids_;
};

TEST_F(ClientResumeTest, StreamsWholeListWithoutFailures) {
  StreamResult result = Stream();
  EXPECT_TRUE(result.status.ok()) << result.status.error_message();
  EXPECT_EQ(ids_, Ids(0, kListSize));
  EXPECT_EQ(result.contacts, kListSize);
  EXPECT_EQ(result.messages, kListSize / kBatchSize);
  EXPECT_EQ(result.resumes, 0);
  EXPECT_EQ(result.total_results, kListSize);
  EXPECT_EQ(result.resume_token, "tok-1000");
}

TEST_F(ClientResumeTest, ResumesAfterUnavailableWithEveryIdOnceInOrder) {
  service_.SetPlan({{grpc::StatusCode::UNAVAILABLE, 3}, {grpc::StatusCode::UNAVAILABLE, 2}});
  StreamResult result = Stream();
  EXPECT_TRUE(result.status.ok()) << result.status.error_message();
  EXPECT_EQ(ids_, Ids(0, kListSize));
  EXPECT_EQ(result.contacts, kListSize);
  EXPECT_EQ(result.messages, kListSize / kBatchSize);
  EXPECT_EQ(result.resumes, 2);
  EXPECT_THAT(ResumeTokensSeen(), ElementsAre("", "tok-300", "tok-500"));
}

TEST_F(ClientResumeTest, ResumesWhenTheServerRestartsMidStream) {
  service_.SetPlan({{grpc::StatusCode::OK, 3, /*hang=*/true}});
  FakeContactService restarted;
  std::unique_ptr<grpc::Server> old_server;
  std::vector<grpc::Status> failures;
  options_.on_resume = [&](const grpc::Status& status, int, absl::Duration) {
    failures.push_back(status);
  };
  StreamResult result =
      StreamContacts(*stub_, request_, options_, [&](const StreamContactsResponse& response) {
        for (const auto& contact : response.contacts()) ids_.push_back(contact.id());
        if (ids_.size() == 300 &&
            old_server == nullptr) {  // the gateway goes away with the call open
          old_server = std::move(server_);
          old_server->Shutdown(absl::ToChronoTime(absl::Now() + absl::Milliseconds(50)));
          restarted.AcceptTokensFrom(service_);
          server_ = StartServer(restarted, port_);
        }
        return true;
      });
  EXPECT_TRUE(result.status.ok()) << result.status.error_code() << " "
                                  << result.status.error_message();
  EXPECT_EQ(ids_, Ids(0, kListSize));
  ASSERT_EQ(failures.size(), 1u);
  EXPECT_EQ(failures[0].error_code(), grpc::StatusCode::UNAVAILABLE) << failures[0].error_message();
  ASSERT_FALSE(restarted.calls().empty());
  EXPECT_EQ(restarted.calls()[0].resume_token, "tok-300");
}

TEST_F(ClientResumeTest, ResumesAfterFailureBeforeFirstMessageWithSameToken) {
  service_.SetPlan({{grpc::StatusCode::UNAVAILABLE, 4}, {grpc::StatusCode::UNAVAILABLE, 0}});
  StreamResult result = Stream();
  EXPECT_TRUE(result.status.ok()) << result.status.error_message();
  EXPECT_EQ(ids_, Ids(0, kListSize));
  EXPECT_EQ(result.resumes, 2);
  EXPECT_THAT(ResumeTokensSeen(), ElementsAre("", "tok-400", "tok-400"));
}

TEST_F(ClientResumeTest, FirstCallStartsFromRequestResumeToken) {
  // A genuine token for position 500, from a first run stopped there.
  std::string token;
  StreamContacts(*stub_, request_, options_, [&](const StreamContactsResponse& response) {
    token = response.resume_token();
    return response.delivered_count() < 500;
  });
  ASSERT_EQ(token, "tok-500");
  ids_.clear();
  request_.set_resume_token(token);
  StreamResult result = Stream();
  EXPECT_TRUE(result.status.ok()) << result.status.error_message();
  EXPECT_EQ(ids_, Ids(500, kListSize));
  EXPECT_EQ(ResumeTokensSeen().back(), "tok-500");
}

TEST_F(ClientResumeTest, NonRetryableCodeEndsAtOnce) {
  service_.FailEveryCall({grpc::StatusCode::NOT_FOUND, 0});
  StreamResult result = Stream();
  EXPECT_EQ(result.status.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(result.status.error_message(), "planned failure");
  EXPECT_EQ(result.resumes, 0);
  EXPECT_EQ(service_.calls().size(), 1u);
  EXPECT_TRUE(ids_.empty());
}

TEST_F(ClientResumeTest, NonRetryableCodeAfterSomeContactsKeepsThemAndTheToken) {
  service_.FailEveryCall({grpc::StatusCode::DATA_LOSS, 2});
  StreamResult result = Stream();
  EXPECT_EQ(result.status.error_code(), grpc::StatusCode::DATA_LOSS);
  EXPECT_EQ(ids_, Ids(0, 200));
  EXPECT_EQ(result.contacts, 200);
  EXPECT_EQ(result.resume_token, "tok-200");
  EXPECT_EQ(service_.calls().size(), 1u);
}

TEST_F(ClientResumeTest, MaxResumesBoundsRetriesWithoutProgress) {
  service_.FailEveryCall({grpc::StatusCode::UNAVAILABLE, 0});
  options_.max_resumes = 3;
  std::vector<int> attempts;
  options_.on_resume = [&](const grpc::Status& status, int attempt, absl::Duration backoff) {
    EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE);
    EXPECT_LE(backoff, options_.max_backoff);
    attempts.push_back(attempt);
  };
  StreamResult result = Stream();
  EXPECT_EQ(result.status.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_THAT(result.status.error_message(), HasSubstr("planned failure"));
  EXPECT_THAT(result.status.error_message(), HasSubstr("3 resumes without progress"));
  EXPECT_EQ(result.resumes, 3);
  EXPECT_EQ(service_.calls().size(), 4u);
  EXPECT_THAT(attempts, ElementsAre(1, 2, 3));
}

TEST_F(ClientResumeTest, MaxResumesZeroReturnsFirstUnavailable) {
  service_.FailEveryCall({grpc::StatusCode::UNAVAILABLE, 1});
  options_.max_resumes = 0;
  StreamResult result = Stream();
  EXPECT_EQ(result.status.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(result.status.error_message(), "planned failure");
  EXPECT_EQ(result.resumes, 0);
  EXPECT_EQ(ids_, Ids(0, 100));
}

TEST_F(ClientResumeTest, ProgressResetsTheResumeCount) {
  service_.FailEveryCall({grpc::StatusCode::UNAVAILABLE, 1});  // one message per call, then fail
  options_.max_resumes = 1;
  StreamResult result = Stream();
  EXPECT_TRUE(result.status.ok()) << result.status.error_message();
  EXPECT_EQ(ids_, Ids(0, kListSize));
  EXPECT_EQ(result.resumes, kListSize / kBatchSize - 1);
}

TEST_F(ClientResumeTest, StoppingEarlyCancelsAndKeepsTheLastToken) {
  int messages = 0;
  StreamResult result =
      StreamContacts(*stub_, request_, options_, [&](const StreamContactsResponse& response) {
        for (const auto& contact : response.contacts()) ids_.push_back(contact.id());
        return ++messages < 2;
      });
  EXPECT_EQ(result.status.error_code(), grpc::StatusCode::CANCELLED);
  EXPECT_EQ(ids_, Ids(0, 200));
  EXPECT_EQ(result.messages, 2);
  EXPECT_EQ(result.resume_token, "tok-200");
  EXPECT_EQ(service_.calls().size(), 1u);
}

TEST_F(ClientResumeTest, SendsPassThroughCredentialsOnEveryCall) {
  service_.SetPlan({{grpc::StatusCode::UNAVAILABLE, 1}});
  options_.jwt = "header.payload.signature";
  options_.app_id = "cs-123";
  StreamResult result = Stream();
  ASSERT_TRUE(result.status.ok()) << result.status.error_message();
  const auto calls = service_.calls();
  ASSERT_EQ(calls.size(), 2u);
  for (const auto& call : calls) {
    EXPECT_EQ(call.auth, "header.payload.signature");
    EXPECT_EQ(call.iid, "cs-123");
  }
}

TEST_F(ClientResumeTest, NoCredentialMetadataByDefault) {
  ASSERT_TRUE(Stream().status.ok());
  EXPECT_EQ(service_.calls().at(0).auth, "");
  EXPECT_EQ(service_.calls().at(0).iid, "");
  EXPECT_EQ(service_.calls().at(0).authorization, "");
}

TEST_F(ClientResumeTest, SendsTheBearerTokenOnEveryCall) {
  service_.SetPlan({{grpc::StatusCode::UNAVAILABLE, 1}});
  options_.bearer_token = "caller-token-1f2e";
  ASSERT_TRUE(Stream().status.ok());
  const auto calls = service_.calls();
  ASSERT_EQ(calls.size(), 2u);
  for (const auto& call : calls) EXPECT_EQ(call.authorization, "Bearer caller-token-1f2e");
}

TEST_F(ClientResumeTest, MetadataThatCannotBeSentFailsBeforeAnyCallWithoutQuotingIt) {
  options_.bearer_token = "caller-token\nsecond-line";
  StreamResult result = Stream();
  EXPECT_EQ(result.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(result.status.error_message(), HasSubstr("StreamOptions.bearer_token"));
  EXPECT_THAT(result.status.error_message(), Not(HasSubstr("caller-token")));
  EXPECT_TRUE(service_.calls().empty());
}

TEST_F(ClientResumeTest, ResourceExhaustedResumesAfterTheAdvisedDelayFromErrorInfosToken) {
  service_.SetPlan({{grpc::StatusCode::RESOURCE_EXHAUSTED, 3, false, "UPSTREAM_RATE_LIMITED",
                     absl::Milliseconds(300)}});
  options_.initial_backoff = absl::Seconds(5);  // would show as a longer wait
  std::vector<absl::Duration> waits;
  options_.on_resume = [&](const grpc::Status& status, int, absl::Duration wait) {
    EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
    waits.push_back(wait);
  };
  StreamResult result = Stream();
  EXPECT_TRUE(result.status.ok()) << result.status.error_message();
  EXPECT_EQ(ids_, Ids(0, kListSize));
  EXPECT_EQ(result.resumes, 1);
  EXPECT_THAT(waits, ElementsAre(absl::Milliseconds(300)));
  EXPECT_THAT(ResumeTokensSeen(), ElementsAre("", "alt-300"));
  const auto calls = service_.calls();
  EXPECT_GE(calls[1].time - calls[0].time, absl::Milliseconds(300));
}

TEST_F(ClientResumeTest, AFinalErrorCarriesTheGatewaysReasonAndToken) {
  service_.FailEveryCall({grpc::StatusCode::DATA_LOSS, 2, false, "UPSTREAM_UNREADABLE"});
  StreamResult result = Stream();
  EXPECT_EQ(result.status.error_code(), grpc::StatusCode::DATA_LOSS);
  EXPECT_EQ(result.error_reason, "UPSTREAM_UNREADABLE");
  EXPECT_EQ(result.resume_token, "alt-200");
  EXPECT_EQ(result.resumes, 0);
}

TEST_F(ClientResumeTest, DeadlineExceededIsNotRetried) {
  service_.FailEveryCall({grpc::StatusCode::OK, 0, /*hang=*/true});  // hang before any message
  options_.deadline = absl::Milliseconds(200);
  const absl::Time start = absl::Now();
  StreamResult result = Stream();
  EXPECT_EQ(result.status.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
  EXPECT_EQ(result.resumes, 0);
  EXPECT_LE(service_.calls().size(), 1u);  // 0 when a loaded machine spends the 200 ms connecting
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));
}

TEST_F(ClientResumeTest, UnknownResumeTokenIsInvalidArgument) {
  request_.set_resume_token("tok-forged");
  StreamResult result = Stream();
  EXPECT_EQ(result.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(result.resume_token, "tok-forged");
  EXPECT_EQ(result.resumes, 0);
}

}  // namespace
}  // namespace contacts::client
