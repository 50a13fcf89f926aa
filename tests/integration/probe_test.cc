// Kubelet-style probes and dual-stack listening: the plaintext --probe-listen port answers gRPC
// health with the statuses of the TLS --listen port (and nothing else), and flips readiness to
// NOT_SERVING at the start of a drain; every port takes IPv4 and IPv6 loopback connections.
#include <gmock/gmock.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <thread>

#include "absl/strings/str_cat.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "server/app/admin_server.h"
#include "server/app/gateway_server.h"
#include "tests/integration/sim_suite.h"
#include "tests/integration/test_support.h"

namespace contacts::gateway {
namespace {

using ::contacts::testing::KoreSim;
using ::contacts::v1::StreamContactsRequest;
using ::contacts::v1::StreamContactsResponse;
using ::grpc::health::v1::HealthCheckResponse;

constexpr char kAppId[] = "cs-probe";
constexpr char kSecret[] = "probe-secret-51c2";
constexpr char kReadiness[] = "contacts.v1.ContactService";

// What a kubelet gRPC probe does: one Check on a fresh plaintext connection, 2 s timeout.
// Returns the status name ("SERVING", "NOT_SERVING", ...) or the RPC's error code.
std::string Probe(
    const std::string& target, const std::string& service,
    std::shared_ptr<grpc::ChannelCredentials> credentials = grpc::InsecureChannelCredentials()) {
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);  // a connection of its own, as kubelet's
  args.SetSslTargetNameOverride("localhost");
  auto stub = grpc::health::v1::Health::NewStub(
      grpc::CreateCustomChannel(target, std::move(credentials), args));
  grpc::ClientContext context;
  // Generous: what is checked is the status; a sanitized gateway on a busy machine took over 2 s.
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  grpc::health::v1::HealthCheckRequest request;
  request.set_service(service);
  HealthCheckResponse response;
  grpc::Status status = stub->Check(&context, request, &response);
  if (!status.ok()) return absl::StrCat("error ", status.error_code());
  return HealthCheckResponse::ServingStatus_Name(response.status());
}

class ProbeTest : public ::contacts::testing::SimSuite {
 protected:
  static void SetUpTestSuite() {
    dir_ = contacts::testing::TempDir();
    ASSERT_TRUE(contacts::testing::MakeTestCertificates(dir_));
    sim_ = KoreSim::Start({"--app", absl::StrCat(kAppId, "=", kSecret)});
    ASSERT_NE(sim_, nullptr);
  }

  // TLS on --listen (the test CA's certificate for "localhost"), plaintext health on the probe.
  Config TlsConfig() {
    Config config;
    config.listen = "127.0.0.1:0";
    config.probe_listen = "127.0.0.1:0";
    config.upstream.http.base_url = sim_->base_url();
    config.upstream.http.allow_plain_http = true;
    config.client_id = kAppId;
    config.client_secret = kSecret;
    config.authz.allow_unauthenticated = true;
    config.rate.per_minute = 0;
    config.tls.cert_file = dir_ + "/server.pem";
    config.tls.key_file = dir_ + "/server.key";
    return config;
  }
  void StartGateway(const Config& config) {
    absl::StatusOr<std::unique_ptr<GatewayServer>> gateway = GatewayServer::Start(config);
    ASSERT_TRUE(gateway.ok()) << gateway.status();
    gateway_ = *std::move(gateway);
    ASSERT_NE(gateway_->probe_port(), 0);
  }
  std::shared_ptr<grpc::ChannelCredentials> Tls() {
    grpc::SslCredentialsOptions options;
    options.pem_root_certs = contacts::testing::ReadFile(dir_ + "/ca.pem");
    return grpc::SslCredentials(options);
  }
  std::shared_ptr<grpc::Channel> TlsChannel() {
    grpc::ChannelArguments args;
    args.SetSslTargetNameOverride("localhost");
    return grpc::CreateCustomChannel(absl::StrCat("127.0.0.1:", gateway_->port()), Tls(), args);
  }
  std::string probe() const { return absl::StrCat("127.0.0.1:", gateway_->probe_port()); }
  static StreamContactsRequest Request(const std::string& list) {
    StreamContactsRequest request;
    request.set_stream_id("st-probe");
    request.set_contact_list_id(list);
    request.set_account_id("acct-probe");
    return request;
  }

  static inline std::string dir_;
};

TEST_F(ProbeTest, PlaintextProbePortAnswersHealthWhileListenServesTls) {
  StartGateway(TlsConfig());
  const std::string listen = absl::StrCat("127.0.0.1:", gateway_->port());
  for (const char* service : {"", kReadiness, GatewayServer::kLivenessService}) {
    EXPECT_EQ(Probe(probe(), service), "SERVING") << "service \"" << service << "\"";
    EXPECT_EQ(Probe(listen, service, Tls()), "SERVING") << "service \"" << service << "\"";
  }
  EXPECT_EQ(Probe(probe(), "no.such.Service"), absl::StrCat("error ", grpc::NOT_FOUND));
  // Plaintext --listen is what kubelet would speak: it fails (the port wants TLS).
  EXPECT_EQ(Probe(listen, kReadiness), absl::StrCat("error ", grpc::UNAVAILABLE));

  // Callers stream over TLS; the probe port serves health and nothing else.
  auto tls = contacts::v1::ContactService::NewStub(TlsChannel());
  std::vector<std::string> ids;
  {
    grpc::ClientContext context;
    auto reader = tls->StreamContacts(&context, Request("cl-sim-120"));
    StreamContactsResponse response;
    while (reader->Read(&response)) {
      for (const auto& contact : response.contacts()) ids.push_back(contact.id());
    }
    ASSERT_TRUE(reader->Finish().ok());
  }
  EXPECT_EQ(ids, sim_->Ids("cl-sim-120"));
  auto plain = contacts::v1::ContactService::NewStub(
      grpc::CreateChannel(probe(), grpc::InsecureChannelCredentials()));
  grpc::ClientContext context;
  auto reader = plain->StreamContacts(&context, Request("cl-sim-120"));
  StreamContactsResponse response;
  EXPECT_FALSE(reader->Read(&response));
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::UNIMPLEMENTED);
}

TEST_F(ProbeTest, ProbePortReportsNotServingFromTheStartOfADrain) {
  StartGateway(TlsConfig());
  // A stream in flight whose caller reads one message and then stops: the drain waits for it.
  auto stub = contacts::v1::ContactService::NewStub(TlsChannel());
  grpc::ClientContext context;
  StreamContactsRequest request = Request("cl-sim-200000");
  request.set_max_batch_size(10);
  auto reader = stub->StreamContacts(&context, request);
  StreamContactsResponse response;
  ASSERT_TRUE(reader->Read(&response));
  ASSERT_EQ(Probe(probe(), kReadiness), "SERVING");

  std::thread drain([this] { gateway_->Shutdown(absl::Seconds(60)); });
  std::string readiness;
  for (auto give_up = absl::Now() + absl::Seconds(20);
       (readiness = Probe(probe(), kReadiness)) == "SERVING" && absl::Now() < give_up;) {
    absl::SleepFor(absl::Milliseconds(20));  // polling: readiness flips at the drain's start
  }
  EXPECT_EQ(readiness, "NOT_SERVING");
  EXPECT_EQ(Probe(probe(), ""), "NOT_SERVING");
  EXPECT_EQ(Probe(probe(), GatewayServer::kLivenessService), "SERVING");
  EXPECT_EQ(gateway_->active_streams(), 1u);  // still draining

  context.TryCancel();  // the last stream ends: the drain is over, and the probe port closes
  drain.join();
  EXPECT_EQ(Probe(probe(), GatewayServer::kLivenessService),
            absl::StrCat("error ", grpc::UNAVAILABLE));
}

TEST_F(ProbeTest, EveryPortTakesIpv4AndIpv6Connections) {
  Config config = TlsConfig();
  config.listen = "[::]:0";
  config.probe_listen = "[::]:0";
  StartGateway(config);
  absl::StatusOr<std::unique_ptr<AdminServer>> admin = AdminServer::Start(
      "[::]:0", [] { return std::string("metrics\n"); }, [] { return true; });
  ASSERT_TRUE(admin.ok()) << admin.status();
  for (const std::string host : {"127.0.0.1", "[::1]"}) {
    EXPECT_EQ(Probe(absl::StrCat(host, ":", gateway_->port()), kReadiness, Tls()), "SERVING")
        << host;
    EXPECT_EQ(Probe(absl::StrCat(host, ":", gateway_->probe_port()), kReadiness), "SERVING")
        << host;
    const std::string address = host == "[::1]" ? "::1" : host;
    contacts::testing::HttpResult healthz =
        contacts::testing::HttpRequest("GET", (*admin)->port(), "/healthz", "", address);
    EXPECT_EQ(healthz.status, 200) << host;
    EXPECT_EQ(healthz.body, "ok\n") << host;
  }
}

}  // namespace
}  // namespace contacts::gateway
