#include "client/cli.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace contacts::client {
namespace {

using ::testing::HasSubstr;

absl::StatusOr<CliOptions> Parse(std::vector<std::string_view> args,
                                 std::optional<std::string_view> env = std::nullopt) {
  return ParseCliArgs(args, env);
}

TEST(CliTest, ParsesListFlagsInBothForms) {
  absl::StatusOr<CliOptions> options =
      Parse({"--stream-id", "st-1", "--list-id=cl-2", "--account-id", "acct", "--format=csv",
             "--page-size", "100", "--batch-size=7", "--max-contacts", "42", "--max-resumes", "0"});
  ASSERT_TRUE(options.ok()) << options.status();
  EXPECT_EQ(options->request.stream_id(), "st-1");
  EXPECT_EQ(options->request.contact_list_id(), "cl-2");
  EXPECT_EQ(options->request.account_id(), "acct");
  EXPECT_EQ(options->request.page_size(), 100);
  EXPECT_EQ(options->request.max_batch_size(), 7);
  EXPECT_EQ(options->request.max_contacts(), 42);
  EXPECT_EQ(options->format, OutputFormat::kCsv);
  EXPECT_EQ(options->max_resumes, 0);
}

TEST(CliTest, TargetFromFlagBeatsEnvironment) {
  std::vector<std::string_view> list = {"--stream-id=s", "--list-id=l", "--account-id=a"};
  EXPECT_EQ(Parse(list, "gw:1")->target, "gw:1");
  list.push_back("--target=other:2");
  EXPECT_EQ(Parse(list, "gw:1")->target, "other:2");
}

TEST(CliTest, UsageErrorsNameTheFlag) {
  EXPECT_THAT(Parse({"--list-id=l", "--account-id=a"}).status().message(),
              HasSubstr("--stream-id"));
  EXPECT_THAT(
      Parse({"--stream-id=s", "--list-id=l", "--account-id=a", "--format=xml"}).status().message(),
      HasSubstr("--format"));
  EXPECT_THAT(Parse({"--stream-id=s", "--list-id=l", "--account-id=a", "--page-size=-3"})
                  .status()
                  .message(),
              HasSubstr("--page-size"));
  EXPECT_THAT(Parse({"--bogus"}).status().message(), HasSubstr("--bogus"));
}

TEST(CliTest, ParsesCredentialFiles) {
  absl::StatusOr<CliOptions> options = Parse(
      {"--stream-id=s", "--list-id=l", "--account-id=a", "--token-file", "t.token",
       "--jwt-file=j.jwt", "--ca-file", "ca.pem", "--cert-file=c.pem", "--key-file", "c.key"});
  ASSERT_TRUE(options.ok()) << options.status();
  EXPECT_EQ(options->token_file, "t.token");
  EXPECT_EQ(options->jwt_file, "j.jwt");
  EXPECT_EQ(options->tls.ca_file, "ca.pem");
  EXPECT_EQ(options->tls.cert_file, "c.pem");
  EXPECT_EQ(options->tls.key_file, "c.key");
  EXPECT_EQ(options->env_token, "");  // CliMain fills it from $CONTACTS_TOKEN
}

TEST(CliTest, ClientCertificateAndKeyGoTogether) {
  EXPECT_THAT(Parse({"--stream-id=s", "--list-id=l", "--account-id=a", "--cert-file=c.pem"})
                  .status()
                  .message(),
              HasSubstr("--cert-file needs --key-file"));
  EXPECT_THAT(Parse({"--stream-id=s", "--list-id=l", "--account-id=a", "--key-file=c.key"})
                  .status()
                  .message(),
              HasSubstr("--key-file needs --cert-file"));
  EXPECT_THAT(
      Parse({"--stream-id=s", "--list-id=l", "--account-id=a", "--token-file="}).status().message(),
      HasSubstr("--token-file"));
}

TEST(CliTest, UsageNamesEveryLoginOption) {
  for (const char* option :
       {"--token-file FILE", "$CONTACTS_TOKEN", "--ca-file FILE", "--cert-file FILE",
        "--key-file FILE", "--jwt-file FILE", "--app-id ID", "RESOURCE_EXHAUSTED"}) {
    EXPECT_THAT(CliUsage(), HasSubstr(option));
  }
}

TEST(CliTest, ProgressLineShowsCountsPercentRateAndEta) {
  EXPECT_EQ(FormatProgressLine(2500, 10000, 2500, absl::Seconds(1)),
            "[######..................] 2500/10000  25.0%  2500 contacts/s  ETA 0:03");
}

}  // namespace
}  // namespace contacts::client
