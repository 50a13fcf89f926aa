// Who may use the gateway's credentials, TLS and mutual TLS for callers with certificate
// rotation, and the upstream's certificate checks: the gateway in-process, kore-sim over TLS.
#include <gmock/gmock.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <thread>

#include "absl/strings/str_cat.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "server/app/gateway_server.h"
#include "tests/integration/sim_suite.h"
#include "tests/integration/test_support.h"

namespace contacts::gateway {
namespace {

using ::contacts::testing::KoreSim;
using ::contacts::testing::MakeCertificate;
using ::contacts::testing::ReadFile;
using ::contacts::testing::Sha256Hex;
using ::contacts::testing::WriteAtomically;
using ::contacts::v1::StreamContactsRequest;
using ::contacts::v1::StreamContactsResponse;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kSecretA[] = "secret-of-app-a-5e1d";
constexpr char kSecretB[] = "secret-of-app-b-90c4";
constexpr char kTokenA[] = "caller-token-a-3f7b";
constexpr char kTokenB[] = "caller-token-b-c218";

class SecurityTest : public ::contacts::testing::SimSuite {
 protected:
  static void SetUpTestSuite() {
    dir_ = new std::string(contacts::testing::TempDir());
    ASSERT_TRUE(contacts::testing::MakeTestCertificates(*dir_));
    sim_ = KoreSim::Start(
        {"--app", absl::StrCat("cs-a=", kSecretA), "--app", absl::StrCat("cs-b=", kSecretB)},
        KoreSim::Tls{.dir = *dir_});
    ASSERT_NE(sim_, nullptr);
  }

  // svc-a may read acct-a, svc-b acct-b, svc-m (mTLS, CN=svc-m) both.
  static std::string CredentialsJson(const std::string& svc_a_accounts = R"(["acct-a"])") {
    return absl::StrCat(R"({"accounts": {"acct-a": {"client_id": "cs-a", "client_secret": ")",
                        kSecretA, R"("},
                                        "acct-b": {"client_id": "cs-b", "client_secret": ")",
                        kSecretB, R"(", "jti": true}},
                           "callers": [{"name": "svc-a", "token_sha256": ")",
                        Sha256Hex(kTokenA), R"(", "accounts": )", svc_a_accounts, R"(},
                                       {"name": "svc-b", "token_sha256": ")",
                        Sha256Hex(kTokenB), R"(", "accounts": ["acct-b"]},
                                       {"name": "svc-m", "mtls_subject": "CN=svc-m", "accounts": ["*"]}]})");
  }

  Config BaseConfig() {
    Config config;
    config.listen = "127.0.0.1:0";
    config.upstream.http.base_url = sim_->base_url();
    config.upstream.http.ca_file = sim_->ca_file();
    config.credentials_file = *dir_ + "/credentials.json";
    config.credentials_reload_interval = absl::Milliseconds(50);
    config.rate.per_minute = 0;  // kore-sim here has no rate limit
    WriteAtomically(config.credentials_file, CredentialsJson());
    return config;
  }
  void StartGateway(const Config& config) {
    absl::StatusOr<std::unique_ptr<GatewayServer>> gateway = GatewayServer::Start(config);
    ASSERT_TRUE(gateway.ok()) << gateway.status();
    gateway_ = *std::move(gateway);
  }
  std::shared_ptr<grpc::Channel> PlainChannel() {
    return grpc::CreateChannel(absl::StrCat("127.0.0.1:", gateway_->port()),
                               grpc::InsecureChannelCredentials());
  }
  // A TLS channel to the gateway as "localhost", trusting `ca` and presenting `client` (a
  // certificate name in dir_) if given.
  std::shared_ptr<grpc::Channel> TlsChannel(const std::string& ca, const std::string& client = "") {
    grpc::SslCredentialsOptions options;
    options.pem_root_certs = ReadFile(*dir_ + "/" + ca + ".pem");
    if (!client.empty()) {
      options.pem_cert_chain = ReadFile(*dir_ + "/" + client + ".pem");
      options.pem_private_key = ReadFile(*dir_ + "/" + client + ".key");
    }
    grpc::ChannelArguments args;
    args.SetSslTargetNameOverride("localhost");
    return grpc::CreateCustomChannel(absl::StrCat("127.0.0.1:", gateway_->port()),
                                     grpc::SslCredentials(options), args);
  }

  static StreamContactsRequest Request(const std::string& account,
                                       const std::string& list = "cl-sim-120") {
    StreamContactsRequest request;
    request.set_stream_id("st-security");
    request.set_contact_list_id(list);
    request.set_account_id(account);
    return request;
  }

  struct Result {
    grpc::Status status;
    std::vector<std::string> ids;
  };
  static Result Stream(const std::shared_ptr<grpc::Channel>& channel,
                       const StreamContactsRequest& request, const std::string& token = "") {
    Result result;
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
    if (!token.empty()) context.AddMetadata("authorization", absl::StrCat("Bearer ", token));
    auto reader = contacts::v1::ContactService::NewStub(channel)->StreamContacts(&context, request);
    StreamContactsResponse response;
    while (reader->Read(&response)) {
      for (const auto& c : response.contacts()) result.ids.push_back(c.id());
    }
    result.status = reader->Finish();
    return result;
  }

  static std::string* dir_;
};

std::string* SecurityTest::dir_ = nullptr;

TEST_F(SecurityTest, CallerCannotStreamAnotherAccountAndTheUpstreamSeesNothing) {
  StartGateway(BaseConfig());
  Result denied = Stream(PlainChannel(), Request("acct-b"), kTokenA);
  EXPECT_EQ(denied.status.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_THAT(denied.status.error_message(), HasSubstr("caller svc-a may not read account acct-b"));
  EXPECT_TRUE(denied.ids.empty());
  EXPECT_EQ(sim_->ListRequests(), 0);

  // Each caller gets its own account, minted with that account's app (kore-sim checks the secret).
  Result a = Stream(PlainChannel(), Request("acct-a"), kTokenA);
  ASSERT_TRUE(a.status.ok()) << a.status.error_message();
  EXPECT_EQ(a.ids, sim_->Ids("cl-sim-120"));
  Result b = Stream(PlainChannel(), Request("acct-b"), kTokenB);
  ASSERT_TRUE(b.status.ok()) << b.status.error_message();
  EXPECT_EQ(b.ids, sim_->Ids("cl-sim-120"));
}

TEST_F(SecurityTest, MissingOrUnknownCallerCredentialsAreUnauthenticatedAndTheUpstreamSeesNothing) {
  StartGateway(BaseConfig());
  Result none = Stream(PlainChannel(), Request("acct-a"));
  EXPECT_EQ(none.status.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_THAT(none.status.error_message(), HasSubstr("authorization: Bearer"));
  Result unknown = Stream(PlainChannel(), Request("acct-a"), "not-a-known-token");
  EXPECT_EQ(unknown.status.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_THAT(unknown.status.error_message(), Not(HasSubstr("not-a-known-token")));
  EXPECT_EQ(sim_->ListRequests(), 0);
}

TEST_F(SecurityTest, MintingWithoutAnyCallerRefusesToStartUnlessExplicitlyOpened) {
  Config config = BaseConfig();
  config.credentials_file.clear();
  config.client_id = "cs-a";
  config.client_secret = kSecretA;
  absl::StatusOr<std::unique_ptr<GatewayServer>> refused = GatewayServer::Start(config);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(refused.status().message(), HasSubstr("--allow-unauthenticated-callers"));

  config.authz.allow_unauthenticated = true;
  StartGateway(config);
  Result open = Stream(PlainChannel(), Request("acct-any"));
  ASSERT_TRUE(open.status.ok()) << open.status.error_message();
  EXPECT_EQ(open.ids.size(), 120u);
}

TEST_F(SecurityTest, ReloadedCredentialsFileChangesWhatACallerMayRead) {
  Config config = BaseConfig();
  StartGateway(config);
  ASSERT_EQ(Stream(PlainChannel(), Request("acct-b"), kTokenA).status.error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  WriteAtomically(config.credentials_file, CredentialsJson(R"(["acct-a", "acct-b"])"));
  Result allowed;
  for (int i = 0; i < 100; ++i) {  // reloaded within 50 ms; up to 5 s on a busy machine
    allowed = Stream(PlainChannel(), Request("acct-b"), kTokenA);
    if (allowed.status.ok()) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ASSERT_TRUE(allowed.status.ok()) << allowed.status.error_message();
  EXPECT_EQ(allowed.ids.size(), 120u);

  // A broken file keeps the last good one.
  WriteAtomically(config.credentials_file, R"({"accounts": )");
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_TRUE(Stream(PlainChannel(), Request("acct-b"), kTokenA).status.ok());
}

TEST_F(SecurityTest, MutualTlsRefusesCallersWithoutAClientCertificateOrFromAnotherCa) {
  ASSERT_TRUE(MakeCertificate(*dir_, "ca", "svc-m", "svc-m"));
  ASSERT_TRUE(MakeCertificate(*dir_, "other-ca", "intruder", "svc-m"));
  Config config = BaseConfig();
  config.tls = {.cert_file = *dir_ + "/server.pem",
                .key_file = *dir_ + "/server.key",
                .client_ca_file = *dir_ + "/ca.pem",
                .require_client_cert = true};
  StartGateway(config);

  Result without = Stream(TlsChannel("ca"), Request("acct-a"));
  EXPECT_EQ(without.status.error_code(), grpc::StatusCode::UNAVAILABLE)
      << without.status.error_message();
  Result other_ca = Stream(TlsChannel("ca", "intruder"), Request("acct-a"));
  EXPECT_EQ(other_ca.status.error_code(), grpc::StatusCode::UNAVAILABLE)
      << other_ca.status.error_message();
  Result plaintext = Stream(PlainChannel(), Request("acct-a"));
  EXPECT_EQ(plaintext.status.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(sim_->ListRequests(), 0);

  // The certificate's subject is the caller's identity: svc-m may read both accounts.
  for (const char* account : {"acct-a", "acct-b"}) {
    Result ok = Stream(TlsChannel("ca", "svc-m"), Request(account));
    ASSERT_TRUE(ok.status.ok()) << ok.status.error_message();
    EXPECT_EQ(ok.ids, sim_->Ids("cl-sim-120"));
  }
}

TEST_F(SecurityTest, RotatedServerCertificateIsPickedUpWhileAStreamContinues) {
  const std::string tls = *dir_ + "/rotation";
  ASSERT_EQ(std::system(absl::StrCat("mkdir -p '", tls, "'").c_str()), 0);
  ASSERT_TRUE(MakeCertificate(*dir_, "old-ca", "old-server", "localhost"));
  ASSERT_TRUE(MakeCertificate(*dir_, "new-ca", "new-server", "localhost"));
  auto install = [&](const std::string& name) {
    WriteAtomically(tls + "/tls.key", ReadFile(*dir_ + "/" + name + ".key"));
    WriteAtomically(tls + "/tls.crt", ReadFile(*dir_ + "/" + name + ".pem"));
  };
  install("old-server");
  Config config = BaseConfig();
  config.authz.allow_unauthenticated = true;
  config.tls = {.cert_file = tls + "/tls.crt",
                .key_file = tls + "/tls.key",
                .client_ca_file = "",
                .reload_interval = absl::Seconds(1)};
  config.stream.prefetch_pages = 1;  // 200 pages of 20 ms: the stream outlives the rotation
  StartGateway(config);
  ASSERT_EQ(sim_->Control("POST", "/_sim/faults?kind=latency&ms=20&count=-1").status, 200);

  // A stream on the old certificate, paused after its first message.
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
  StreamContactsRequest request = Request("acct-a", "cl-sim-10000");
  request.set_max_batch_size(50);
  auto stub = contacts::v1::ContactService::NewStub(TlsChannel("old-ca"));
  auto reader = stub->StreamContacts(&context, request);
  StreamContactsResponse response;
  ASSERT_TRUE(reader->Read(&response));
  std::vector<std::string> ids;
  for (const auto& c : response.contacts()) ids.push_back(c.id());

  install("new-server");
  bool rotated = false;
  for (int i = 0; i < 100 && !rotated; ++i) {  // the provider re-reads every second
    rotated = Stream(TlsChannel("new-ca"), Request("acct-a", "cl-sim-1")).status.ok();
    if (!rotated) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_TRUE(rotated) << "the new certificate was not served within 10 s";
  // The probe streams above may still be unregistering; the first stream must be the one left.
  for (int i = 0; i < 100 && gateway_->active_streams() > 1; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_EQ(gateway_->active_streams(), 1u) << "the first stream should still be running";
  EXPECT_EQ(Stream(TlsChannel("old-ca"), Request("acct-a", "cl-sim-1")).status.error_code(),
            grpc::StatusCode::UNAVAILABLE);

  while (reader->Read(&response)) {
    for (const auto& c : response.contacts()) ids.push_back(c.id());
  }
  grpc::Status status = reader->Finish();
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(ids, sim_->Ids("cl-sim-10000"));
}

TEST_F(SecurityTest, RefusesAnExpiredUpstreamCertificate) {
  ASSERT_TRUE(MakeCertificate(*dir_, "ca", "expired", "localhost", -1));
  std::unique_ptr<KoreSim> expired_sim = KoreSim::Start(
      {"--app", absl::StrCat("cs-a=", kSecretA)}, KoreSim::Tls{.dir = *dir_, .name = "expired"});
  ASSERT_NE(expired_sim, nullptr);
  Config config = BaseConfig();
  config.upstream.http.base_url = expired_sim->base_url();
  StartGateway(config);
  Result result = Stream(PlainChannel(), Request("acct-a"), kTokenA);
  EXPECT_EQ(result.status.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(result.status.error_message(), HasSubstr("certificate has expired"));
}

}  // namespace
}  // namespace contacts::gateway
