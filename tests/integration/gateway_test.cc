// The gateway (in-process, real gRPC server on port 0) against the real kore-sim process over TLS
// with a test CA: every id checked against kore-sim's own list.
#include <gmock/gmock.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <thread>

#include "absl/strings/str_cat.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "server/app/gateway_server.h"
#include "server/upstream/jwt.h"
#include "tests/integration/sim_suite.h"
#include "tests/integration/test_support.h"

namespace contacts::gateway {
namespace {

using ::contacts::testing::KoreSim;
using ::contacts::v1::StreamContactsRequest;
using ::contacts::v1::StreamContactsResponse;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kAppId[] = "cs-integration";
constexpr char kSecret[] = "integration-secret-7f3a9c";

class GatewayTest : public ::contacts::testing::SimSuite {
 protected:
  static void SetUpTestSuite() {
    const std::string dir = contacts::testing::TempDir();
    ASSERT_TRUE(contacts::testing::MakeTestCertificates(dir));
    sim_ = KoreSim::Start({"--app", absl::StrCat(kAppId, "=", kSecret)}, KoreSim::Tls{.dir = dir});
    ASSERT_NE(sim_, nullptr);
  }

  Config BaseConfig() {
    Config config;
    config.listen = "127.0.0.1:0";
    config.upstream.http.base_url = sim_->base_url();
    config.upstream.http.ca_file = sim_->ca_file();
    config.client_id = kAppId;
    config.client_secret = kSecret;
    config.authz.allow_unauthenticated = true;  // caller authorization: security_test.cc
    config.rate.per_minute = 0;                 // kore-sim here has no rate limit
    return config;
  }
  void StartGateway(const Config& config) {
    absl::StatusOr<std::unique_ptr<GatewayServer>> gateway = GatewayServer::Start(config);
    ASSERT_TRUE(gateway.ok()) << gateway.status();
    gateway_ = *std::move(gateway);
    stub_ = contacts::v1::ContactService::NewStub(grpc::CreateChannel(
        absl::StrCat("127.0.0.1:", gateway_->port()), grpc::InsecureChannelCredentials()));
  }
  void StartGateway() { StartGateway(BaseConfig()); }

  static StreamContactsRequest Request(const std::string& list) {
    StreamContactsRequest request;
    request.set_stream_id("st-integration");
    request.set_contact_list_id(list);
    request.set_account_id("acct-integration");
    return request;
  }

  struct Result {
    grpc::Status status;
    std::vector<std::string> ids;
    std::vector<StreamContactsResponse> messages;
  };
  Result Stream(const StreamContactsRequest& request,
                std::chrono::milliseconds timeout = std::chrono::milliseconds(60000),
                std::multimap<std::string, std::string> metadata = {}) {
    Result result;
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + timeout);
    for (auto& [k, v] : metadata) context.AddMetadata(k, v);
    auto reader = stub_->StreamContacts(&context, request);
    StreamContactsResponse response;
    while (reader->Read(&response)) {
      for (const auto& c : response.contacts()) result.ids.push_back(c.id());
      result.messages.push_back(response);
    }
    result.status = reader->Finish();
    return result;
  }

  std::unique_ptr<contacts::v1::ContactService::Stub> stub_;
};

TEST_F(GatewayTest, StreamsTwelveThousandContactsOverTlsInOrder) {
  StartGateway();
  Result result = Stream(Request("cl-sim-12345"));
  ASSERT_TRUE(result.status.ok()) << result.status.error_message();
  std::vector<std::string> expected = sim_->Ids("cl-sim-12345");
  ASSERT_EQ(expected.size(), 12345u);
  EXPECT_EQ(result.ids, expected);
  EXPECT_EQ(result.messages.back().total_results(), 12345);
  EXPECT_EQ(result.messages.back().delivered_count(), 12345);
  EXPECT_EQ(sim_->ListRequests(), 247);  // ceil(12345 / 50): every page once, no more
  EXPECT_FALSE(result.messages.back().list_changed());
}

TEST_F(GatewayTest, ContactsCarryPhoneAndTimestamps) {
  StartGateway();
  Result result = Stream(Request("cl-sim-3"));
  ASSERT_TRUE(result.status.ok()) << result.status.error_message();
  const contacts::v1::Contact& first = result.messages[0].contacts(0);
  EXPECT_THAT(first.phone_number(), ::testing::StartsWith("+1"));
  EXPECT_EQ(first.create_time().seconds(), 1704067200);  // 2024-01-01T00:00:00Z
  EXPECT_EQ(first.update_time().seconds(), 1704067200 + 86400);
}

TEST_F(GatewayTest, ResumesWithATokenEndToEnd) {
  StartGateway();
  StreamContactsRequest request = Request("cl-sim-1000");
  request.set_max_batch_size(64);
  Result first = Stream(request);
  ASSERT_TRUE(first.status.ok());
  request.set_resume_token(first.messages[5].resume_token());
  Result rest = Stream(request);
  ASSERT_TRUE(rest.status.ok()) << rest.status.error_message();
  std::vector<std::string> expected(first.ids.begin() + first.messages[5].delivered_count(),
                                    first.ids.end());
  ASSERT_GT(expected.size(), 0u);
  EXPECT_EQ(rest.ids, expected);
}

TEST_F(GatewayTest, PassThroughCredentialsReachTheUpstream) {
  Config config = BaseConfig();
  config.client_id.clear();
  config.client_secret.clear();
  StartGateway(config);
  std::string jwt = SignHs256(R"({"alg":"HS256","typ":"JWT"})",
                              R"({"sub":"caller","appId":"cs-integration"})", kSecret);
  Result ok = Stream(Request("cl-sim-120"), std::chrono::milliseconds(10000),
                     {{"auth", jwt}, {"iid", kAppId}});
  ASSERT_TRUE(ok.status.ok()) << ok.status.error_message();
  EXPECT_EQ(ok.ids, sim_->Ids("cl-sim-120"));

  std::string forged = SignHs256(R"({"alg":"HS256","typ":"JWT"})",
                                 R"({"sub":"caller","appId":"cs-integration"})", "wrong");
  Result denied = Stream(Request("cl-sim-120"), std::chrono::milliseconds(10000),
                         {{"auth", forged}, {"iid", kAppId}});
  EXPECT_EQ(denied.status.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_THAT(denied.status.error_message(), HasSubstr("Invalid JWT token"));
  EXPECT_THAT(denied.status.error_message(), Not(HasSubstr(forged)));
}

TEST_F(GatewayTest, WrongSecretIsUnauthenticatedAndNeverEchoed) {
  Config config = BaseConfig();
  config.client_secret = "not-the-secret-0d9e";
  StartGateway(config);
  Result result = Stream(Request("cl-sim-10"));
  EXPECT_EQ(result.status.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_THAT(result.status.error_message(), HasSubstr("HTTP 401"));
  EXPECT_THAT(result.status.error_message(), Not(HasSubstr("not-the-secret")));
}

TEST_F(GatewayTest, BadIdsGetInvalidArgumentNamingTheFieldAndNeverReachTheUpstream) {
  StartGateway();
  const std::string kBad[] = {"",      std::string(129, 'x'), "cl-\xff\xfe", "../x", "a/b", "%2F",
                              "a\r\nb"};
  for (const char* field : {"stream_id", "contact_list_id", "account_id"}) {
    for (const std::string& bad : kBad) {
      StreamContactsRequest request = Request("cl-sim-10");
      if (std::string(field) == "stream_id") request.set_stream_id(bad);
      if (std::string(field) == "contact_list_id") request.set_contact_list_id(bad);
      if (std::string(field) == "account_id") request.set_account_id(bad);
      Result result = Stream(request, std::chrono::milliseconds(5000));
      EXPECT_EQ(result.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT)
          << field << " " << bad;
      EXPECT_THAT(result.status.error_message(), HasSubstr(field)) << bad;
      EXPECT_TRUE(result.ids.empty());
    }
  }
  EXPECT_EQ(sim_->ListRequests(), 0);
}

TEST_F(GatewayTest, UnknownListIsNotFound) {
  StartGateway();
  Result result = Stream(Request("cl-does-not-exist"));
  EXPECT_EQ(result.status.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_THAT(result.status.error_message(), HasSubstr("Contact list not found"));
}

struct FaultCase {
  std::string fault;  // query of POST /_sim/faults
  grpc::StatusCode code;
  std::string message;
};

TEST_F(GatewayTest, MapsUpstreamFaultsOnTheFirstPage) {
  const FaultCase kCases[] = {
      {"kind=status&code=403", grpc::StatusCode::PERMISSION_DENIED, "HTTP 403"},
      {"kind=status&code=429&retry_after=5&count=-1", grpc::StatusCode::RESOURCE_EXHAUSTED,
       "HTTP 429"},
      {"kind=status&code=500&count=-1", grpc::StatusCode::UNAVAILABLE, "HTTP 500"},
      {"kind=status&code=503&count=-1", grpc::StatusCode::UNAVAILABLE, "HTTP 503"},
      {"kind=reset&count=-1", grpc::StatusCode::UNAVAILABLE, "upstream"},
      {"kind=malformed&count=-1", grpc::StatusCode::INTERNAL, "upstream page"},
      {"kind=truncate&count=-1", grpc::StatusCode::UNAVAILABLE, "truncated body"},
      {"kind=ignore-paging&after=1", grpc::StatusCode::DATA_LOSS, "ignored the paging"},
  };
  // Persistent faults: retries (two quick attempts here) cannot help, and the code says what can.
  Config config = BaseConfig();
  config.retry = RetryOptions{.max_attempts = 2,
                              .initial_backoff = absl::Milliseconds(1),
                              .max_retry_after = absl::Milliseconds(10)};
  StartGateway(config);
  for (const FaultCase& c : kCases) {
    ASSERT_EQ(sim_->Control("POST", "/_sim/reset").status, 200);
    ASSERT_EQ(sim_->Control("POST", "/_sim/faults?" + c.fault).status, 200) << c.fault;
    Result result = Stream(Request("cl-sim-500"), std::chrono::milliseconds(20000));
    EXPECT_EQ(result.status.error_code(), c.code)
        << c.fault << ": " << result.status.error_message();
    EXPECT_THAT(result.status.error_message(), HasSubstr(c.message)) << c.fault;
    if (c.code != grpc::StatusCode::PERMISSION_DENIED && c.code != grpc::StatusCode::DATA_LOSS) {
      EXPECT_THAT(result.status.error_message(), HasSubstr("gave up after 2 attempts")) << c.fault;
    }
  }
}

TEST_F(GatewayTest, RetriesATransientFaultWithoutLosingAContact) {
  StartGateway();
  ASSERT_EQ(sim_->Control("POST", "/_sim/faults?kind=status&code=503&skip=99&count=2").status, 200);
  Result result = Stream(Request("cl-sim-500"));
  ASSERT_TRUE(result.status.ok()) << result.status.error_message();
  EXPECT_EQ(result.ids, sim_->Ids("cl-sim-500"));
  EXPECT_EQ(sim_->ListRequests(), 10 + 2);
}

TEST_F(GatewayTest, MalformedPageAfterSomeContactsIsDataLossWithResumableToken) {
  Config config = BaseConfig();
  config.retry.max_attempts = 2;
  config.retry.initial_backoff = absl::Milliseconds(1);
  StartGateway(config);
  // Pages start at 0, 49, 99, ... (one contact of overlap): the third page stays unreadable.
  ASSERT_EQ(sim_->Control("POST", "/_sim/faults?kind=malformed&skip=99&count=2").status, 200);
  Result result = Stream(Request("cl-sim-500"));
  EXPECT_EQ(result.status.error_code(), grpc::StatusCode::DATA_LOSS);
  std::vector<std::string> expected = sim_->Ids("cl-sim-500");
  ASSERT_EQ(result.ids.size(), 100u);
  EXPECT_TRUE(std::equal(result.ids.begin(), result.ids.end(), expected.begin()));
  StreamContactsRequest resume = Request("cl-sim-500");
  resume.set_resume_token(result.messages.back().resume_token());
  Result rest = Stream(resume);
  ASSERT_TRUE(rest.status.ok()) << rest.status.error_message();
  EXPECT_EQ(rest.ids, std::vector<std::string>(expected.begin() + 100, expected.end()));
}

TEST_F(GatewayTest, SlowUpstreamHitsTheUpstreamTimeout) {
  Config config = BaseConfig();
  config.upstream.http.request_timeout = absl::Milliseconds(300);
  config.retry.max_attempts = 2;
  StartGateway(config);
  ASSERT_EQ(sim_->Control("POST", "/_sim/faults?kind=latency&ms=3000&count=-1").status, 200);
  Result result = Stream(Request("cl-sim-10"));
  EXPECT_EQ(result.status.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_THAT(result.status.error_message(), HasSubstr("timed out"));
}

TEST_F(GatewayTest, CallerDeadlineEndsTheCall) {
  StartGateway();
  ASSERT_EQ(sim_->Control("POST", "/_sim/faults?kind=latency&ms=3000").status, 200);
  auto start = std::chrono::steady_clock::now();
  Result result = Stream(Request("cl-sim-10"), std::chrono::milliseconds(500));
  EXPECT_EQ(result.status.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(2));
}

TEST_F(GatewayTest, CancellationStopsUpstreamRequests) {
  StartGateway();
  ASSERT_EQ(sim_->Control("POST", "/_sim/faults?kind=latency&ms=50&count=-1").status, 200);
  {
    grpc::ClientContext context;
    auto reader = stub_->StreamContacts(&context, Request("cl-sim-100000"));
    StreamContactsResponse response;
    ASSERT_TRUE(reader->Read(&response));
    context.TryCancel();
    while (reader->Read(&response)) {
    }
    EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::CANCELLED);
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  int64_t after_cancel = sim_->ListRequests();
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  EXPECT_EQ(sim_->ListRequests(), after_cancel) << "the gateway kept paging after the caller left";
  EXPECT_LT(after_cancel, 10);
}

TEST_F(GatewayTest, RefusesAnUpstreamCertificateItCannotVerify) {
  Config config = BaseConfig();
  config.upstream.http.ca_file.clear();  // system roots only: the test CA is unknown
  StartGateway(config);
  Result result = Stream(Request("cl-sim-10"));
  EXPECT_EQ(result.status.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(result.status.error_message(), HasSubstr("certificate"));
  EXPECT_THAT(result.status.error_message(), HasSubstr("--upstream-ca-file"));
  EXPECT_EQ(sim_->ListRequests(), 0);
}

TEST_F(GatewayTest, RefusesAWrongHostName) {
  Config config = BaseConfig();
  config.upstream.http.base_url =
      absl::StrCat("https://127.0.0.1:", sim_->port());  // cert: localhost
  StartGateway(config);
  Result result = Stream(Request("cl-sim-10"));
  EXPECT_EQ(result.status.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(result.status.error_message(), HasSubstr("certificate"));
  EXPECT_EQ(sim_->ListRequests(), 0);
}

grpc::health::v1::HealthCheckResponse::ServingStatus Health(int port, const std::string& service) {
  auto stub = grpc::health::v1::Health::NewStub(
      grpc::CreateChannel(absl::StrCat("127.0.0.1:", port), grpc::InsecureChannelCredentials()));
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  grpc::health::v1::HealthCheckRequest request;
  request.set_service(service);
  grpc::health::v1::HealthCheckResponse response;
  grpc::Status status = stub->Check(&context, request, &response);
  return status.ok() ? response.status() : grpc::health::v1::HealthCheckResponse::UNKNOWN;
}

TEST_F(GatewayTest, DrainLetsStreamsInFlightFinish) {
  StartGateway();
  ASSERT_EQ(Health(gateway_->port(), "contacts.v1.ContactService"),
            grpc::health::v1::HealthCheckResponse::SERVING);
  ASSERT_EQ(sim_->Control("POST", "/_sim/faults?kind=latency&ms=30&count=-1").status, 200);
  StreamContactsRequest request = Request("cl-sim-1000");  // 20 pages of 30 ms: about 0.6 s
  grpc::ClientContext context;
  auto reader = stub_->StreamContacts(&context, request);
  StreamContactsResponse response;
  ASSERT_TRUE(reader->Read(&response));
  std::vector<std::string> ids;
  for (const auto& c : response.contacts()) ids.push_back(c.id());

  int port = gateway_->port();
  absl::Time begin = absl::Now();
  std::thread drain([this] { gateway_->Shutdown(absl::Seconds(20)); });
  absl::SleepFor(absl::Milliseconds(100));
  EXPECT_NE(Health(port, ""), grpc::health::v1::HealthCheckResponse::SERVING);
  while (reader->Read(&response)) {
    for (const auto& c : response.contacts()) ids.push_back(c.id());
  }
  grpc::Status status = reader->Finish();
  drain.join();
  EXPECT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(ids, sim_->Ids("cl-sim-1000"));
  EXPECT_LT(absl::Now() - begin, absl::Seconds(10));  // returned when the stream was done
}

TEST_F(GatewayTest, DrainTurnsReadinessOffAndKeepsLivenessOn) {
  StartGateway();
  auto channel = grpc::CreateChannel(absl::StrCat("127.0.0.1:", gateway_->port()),
                                     grpc::InsecureChannelCredentials());
  auto health = grpc::health::v1::Health::NewStub(channel);
  struct Watch {
    grpc::ClientContext context;
    std::unique_ptr<grpc::ClientReader<grpc::health::v1::HealthCheckResponse>> reader;
    grpc::health::v1::HealthCheckResponse response;
  } liveness, readiness;
  for (auto [watch, service] : {std::pair{&liveness, GatewayServer::kLivenessService},
                                std::pair{&readiness, "contacts.v1.ContactService"}}) {
    grpc::health::v1::HealthCheckRequest request;
    request.set_service(service);
    watch->reader = health->Watch(&watch->context, request);
    ASSERT_TRUE(watch->reader->Read(&watch->response));
    ASSERT_EQ(watch->response.status(), grpc::health::v1::HealthCheckResponse::SERVING) << service;
  }
  ASSERT_EQ(sim_->Control("POST", "/_sim/faults?kind=latency&ms=30&count=-1").status, 200);
  grpc::ClientContext context;
  auto reader = stub_->StreamContacts(&context, Request("cl-sim-1000"));  // about 0.6 s
  StreamContactsResponse response;
  ASSERT_TRUE(reader->Read(&response));

  std::thread drain([this] { gateway_->Shutdown(absl::Seconds(20)); });
  ASSERT_TRUE(readiness.reader->Read(&readiness.response));
  EXPECT_EQ(readiness.response.status(), grpc::health::v1::HealthCheckResponse::NOT_SERVING);
  while (reader->Read(&response)) {
  }
  EXPECT_TRUE(reader->Finish().ok());
  // The stream has ended well after the drain began: liveness never changed. Ending the watches
  // lets the drain finish.
  liveness.context.TryCancel();
  EXPECT_FALSE(liveness.reader->Read(&liveness.response));
  EXPECT_EQ(liveness.response.status(), grpc::health::v1::HealthCheckResponse::SERVING);
  readiness.context.TryCancel();
  liveness.reader->Finish();
  readiness.reader->Finish();
  drain.join();
}

TEST_F(GatewayTest, MaxConcurrentStreamsHoldsFurtherCallsOnTheConnection) {
  Config config = BaseConfig();
  config.connections.max_concurrent_streams = 1;
  StartGateway(config);
  ASSERT_EQ(sim_->Control("POST", "/_sim/faults?kind=latency&ms=100&count=-1").status, 200);
  grpc::ClientContext context;
  auto reader = stub_->StreamContacts(&context, Request("cl-sim-100000"));
  StreamContactsResponse response;
  ASSERT_TRUE(reader->Read(&response));

  // The connection's only stream slot is taken: the second call waits for it until its deadline.
  Result held = Stream(Request("cl-sim-10"), std::chrono::milliseconds(1500));
  EXPECT_EQ(held.status.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED)
      << held.status.error_message();
  EXPECT_TRUE(held.ids.empty());

  context.TryCancel();
  reader->Finish();
  ASSERT_EQ(sim_->Control("POST", "/_sim/reset").status, 200);
  Result after = Stream(Request("cl-sim-10"));
  ASSERT_TRUE(after.status.ok()) << after.status.error_message();
  EXPECT_EQ(after.ids, sim_->Ids("cl-sim-10"));
}

TEST_F(GatewayTest, DrainTimeOverEndsStreamsWithUnavailableAndAResumeToken) {
  StartGateway();
  ASSERT_EQ(sim_->Control("POST", "/_sim/faults?kind=latency&ms=100&count=-1").status, 200);
  StreamContactsRequest request = Request("cl-sim-100000");
  grpc::ClientContext context;
  auto reader = stub_->StreamContacts(&context, request);
  StreamContactsResponse response, last;
  std::vector<std::string> ids;
  ASSERT_TRUE(reader->Read(&last));
  for (const auto& c : last.contacts()) ids.push_back(c.id());

  absl::Time begin = absl::Now();
  std::thread drain([this] { gateway_->Shutdown(absl::Milliseconds(500)); });
  while (reader->Read(&response)) {
    for (const auto& c : response.contacts()) ids.push_back(c.id());
    last = response;
  }
  grpc::Status status = reader->Finish();
  drain.join();
  EXPECT_LT(absl::Now() - begin, absl::Seconds(3));
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE) << status.error_message();
  EXPECT_THAT(status.error_message(), HasSubstr("shutting down"));
  auto token = context.GetServerTrailingMetadata().find("contacts-resume-token");
  ASSERT_NE(token, context.GetServerTrailingMetadata().end());
  EXPECT_EQ(std::string(token->second.data(), token->second.size()), last.resume_token());

  // A new gateway continues exactly after the last contact received.
  ASSERT_EQ(sim_->Control("POST", "/_sim/reset").status, 200);
  StartGateway();
  request.set_resume_token(last.resume_token());
  request.set_max_contacts(last.delivered_count() + 500);
  Result rest = Stream(request);
  ASSERT_TRUE(rest.status.ok()) << rest.status.error_message();
  ids.insert(ids.end(), rest.ids.begin(), rest.ids.end());
  std::vector<std::string> expected = sim_->Ids("cl-sim-100000");
  expected.resize(ids.size());
  EXPECT_EQ(ids, expected);
}

TEST_F(GatewayTest, DrainingGatewayRefusesNewStreams) {
  StartGateway();
  ASSERT_EQ(sim_->Control("POST", "/_sim/faults?kind=latency&ms=100&count=-1").status, 200);
  grpc::ClientContext context;
  auto reader = stub_->StreamContacts(&context, Request("cl-sim-100000"));
  StreamContactsResponse response;
  ASSERT_TRUE(reader->Read(&response));
  std::thread drain([this] { gateway_->Shutdown(absl::Seconds(1)); });
  absl::SleepFor(absl::Milliseconds(200));
  Result refused = Stream(Request("cl-sim-10"), std::chrono::milliseconds(3000));
  EXPECT_EQ(refused.status.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_TRUE(refused.ids.empty());
  context.TryCancel();
  reader->Finish();
  drain.join();
}

// Connection aging moves new calls to other replicas; it never cuts a call in flight (gRFC A9:
// the grace is unlimited by default). A stream ten times as long as the connection age.
TEST_F(GatewayTest, AStreamTenTimesLongerThanTheConnectionAgeCompletesInOneCall) {
  // 20 pages of 50, each answered after 600 ms, one at a time: about 12 s.
  ASSERT_EQ(sim_->Control("POST", "/_sim/faults?kind=latency&ms=600&count=-1").status, 200);
  Config config = BaseConfig();
  config.connections.max_age = absl::Seconds(1);
  config.stream.prefetch_pages = 1;
  StartGateway(config);
  const absl::Time start = absl::Now();
  Result result = Stream(Request("cl-sim-1000"));
  const absl::Duration took = absl::Now() - start;
  ASSERT_TRUE(result.status.ok()) << result.status.error_message();
  EXPECT_EQ(result.ids, sim_->Ids("cl-sim-1000"));
  EXPECT_GE(took, absl::Seconds(10));  // ten connection ages went by during the one call
}

}  // namespace
}  // namespace contacts::gateway
