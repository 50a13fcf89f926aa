// Secret hygiene: the gateway binary runs with distinctive secrets (client secrets from the
// credentials file, the environment and the command line, a caller's bearer token, JWTs, resume
// token keys) through
// successes, every authorization failure, upstream 401s, a broken reloaded credentials file and
// bad configuration; none of them may appear in its log, its output, --help or any error a
// caller sees.
#include <gmock/gmock.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <stdlib.h>

#include <cstdio>
#include <thread>

#include "absl/strings/str_cat.h"
#include "contacts/v1/contacts.grpc.pb.h"
#include "server/upstream/jwt.h"
#include "tests/integration/test_support.h"

namespace contacts::gateway {
namespace {

using ::contacts::testing::ChildProcess;
using ::contacts::testing::KoreSim;
using ::contacts::testing::ReadFile;
using ::contacts::testing::WriteAtomically;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kFileSecret[] = "LEAKCHECK-file-secret-7Q2M";
constexpr char kWrongSecret[] = "LEAKCHECK-wrong-secret-4R8N";
constexpr char kEnvSecret[] = "LEAKCHECK-env-secret-9X1P";
constexpr char kArgSecret[] = "LEAKCHECK-arg-secret-3K6T";
constexpr char kCallerToken[] = "LEAKCHECK-caller-token-5H0W";
constexpr char kResumeKey[] = "LEAKCHECK-resume-token-key-8J3V-0123456789";   // signs
constexpr char kOldResumeKey[] = "LEAKCHECK-old-resume-key-2D7Q-0123456789";  // still accepted
constexpr char kShortResumeKey[] = "LEAKCHECK-short-key-6Z";                  // refused: too short

// Output (stdout and stderr) of a shell command.
std::string CommandOutput(const std::string& command) {
  std::string out;
  FILE* pipe = popen((command + " 2>&1").c_str(), "r");
  char buffer[4096];
  while (pipe != nullptr && fgets(buffer, sizeof buffer, pipe) != nullptr) out += buffer;
  if (pipe != nullptr) pclose(pipe);
  return out;
}

std::string CredentialsJson(const std::string& hash) {
  return absl::StrCat(R"({"accounts": {"acct-ok": {"client_id": "cs-leak", "client_secret": ")",
                      kFileSecret,
                      R"("}, "acct-wrong": {"client_id": "cs-leak", "client_secret": ")",
                      kWrongSecret, R"("}}, "callers": [{"name": "svc-leak", "token_sha256": ")",
                      hash, R"(", "accounts": ["*"]}]})");
}

TEST(LeakTest, NoSecretInLogsErrorsOrHelp) {
  const std::string dir = contacts::testing::TempDir();
  ASSERT_TRUE(contacts::testing::MakeTestCertificates(dir));
  std::unique_ptr<KoreSim> sim =
      KoreSim::Start({"--app", absl::StrCat("cs-leak=", kFileSecret)}, KoreSim::Tls{.dir = dir});
  ASSERT_NE(sim, nullptr);
  const std::string credentials = dir + "/credentials.json";
  WriteAtomically(credentials, CredentialsJson(contacts::testing::Sha256Hex(kCallerToken)));
  const std::string resume_keys = dir + "/resume-token.keys";
  WriteAtomically(resume_keys, absl::StrCat(kResumeKey, "\n", kOldResumeKey, "\n"));
  const std::string short_keys = dir + "/short-resume-token.keys";
  WriteAtomically(short_keys, absl::StrCat(kResumeKey, "\n", kShortResumeKey, "\n"));

  // The default app's secret comes from the environment, as from a Kubernetes secretKeyRef.
  setenv("CONTACTS_GATEWAY_CLIENT_SECRET", kEnvSecret, 1);
  std::unique_ptr<ChildProcess> gateway = contacts::testing::StartGatewayProcess(
      *sim, {.client_id = "cs-env",
             .allow_unauthenticated_callers = false,
             .extra = {"--credentials-file", credentials, "--credentials-reload-interval", "100ms",
                       "--retry-attempts", "1", "--log-level", "debug", "--resume-token-key-file",
                       resume_keys}});
  ASSERT_NE(gateway, nullptr);

  const std::string minted_like =
      SignHs256(R"({"alg":"HS256","typ":"JWT"})", R"({"sub":"x","appId":"cs-leak"})", kFileSecret);
  const std::string forged =
      SignHs256(R"({"alg":"HS256","typ":"JWT"})", R"({"sub":"x","appId":"cs-leak"})", kWrongSecret);
  std::vector<std::string> seen;  // every status message callers got
  auto stub = contacts::v1::ContactService::NewStub(grpc::CreateChannel(
      absl::StrCat("127.0.0.1:", gateway->port()), grpc::InsecureChannelCredentials()));
  std::string last_token;  // the resume_token of the last message received
  auto call = [&](const std::string& account, std::multimap<std::string, std::string> metadata,
                  const std::string& resume_token = "") {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
    for (auto& [k, v] : metadata) context.AddMetadata(k, v);
    contacts::v1::StreamContactsRequest request;
    request.set_stream_id("st-leak");
    request.set_contact_list_id("cl-sim-60");
    request.set_account_id(account);
    request.set_resume_token(resume_token);
    auto reader = stub->StreamContacts(&context, request);
    contacts::v1::StreamContactsResponse response;
    while (reader->Read(&response)) last_token = response.resume_token();
    grpc::Status status = reader->Finish();
    seen.push_back(absl::StrCat(status.error_code(), " ", status.error_message()));
    return status.error_code();
  };
  const std::string bearer = absl::StrCat("Bearer ", kCallerToken);
  EXPECT_EQ(call("acct-ok", {{"authorization", bearer}}), grpc::StatusCode::OK);
  ASSERT_FALSE(last_token.empty());
  EXPECT_EQ(call("acct-ok", {{"authorization", bearer}}, last_token), grpc::StatusCode::OK);
  EXPECT_EQ(call("acct-ok", {{"authorization", bearer}}, "A" + last_token),
            grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(call("acct-wrong", {{"authorization", bearer}}),
            grpc::StatusCode::UNAUTHENTICATED);  // upstream 401
  EXPECT_EQ(call("acct-env", {{"authorization", bearer}}),
            grpc::StatusCode::UNAUTHENTICATED);  // unknown app
  EXPECT_EQ(call("acct-ok", {{"authorization", absl::StrCat("Bearer ", kFileSecret)}}),
            grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(call("acct-ok", {}), grpc::StatusCode::UNAUTHENTICATED);
  // Pass-through: the file lists callers, so a caller sending its own JWT authenticates too.
  EXPECT_EQ(call("acct-ok", {{"auth", minted_like}, {"iid", "cs-leak"}, {"authorization", bearer}}),
            grpc::StatusCode::OK);
  EXPECT_EQ(call("acct-ok", {{"auth", minted_like}, {"iid", "cs-leak"}}),
            grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(call("acct-ok", {{"auth", forged}, {"iid", "cs-leak"}, {"authorization", bearer}}),
            grpc::StatusCode::UNAUTHENTICATED);  // upstream 401
  EXPECT_EQ(call("acct-ok", {{"auth", minted_like}}), grpc::StatusCode::INVALID_ARGUMENT);

  // A reload that fails, with secrets in the broken file.
  WriteAtomically(credentials, absl::StrCat(R"({"accounts": {"acct-ok": {"client_secret": [")",
                                            kFileSecret, R"("]}}, ")", kWrongSecret, R"(": 1})"));
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  EXPECT_EQ(call("acct-ok", {{"authorization", bearer}}), grpc::StatusCode::OK);  // old file kept
  const contacts::testing::HttpResult metrics =
      contacts::testing::HttpRequest("GET", gateway->admin_port(), "/metrics");
  EXPECT_EQ(metrics.status, 200);
  EXPECT_EQ(gateway->Stop(SIGTERM), 0);
  std::vector<std::pair<std::string, std::string>> outputs = {
      {"gateway log", ReadFile(gateway->stdout_path())},
      {"gateway stderr", ReadFile(gateway->log_path())},
      {"/metrics", metrics.body}};
  unsetenv("CONTACTS_GATEWAY_CLIENT_SECRET");

  for (const std::string& status : seen) outputs.emplace_back("status seen by a caller", status);
  // --help with secrets in the environment and on the command line.
  outputs.emplace_back("--help", CommandOutput(absl::StrCat(
                                     "CONTACTS_GATEWAY_CLIENT_SECRET=", kEnvSecret, " ",
                                     GATEWAY_PATH, " --client-secret=", kArgSecret, " --help")));
  // Configuration errors with secrets around.
  outputs.emplace_back("bad upstream",
                       CommandOutput(absl::StrCat(GATEWAY_PATH, " --client-id x --client-secret ",
                                                  kArgSecret, " --upstream ftp://example.com")));
  outputs.emplace_back("bad flag after a secret",
                       CommandOutput(absl::StrCat(GATEWAY_PATH, " --client-secret=", kArgSecret,
                                                  " --page-size=-1")));
  outputs.emplace_back("bad resume token key file",
                       CommandOutput(absl::StrCat(GATEWAY_PATH, " --resume-token-key-file ",
                                                  short_keys, " --listen 127.0.0.1:0")));
  outputs.emplace_back(
      "bad credentials file",
      CommandOutput(absl::StrCat(
          GATEWAY_PATH, " --listen 127.0.0.1:0 --admin-listen= --credentials-file ", credentials)));
  EXPECT_THAT(outputs[0].second, HasSubstr("stream ended"));  // the log was captured
  EXPECT_THAT(outputs[2].second, HasSubstr("grpc_server_handled_total"));
  EXPECT_THAT(outputs[0].second, HasSubstr("keeping the credentials loaded before"));
  EXPECT_THAT(outputs.back().second, HasSubstr("credentials file"));
  EXPECT_THAT(outputs[outputs.size() - 2].second,
              HasSubstr("--resume-token-key-file: line 2: a key needs at least 32 bytes"));

  for (const auto& [where, text] : outputs) {
    for (const std::string& secret :
         {std::string(kFileSecret), std::string(kWrongSecret), std::string(kEnvSecret),
          std::string(kArgSecret), std::string(kCallerToken), std::string(kResumeKey),
          std::string(kOldResumeKey), std::string(kShortResumeKey), minted_like, forged,
          std::string("eyJhbGciOiJIUzI1NiIs")}) {  // any JWT's header
      EXPECT_THAT(text, Not(HasSubstr(secret))) << where << " leaks " << secret << ":\n" << text;
    }
  }
}

}  // namespace
}  // namespace contacts::gateway
