// One caller cannot spend another account's budget, and resume tokens cannot be forged: in-process
// gateways in front of the real kore-sim process. A JWT the upstream refused reaches it once while
// the account's own caller goes on; pass-through callers are limited and, when callers are listed,
// authenticated; resume tokens are good only with the keys that signed them.
#include <gmock/gmock.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <openssl/sha.h>

#include <iostream>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "server/app/gateway_server.h"
#include "server/core/encoding.h"
#include "server/upstream/jwt.h"
#include "tests/integration/sim_suite.h"
#include "tests/integration/test_support.h"

namespace contacts::gateway {
namespace {

using ::contacts::testing::KoreSim;
using ::contacts::testing::Sha256Hex;
using ::contacts::testing::WriteAtomically;
using ::contacts::v1::StreamContactsRequest;
using ::contacts::v1::StreamContactsResponse;
using ::testing::HasSubstr;

constexpr char kApp[] = "cs-tenant";
constexpr char kSecret[] = "tenant-secret-6c1e";
constexpr char kToken[] = "caller-token-tenant-a-81d2";  // caller svc-a, account acct-a
constexpr char kKeyA[] = "tenancy-test-key-a-0123456789abcdef";
constexpr char kKeyB[] = "tenancy-test-key-b-fedcba9876543210";

// An HS256 JWT for kApp: `secret` kSecret makes one kore-sim accepts.
std::string Jwt(const std::string& secret, const std::string& subject) {
  return SignHs256(R"({"alg":"HS256","typ":"JWT"})",
                   absl::StrCat(R"({"sub":")", subject, R"(","appId":")", kApp, R"("})"), secret);
}

class TenancyTest : public ::contacts::testing::SimSuite {
 protected:
  static void SetUpTestSuite() {
    sim_ = KoreSim::Start({"--app", absl::StrCat(kApp, "=", kSecret)});
    ASSERT_NE(sim_, nullptr);
  }

  // A gateway holding no credentials: every caller brings its own JWT.
  static Config PassThroughConfig() {
    Config config;
    config.listen = "127.0.0.1:0";
    config.upstream.http.base_url = sim_->base_url();
    config.upstream.http.allow_plain_http = true;
    config.rate.per_minute = 0;
    return config;
  }
  // Starts one more gateway; it stops with the test.
  GatewayServer* Start(const Config& config) {
    absl::StatusOr<std::unique_ptr<GatewayServer>> gateway = GatewayServer::Start(config);
    EXPECT_TRUE(gateway.ok()) << gateway.status();
    if (!gateway.ok()) return nullptr;
    gateways_.push_back(*std::move(gateway));
    return gateways_.back().get();
  }
  void TearDown() override {
    for (auto& gateway : gateways_) gateway->Shutdown(absl::ZeroDuration());
  }
  static std::unique_ptr<contacts::v1::ContactService::Stub> Stub(const GatewayServer& gateway) {
    return contacts::v1::ContactService::NewStub(grpc::CreateChannel(
        absl::StrCat("127.0.0.1:", gateway.port()), grpc::InsecureChannelCredentials()));
  }
  static StreamContactsRequest Request(const std::string& stream_id, const std::string& list,
                                       const std::string& account = "acct-a") {
    StreamContactsRequest request;
    request.set_stream_id(stream_id);
    request.set_contact_list_id(list);
    request.set_account_id(account);
    return request;
  }

  struct Call {
    std::multimap<std::string, std::string> metadata;  // e.g. auth, iid, authorization
  };
  struct Result {
    grpc::Status status;
    std::vector<std::string> ids;
    std::vector<std::string> tokens;                          // each message's resume_token
    absl::Duration first_message = absl::InfiniteDuration();  // from the call's start
  };
  static Result Stream(contacts::v1::ContactService::Stub& stub,
                       const StreamContactsRequest& request, const Call& call) {
    Result result;
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(30)));
    for (const auto& [key, value] : call.metadata) context.AddMetadata(key, value);
    const absl::Time start = absl::Now();
    auto reader = stub.StreamContacts(&context, request);
    StreamContactsResponse response;
    while (reader->Read(&response)) {
      if (result.tokens.empty()) result.first_message = absl::Now() - start;
      for (const auto& c : response.contacts()) result.ids.push_back(c.id());
      result.tokens.push_back(response.resume_token());
    }
    result.status = reader->Finish();
    return result;
  }
  static Call PassThrough(const std::string& jwt) { return {{{"auth", jwt}, {"iid", kApp}}}; }

  static std::shared_ptr<const ResumeTokenKeys> Keys(std::vector<std::string> keys) {
    absl::StatusOr<std::shared_ptr<const ResumeTokenKeys>> made =
        ResumeTokenKeys::Create(std::move(keys));
    EXPECT_TRUE(made.ok()) << made.status();
    return *made;
  }

  std::vector<std::unique_ptr<GatewayServer>> gateways_;
};

TEST_F(TenancyTest, ARejectedJwtReachesTheUpstreamOnceWhileTheAccountsCallerGoesOn) {
  Config config = PassThroughConfig();
  config.rate.per_minute = 60;  // Kore.ai's budget: one request a second per account
  GatewayServer* gateway = Start(config);
  ASSERT_NE(gateway, nullptr);
  auto stub = Stub(*gateway);
  const std::string made_up = Jwt("not-the-secret", "outsider");

  // 30 streams with one made-up JWT for acct-a, all at once.
  std::vector<Result> rejected(30);
  std::vector<std::thread> threads;
  for (size_t i = 0; i < rejected.size(); ++i) {
    threads.emplace_back([&, i] {
      rejected[i] = Stream(*stub, Request(absl::StrCat("st-outsider-", i), "cl-sim-50"),
                           PassThrough(made_up));
    });
  }
  // Meanwhile the account's own caller starts a stream of its own.
  Result legit = Stream(*stub, Request("st-legit", "cl-sim-50"), PassThrough(Jwt(kSecret, "app")));
  for (std::thread& thread : threads) thread.join();

  ASSERT_TRUE(legit.status.ok()) << legit.status.error_message();
  EXPECT_EQ(legit.ids, sim_->Ids("cl-sim-50"));
  std::cout << "the account's caller got its first message after "
            << absl::FormatDuration(legit.first_message) << std::endl;
  EXPECT_LT(legit.first_message, absl::Seconds(3));  // the next request of the budget, ~1 s
  for (const Result& result : rejected) {
    EXPECT_EQ(result.status.error_code(), grpc::StatusCode::UNAUTHENTICATED);
    EXPECT_EQ(result.status.error_message(), rejected[0].status.error_message());
    EXPECT_TRUE(result.ids.empty());
  }
  EXPECT_THAT(rejected[0].status.error_message(), HasSubstr("upstream answered HTTP 401"));
  std::string stats = sim_->Stats();
  EXPECT_EQ(KoreSim::StatsNumber(stats, "401", 0), 1) << stats;  // kore-sim's own count
  EXPECT_EQ(KoreSim::StatsNumber(stats, "200", 0), 1) << stats;

  // A changed JWT is tried again.
  Result other =
      Stream(*stub, Request("st-outsider-new", "cl-sim-50"), PassThrough(Jwt("other", "outsider")));
  EXPECT_EQ(other.status.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  stats = sim_->Stats();
  EXPECT_EQ(KoreSim::StatsNumber(stats, "401", 0), 2) << stats;
}

TEST_F(TenancyTest, PerCallerStreamLimitsHoldForPassThroughCallers) {
  Config config = PassThroughConfig();
  config.authz.max_streams_per_caller = 2;
  GatewayServer* gateway = Start(config);
  ASSERT_NE(gateway, nullptr);
  auto stub = Stub(*gateway);
  const std::string jwt = Jwt(kSecret, "busy-caller");

  // Two streams that stay open: each read one message of a long list, then wait.
  StreamContactsRequest long_list = Request("st-busy", "cl-sim-20000");
  long_list.set_max_batch_size(10);
  std::vector<std::unique_ptr<grpc::ClientContext>> contexts;
  std::vector<std::unique_ptr<grpc::ClientReader<StreamContactsResponse>>> open;
  for (int i = 0; i < 2; ++i) {
    contexts.push_back(std::make_unique<grpc::ClientContext>());
    contexts.back()->AddMetadata("auth", jwt);
    contexts.back()->AddMetadata("iid", kApp);
    open.push_back(stub->StreamContacts(contexts.back().get(), long_list));
    StreamContactsResponse first;
    ASSERT_TRUE(open.back()->Read(&first));
  }
  Result third = Stream(*stub, Request("st-busy-3", "cl-sim-10"), PassThrough(jwt));
  EXPECT_EQ(third.status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_THAT(third.status.error_message(), HasSubstr("already has 2 streams open"));
  EXPECT_THAT(third.status.error_message(), HasSubstr("caller jwt:"));
  EXPECT_THAT(third.status.error_message(), ::testing::Not(HasSubstr(jwt)));
  // Another caller (another JWT of the same app) is not held back.
  Result other = Stream(*stub, Request("st-other", "cl-sim-10"), PassThrough(Jwt(kSecret, "b")));
  ASSERT_TRUE(other.status.ok()) << other.status.error_message();
  EXPECT_EQ(other.ids.size(), 10u);

  for (auto& context : contexts) context->TryCancel();
  for (auto& reader : open) {
    StreamContactsResponse drained;
    while (reader->Read(&drained)) {
    }
    reader->Finish();
  }
  // The slots are given back when the streams end.
  Result again;
  for (int i = 0; i < 100; ++i) {
    again = Stream(*stub, Request("st-busy-4", "cl-sim-10"), PassThrough(jwt));
    if (again.status.ok()) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_TRUE(again.status.ok()) << again.status.error_message();
}

TEST_F(TenancyTest, ListedCallersMakeThePassThroughOnesAuthenticateBeforeAnyUpstreamRequest) {
  Config config = PassThroughConfig();
  config.credentials_file = contacts::testing::TempDir() + "/callers.json";
  WriteAtomically(config.credentials_file,
                  absl::StrCat(R"({"callers": [{"name": "svc-a", "token_sha256": ")",
                               Sha256Hex(kToken), R"(", "accounts": ["acct-a"]}]})"));
  GatewayServer* gateway = Start(config);  // --pass-through-requires-auth auto
  ASSERT_NE(gateway, nullptr);
  auto stub = Stub(*gateway);
  const std::string jwt = Jwt(kSecret, "app");

  Result anonymous = Stream(*stub, Request("st-1", "cl-sim-10"), PassThrough(jwt));
  EXPECT_EQ(anonymous.status.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_THAT(anonymous.status.error_message(), HasSubstr("callers that send their own JWT too"));
  Call svc_a = PassThrough(jwt);
  svc_a.metadata.emplace("authorization", absl::StrCat("Bearer ", kToken));
  Result other_account = Stream(*stub, Request("st-1", "cl-sim-10", "acct-b"), svc_a);
  EXPECT_EQ(other_account.status.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_THAT(other_account.status.error_message(),
              HasSubstr("caller svc-a may not read account acct-b"));
  EXPECT_EQ(sim_->ListRequests(), 0);

  Result allowed = Stream(*stub, Request("st-1", "cl-sim-10"), svc_a);
  ASSERT_TRUE(allowed.status.ok()) << allowed.status.error_message();
  EXPECT_EQ(allowed.ids, sim_->Ids("cl-sim-10"));

  // Turned off, anyone may pass through again.
  config.authz.pass_through_auth = PassThroughAuth::kOptional;
  GatewayServer* open = Start(config);
  ASSERT_NE(open, nullptr);
  EXPECT_TRUE(Stream(*Stub(*open), Request("st-2", "cl-sim-10"), PassThrough(jwt)).status.ok());
}

TEST_F(TenancyTest, ResumeTokensAreGoodOnlyWithTheKeysThatSignedThem) {
  Config config = PassThroughConfig();
  config.stream.default_batch_size = 50;
  config.stream.resume_token_keys = Keys({kKeyA});
  GatewayServer* a1 = Start(config);
  GatewayServer* a2 = Start(config);  // another replica with the same Secret
  config.stream.resume_token_keys = Keys({kKeyB});
  GatewayServer* b = Start(config);
  config.stream.resume_token_keys = Keys({kKeyB, kKeyA});  // rotation: B signs, A still accepted
  GatewayServer* rotated = Start(config);
  ASSERT_TRUE(a1 && a2 && b && rotated);
  const Call call = PassThrough(Jwt(kSecret, "app"));
  const std::vector<std::string> all = sim_->Ids("cl-sim-120");
  const std::vector<std::string> rest(all.begin() + 50, all.end());

  Result first = Stream(*Stub(*a1), Request("st-tokens", "cl-sim-120"), call);
  ASSERT_TRUE(first.status.ok()) << first.status.error_message();
  ASSERT_EQ(first.tokens.size(), 3u);
  StreamContactsRequest resume = Request("st-tokens", "cl-sim-120");
  resume.set_resume_token(first.tokens[0]);  // after contact 50

  Result on_b = Stream(*Stub(*b), resume, call);
  EXPECT_EQ(on_b.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(on_b.status.error_message(),
              HasSubstr("signed with a key this gateway does not hold"));
  Result on_a2 = Stream(*Stub(*a2), resume, call);
  ASSERT_TRUE(on_a2.status.ok()) << on_a2.status.error_message();
  EXPECT_EQ(on_a2.ids, rest);
  Result on_rotated = Stream(*Stub(*rotated), resume, call);  // an old A token
  ASSERT_TRUE(on_rotated.status.ok()) << on_rotated.status.error_message();
  EXPECT_EQ(on_rotated.ids, rest);
  // The rotated gateway signs with B: B takes its tokens, A alone no longer does.
  StreamContactsRequest from_rotated = Request("st-tokens", "cl-sim-120");
  from_rotated.set_resume_token(on_rotated.tokens[0]);  // after contact 100
  EXPECT_EQ(Stream(*Stub(*b), from_rotated, call).ids,
            std::vector<std::string>(all.begin() + 100, all.end()));
  EXPECT_EQ(Stream(*Stub(*a1), from_rotated, call).status.error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);

  // One flipped bit anywhere in the token.
  std::string bytes = *Base64UrlDecode(first.tokens[0]);
  for (size_t i = 0; i < bytes.size(); i += 7) {
    std::string flipped = bytes;
    flipped[i] ^= 0x10;
    resume.set_resume_token(Base64UrlEncode(flipped));
    EXPECT_EQ(Stream(*Stub(*a1), resume, call).status.error_code(),
              grpc::StatusCode::INVALID_ARGUMENT)
        << "byte " << i;
  }
  // A token of the old checksum scheme, for an offset this caller was never given.
  std::string forged = bytes.substr(0, 9);
  forged[0] = '\x01';
  AppendVarint(&forged, 110);
  AppendVarint(&forged, 110);
  AppendVarint(&forged, 0);
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(forged.data()), forged.size(), digest);
  forged.append(reinterpret_cast<const char*>(digest), 8);
  resume.set_resume_token(Base64UrlEncode(forged));
  Result old = Stream(*Stub(*a1), resume, call);
  EXPECT_EQ(old.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(old.status.error_message(), HasSubstr("version 1 token (checksummed, not signed)"));
  EXPECT_TRUE(old.ids.empty());
}

}  // namespace
}  // namespace contacts::gateway
