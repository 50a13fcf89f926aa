// The client library's reading of the gateway's rich errors (ParseErrorAdvice), its resume decision
// (DecideResume), and the credentials it reads (ReadTokenFile, GatewayChannelCredentials).
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include <gmock/gmock.h>
#include <grpcpp/support/error_details.h>
#include <gtest/gtest.h>

#include "absl/strings/str_cat.h"
#include "client/contacts_client.h"
#include "google/rpc/error_details.pb.h"
#include "google/rpc/status.pb.h"

namespace contacts::client {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

// A status as the gateway sends it: code and message, and a google.rpc.Status with `details` in
// grpc-status-details-bin.
template <typename... Details>
grpc::Status RichStatus(grpc::StatusCode code, const Details&... details) {
  google::rpc::Status rich;
  rich.set_code(code);
  rich.set_message("planned");
  (rich.add_details()->PackFrom(details), ...);
  grpc::Status status;
  EXPECT_TRUE(grpc::SetErrorDetails(rich, &status).ok());
  return status;
}

google::rpc::ErrorInfo GatewayErrorInfo(const std::string& reason, const std::string& token = "") {
  google::rpc::ErrorInfo info;
  info.set_domain("contacts-gateway");
  info.set_reason(reason);
  if (!token.empty()) (*info.mutable_metadata())["resume_token"] = token;
  return info;
}

google::rpc::RetryInfo RetryAfter(int64_t seconds, int32_t nanos) {
  google::rpc::RetryInfo retry;
  retry.mutable_retry_delay()->set_seconds(seconds);
  retry.mutable_retry_delay()->set_nanos(nanos);
  return retry;
}

TEST(ParseErrorAdviceTest, ReadsErrorInfoAndRetryInfo) {
  google::rpc::BadRequest bad_request;  // other details are skipped
  bad_request.add_field_violations()->set_field("page_size");
  const ErrorAdvice advice = ParseErrorAdvice(
      RichStatus(grpc::StatusCode::RESOURCE_EXHAUSTED, bad_request,
                 GatewayErrorInfo("UPSTREAM_RATE_LIMITED", "tok-7"), RetryAfter(1, 500000000)));
  EXPECT_EQ(advice.reason, "UPSTREAM_RATE_LIMITED");
  EXPECT_EQ(advice.resume_token, "tok-7");
  EXPECT_EQ(advice.retry_delay, absl::Milliseconds(1500));
}

TEST(ParseErrorAdviceTest, IgnoresErrorInfoOfAnotherDomain) {
  google::rpc::ErrorInfo proxy = GatewayErrorInfo("OVERLOADED", "not-a-gateway-token");
  proxy.set_domain("envoy.example");
  const ErrorAdvice advice =
      ParseErrorAdvice(RichStatus(grpc::StatusCode::UNAVAILABLE, proxy, RetryAfter(2, 0)));
  EXPECT_EQ(advice.reason, "");
  EXPECT_EQ(advice.resume_token, "");
  EXPECT_EQ(advice.retry_delay, absl::Seconds(2));  // RetryInfo has no domain
}

TEST(ParseErrorAdviceTest, NothingWithoutOrWithUnreadableDetails) {
  for (const grpc::Status& status :
       {grpc::Status(grpc::StatusCode::UNAVAILABLE, "plain"),
        grpc::Status(grpc::StatusCode::UNAVAILABLE, "garbled", std::string("\xff\xff\xff", 3)),
        grpc::Status::OK}) {
    const ErrorAdvice advice = ParseErrorAdvice(status);
    EXPECT_EQ(advice.reason, "");
    EXPECT_EQ(advice.resume_token, "");
    EXPECT_FALSE(advice.retry_delay.has_value());
  }
}

TEST(DecideResumeTest, UnavailableAndResourceExhaustedResumeWithTheJitteredBackoff) {
  StreamOptions options;
  options.initial_backoff = absl::Milliseconds(200);
  for (grpc::StatusCode code :
       {grpc::StatusCode::UNAVAILABLE, grpc::StatusCode::RESOURCE_EXHAUSTED}) {
    const ResumeDecision decision = DecideResume(options, code, {}, 2, 0.5, "tok-own");
    EXPECT_TRUE(decision.resume) << code;
    EXPECT_EQ(decision.wait, absl::Milliseconds(200)) << code;  // 0.5 * 400 ms
    EXPECT_EQ(decision.resume_token, "tok-own");
  }
}

TEST(DecideResumeTest, AdvisedDelayReplacesTheBackoffWithinTheCap) {
  StreamOptions options;
  options.max_retry_delay = absl::Seconds(60);
  ErrorAdvice advice;
  advice.retry_delay = absl::Milliseconds(1500);
  for (double random : {0.0, 0.99}) {
    EXPECT_EQ(
        DecideResume(options, grpc::StatusCode::RESOURCE_EXHAUSTED, advice, 1, random, "t").wait,
        absl::Milliseconds(1500));
  }
  advice.retry_delay = absl::Hours(3);
  EXPECT_EQ(DecideResume(options, grpc::StatusCode::UNAVAILABLE, advice, 1, 0.5, "t").wait,
            absl::Seconds(60));
  advice.retry_delay = -absl::Seconds(1);
  EXPECT_EQ(DecideResume(options, grpc::StatusCode::UNAVAILABLE, advice, 1, 0.5, "t").wait,
            absl::ZeroDuration());
}

TEST(DecideResumeTest, ErrorInfosTokenIsTakenWhenThereIsOne) {
  ErrorAdvice advice;
  advice.resume_token = "tok-from-error";
  EXPECT_EQ(DecideResume({}, grpc::StatusCode::UNAVAILABLE, advice, 1, 0.5, "tok-own").resume_token,
            "tok-from-error");
  // Also when the stream ends: the caller's result carries the best token.
  EXPECT_EQ(DecideResume({}, grpc::StatusCode::DATA_LOSS, advice, 1, 0.5, "tok-own").resume_token,
            "tok-from-error");
}

TEST(DecideResumeTest, OtherCodesEndTheStreamEvenWithAdvice) {
  ErrorAdvice advice;
  advice.retry_delay = absl::Seconds(1);
  for (grpc::StatusCode code :
       {grpc::StatusCode::OK, grpc::StatusCode::DEADLINE_EXCEEDED, grpc::StatusCode::NOT_FOUND,
        grpc::StatusCode::INVALID_ARGUMENT, grpc::StatusCode::UNAUTHENTICATED,
        grpc::StatusCode::PERMISSION_DENIED, grpc::StatusCode::DATA_LOSS,
        grpc::StatusCode::CANCELLED}) {
    EXPECT_FALSE(DecideResume({}, code, advice, 1, 0.5, "t").resume) << code;
  }
}

TEST(DecideResumeTest, MaxResumesBoundsTheAttempts) {
  StreamOptions options;
  options.max_resumes = 2;
  EXPECT_TRUE(DecideResume(options, grpc::StatusCode::UNAVAILABLE, {}, 2, 0.5, "t").resume);
  EXPECT_FALSE(DecideResume(options, grpc::StatusCode::UNAVAILABLE, {}, 3, 0.5, "t").resume);
  options.max_resumes = 0;
  EXPECT_FALSE(DecideResume(options, grpc::StatusCode::RESOURCE_EXHAUSTED, {}, 1, 0.5, "t").resume);
}

TEST(MetadataValueTest, PrintableAsciiOnly) {
  EXPECT_TRUE(IsValidMetadataValue("eyJhbGciOi.J9-_~ x"));
  EXPECT_TRUE(IsValidMetadataValue(""));
  EXPECT_FALSE(IsValidMetadataValue("line\nbreak"));
  EXPECT_FALSE(IsValidMetadataValue("del\x7f"));
  EXPECT_FALSE(IsValidMetadataValue("caf\xc3\xa9"));
}

class CredentialFilesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char dir[] = "/tmp/contacts-credentials-XXXXXX";
    ASSERT_NE(mkdtemp(dir), nullptr);
    dir_ = dir;
  }
  void TearDown() override { std::system(absl::StrCat("rm -rf ", dir_).c_str()); }

  std::string Write(const std::string& name, const std::string& content) {
    const std::string path = absl::StrCat(dir_, "/", name);
    FILE* f = std::fopen(path.c_str(), "wb");
    std::fwrite(content.data(), 1, content.size(), f);
    std::fclose(f);
    return path;
  }

  std::string dir_;
};

TEST_F(CredentialFilesTest, TokenFileIsTrimmed) {
  absl::StatusOr<std::string> token = ReadTokenFile(Write("token", "  tok-3f9a.b_c\n\n"));
  ASSERT_TRUE(token.ok()) << token.status();
  EXPECT_EQ(*token, "tok-3f9a.b_c");
}

TEST_F(CredentialFilesTest, UnusableTokenFilesAreNamedButNeverQuoted) {
  const std::string two_lines = Write("two-lines", "secret-half-1\nsecret-half-2\n");
  absl::StatusOr<std::string> token = ReadTokenFile(two_lines);
  EXPECT_EQ(token.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(token.status().message(), HasSubstr(two_lines));
  EXPECT_THAT(token.status().message(), Not(HasSubstr("secret-half")));

  EXPECT_EQ(ReadTokenFile(Write("blank", " \n")).status().code(),
            absl::StatusCode::kInvalidArgument);
  token = ReadTokenFile(absl::StrCat(dir_, "/absent"));
  EXPECT_EQ(token.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(token.status().message(), HasSubstr("/absent: No such file or directory"));
}

TEST_F(CredentialFilesTest, ChannelCredentials) {
  EXPECT_TRUE(GatewayChannelCredentials({}).ok());  // plaintext
  EXPECT_EQ(GatewayChannelCredentials({.cert_file = Write("c.pem", "x")}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(GatewayChannelCredentials({.key_file = Write("k.pem", "x")}).status().code(),
            absl::StatusCode::kInvalidArgument);
  absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> missing =
      GatewayChannelCredentials({.ca_file = absl::StrCat(dir_, "/ca.pem")});
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(missing.status().message(), HasSubstr("CA file"));
  absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> empty_key =
      GatewayChannelCredentials({.cert_file = Write("c.pem", "x"), .key_file = Write("k.pem", "")});
  EXPECT_EQ(empty_key.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(empty_key.status().message(), HasSubstr("client key file"));
}

}  // namespace
}  // namespace contacts::client
