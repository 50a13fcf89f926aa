#include "server/app/config.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>
#include <map>

namespace contacts::gateway {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

absl::StatusOr<Config> Parse(std::vector<std::string> args,
                             std::map<std::string, std::string> env = {}) {
  bool help = false;
  return ParseConfig(
      args,
      [&env](const char* name) -> const char* {
        auto it = env.find(name);
        return it == env.end() ? nullptr : it->second.c_str();
      },
      &help);
}

TEST(ConfigTest, DefaultsAreUsable) {
  absl::StatusOr<Config> config = Parse({});
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->upstream.http.base_url, "https://platform.kore.ai");
  EXPECT_EQ(config->stream.prefetch_pages, 4);
  EXPECT_EQ(config->rate.per_minute, 60);
  EXPECT_EQ(config->rate.burst, 1);
  EXPECT_GT(config->cache.max_bytes, 0u);
}

TEST(ConfigTest, ListensOnIpv6AndIpv4WithTheProbePortOnlyWhenAsked) {
  absl::StatusOr<Config> config = Parse({});
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->listen, "[::]:50051");
  EXPECT_EQ(config->admin_listen, "[::]:9090");
  EXPECT_EQ(config->probe_listen, "");
  EXPECT_EQ(config->metrics_accounts, 0);
  config = Parse({"--metrics-accounts=20"}, {{"CONTACTS_GATEWAY_PROBE_LISTEN", "[::]:50052"}});
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->probe_listen, "[::]:50052");
  EXPECT_EQ(config->metrics_accounts, 20);
  EXPECT_THAT(Parse({"--probe-listen=50052"}).status().message(),
              HasSubstr("--probe-listen: expected HOST:PORT"));
  EXPECT_THAT(Parse({"--metrics-accounts=5000"}).status().message(),
              HasSubstr("--metrics-accounts"));
}

TEST(ConfigTest, FlagsBeatEnvironmentBeatsDefaults) {
  absl::StatusOr<Config> config =
      Parse({"--page-size=20", "--listen", "127.0.0.1:0"},
            {{"CONTACTS_GATEWAY_PAGE_SIZE", "30"}, {"CONTACTS_GATEWAY_PREFETCH_PAGES", "4"}});
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->stream.default_page_size, 20);
  EXPECT_EQ(config->stream.prefetch_pages, 4);
  EXPECT_EQ(config->listen, "127.0.0.1:0");
}

TEST(ConfigTest, PageSizeDefaultsToTheLargestTheUpstreamServes) {
  absl::StatusOr<Config> config = Parse({});
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->stream.default_page_size, 0);
  EXPECT_EQ(config->stream.max_page_size, 1000);
}

TEST(ConfigTest, RejectsBadValuesNamingTheFlag) {
  EXPECT_THAT(Parse({"--page-size=-1"}).status().message(), HasSubstr("--page-size"));
  EXPECT_THAT(Parse({"--page-size=2000"}).status().message(), HasSubstr("--max-page-size"));
  EXPECT_THAT(Parse({"--prefetch-pages=abc"}).status().message(), HasSubstr("--prefetch-pages"));
  EXPECT_THAT(Parse({"--nope"}).status().message(), HasSubstr("unknown flag --nope"));
  EXPECT_THAT(Parse({"--upstream=http://127.0.0.1:1"}).status().message(), HasSubstr("plain http"));
  EXPECT_TRUE(Parse({"--upstream=http://127.0.0.1:1", "--upstream-allow-plain-http"}).ok());
  EXPECT_THAT(Parse({"--upstream-timeout=soon"}).status().message(),
              HasSubstr("--upstream-timeout"));
  EXPECT_THAT(Parse({"--client-id=x"}).status().message(), HasSubstr("go together"));
}

TEST(ConfigTest, ConnectionSettingsSuitKubernetes) {
  absl::StatusOr<Config> config = Parse({});
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->connections.max_age, absl::Minutes(5));
  EXPECT_EQ(config->connections.max_age_grace, absl::InfiniteDuration());  // streams run on
  EXPECT_EQ(config->connections.min_ping_interval, absl::Seconds(10));
  EXPECT_TRUE(config->connections.permit_pings_without_calls);
  EXPECT_EQ(config->connections.max_concurrent_streams, 100);

  config = Parse({"--max-connection-age=0", "--max-connection-age-grace=1m",
                  "--keepalive-min-ping-interval=30s", "--keepalive-permit-without-calls=false",
                  "--max-concurrent-streams=8"});
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->connections.max_age, absl::ZeroDuration());
  EXPECT_EQ(config->connections.max_age_grace, absl::Minutes(1));
  EXPECT_EQ(config->connections.min_ping_interval, absl::Seconds(30));
  EXPECT_FALSE(config->connections.permit_pings_without_calls);
  EXPECT_EQ(config->connections.max_concurrent_streams, 8);
  EXPECT_THAT(Parse({"--max-concurrent-streams=0"}).status().message(),
              HasSubstr("--max-concurrent-streams"));
}

TEST(ConfigTest, UpstreamMaxConnectionsFromFlagOrEnvironment) {
  absl::StatusOr<Config> config = Parse({});
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->upstream.http.max_connections, 64u);
  config = Parse({}, {{"CONTACTS_GATEWAY_UPSTREAM_MAX_CONNECTIONS", "8"}});
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->upstream.http.max_connections, 8u);
  config =
      Parse({"--upstream-max-connections=2"}, {{"CONTACTS_GATEWAY_UPSTREAM_MAX_CONNECTIONS", "8"}});
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->upstream.http.max_connections, 2u);
  EXPECT_THAT(Parse({"--upstream-max-connections=0"}).status().message(),
              HasSubstr("--upstream-max-connections"));
  EXPECT_THAT(HelpText(), HasSubstr("--upstream-max-connections=N"));
  EXPECT_THAT(HelpText(), HasSubstr("env CONTACTS_GATEWAY_UPSTREAM_MAX_CONNECTIONS, default 64"));
}

TEST(ConfigTest, RejectedCredentialsAreRememberedForAShortBoundedTime) {
  absl::StatusOr<Config> config = Parse({});
  ASSERT_TRUE(config.ok());
  EXPECT_EQ(config->credential_memory.ttl, absl::Seconds(30));
  EXPECT_EQ(config->credential_memory.max_entries, 10000u);
  config = Parse({"--rejected-credentials-ttl=0", "--rejected-credentials-max=50"});
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->credential_memory.ttl, absl::ZeroDuration());
  EXPECT_EQ(config->credential_memory.max_entries, 50u);
  EXPECT_THAT(Parse({"--rejected-credentials-max=0"}).status().message(),
              HasSubstr("--rejected-credentials-max"));
}

TEST(ConfigTest, BoundsOnWhatCallersCanMakeTheGatewayHold) {
  absl::StatusOr<Config> config = Parse({});
  ASSERT_TRUE(config.ok());
  EXPECT_EQ(config->connections.max_request_bytes, 4096);
  EXPECT_EQ(config->connections.memory_quota, size_t{64} << 20);
  EXPECT_EQ(config->connections.max_idle, absl::Minutes(2));
  config =
      Parse({"--max-request-bytes=8192", "--memory-quota=33554432", "--max-connection-idle=0"});
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->connections.max_request_bytes, 8192);
  EXPECT_EQ(config->connections.memory_quota, size_t{32} << 20);
  EXPECT_EQ(config->connections.max_idle, absl::ZeroDuration());
  EXPECT_THAT(Parse({"--max-request-bytes=100"}).status().message(),
              HasSubstr("--max-request-bytes"));
  EXPECT_THAT(Parse({"--memory-quota=1000"}).status().message(), HasSubstr("--memory-quota"));
}

TEST(ConfigTest, SecretsNeverAppearInErrorsOrHelp) {
  absl::StatusOr<Config> config = Parse({"--client-secret-file=/nonexistent/secret"});
  EXPECT_FALSE(config.ok());
  config = Parse({"--client-id=a"}, {{"CONTACTS_GATEWAY_CLIENT_SECRET", ""}});
  EXPECT_FALSE(config.ok());
  config = Parse({"--client-id=a", "--client-secret=hunter2-secret"});
  ASSERT_TRUE(config.ok());
  EXPECT_EQ(config->client_secret, "hunter2-secret");
  EXPECT_THAT(HelpText(), HasSubstr("CONTACTS_GATEWAY_CLIENT_SECRET_FILE"));
  EXPECT_THAT(HelpText(), Not(HasSubstr("hunter2")));
}

TEST(ConfigTest, ResumeTokenKeysComeFromAFileThatIsNeverQuoted) {
  absl::StatusOr<Config> config = Parse({});
  ASSERT_TRUE(config.ok());
  EXPECT_EQ(config->stream.resume_token_keys, ResumeTokenKeys::ProcessRandom());

  const std::string dir = ::testing::TempDir();
  const std::string good = dir + "/config_test_resume.keys";
  const std::string key = "config-test-signing-key-0123456789abcdef";
  std::ofstream(good) << key << "\n";
  config = Parse({}, {{"CONTACTS_GATEWAY_RESUME_TOKEN_KEY_FILE", good}});
  ASSERT_TRUE(config.ok()) << config.status();
  ASSERT_NE(config->stream.resume_token_keys, ResumeTokenKeys::ProcessRandom());
  const uint64_t list = ListFingerprint("st", "cl", "acct");
  absl::StatusOr<std::shared_ptr<const ResumeTokenKeys>> same = ResumeTokenKeys::Create({key});
  ASSERT_TRUE(same.ok());
  EXPECT_TRUE(DecodeResumeToken(EncodeResumeToken({}, list, *config->stream.resume_token_keys),
                                list, **same)
                  .ok());

  const std::string bad = dir + "/config_test_short.keys";
  std::ofstream(bad) << "too-short-S3CR3T\n";
  absl::StatusOr<Config> refused = Parse({"--resume-token-key-file", bad});
  EXPECT_THAT(refused.status().message(),
              HasSubstr("--resume-token-key-file: line 1: a key needs at least 32 bytes"));
  EXPECT_THAT(refused.status().message(), Not(HasSubstr("S3CR3T")));
  EXPECT_THAT(Parse({"--resume-token-key-file=/nonexistent/keys"}).status().message(),
              HasSubstr("cannot read the file"));
  EXPECT_THAT(HelpText(), HasSubstr("CONTACTS_GATEWAY_RESUME_TOKEN_KEY_FILE, default (none)"));
}

TEST(ConfigTest, SecurityFlagsGoTogetherAndDefaultToClosed) {
  absl::StatusOr<Config> config = Parse({});
  ASSERT_TRUE(config.ok());
  EXPECT_FALSE(config->authz.allow_unauthenticated);
  EXPECT_TRUE(config->tls.cert_file.empty());
  EXPECT_THAT(Parse({"--tls-cert=a.pem"}).status().message(),
              HasSubstr("--tls-cert and --tls-key go together"));
  EXPECT_THAT(Parse({"--tls-client-ca=ca.pem"}).status().message(), HasSubstr("needs --tls-cert"));
  EXPECT_THAT(
      Parse({"--tls-cert=a", "--tls-key=b", "--tls-require-client-cert"}).status().message(),
      HasSubstr("needs --tls-client-ca"));
  EXPECT_THAT(
      Parse({"--tls-cert=a", "--tls-key=b", "--tls-reload-interval=100ms"}).status().message(),
      HasSubstr("at least 1s"));
  config = Parse({"--tls-cert=a", "--tls-key=b", "--tls-client-ca=c", "--tls-require-client-cert",
                  "--allow-unauthenticated-callers", "--max-streams-per-caller=3",
                  "--credentials-file=f"});
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_TRUE(config->tls.require_client_cert);
  EXPECT_TRUE(config->authz.allow_unauthenticated);
  EXPECT_EQ(config->authz.max_streams_per_caller, 3);
  EXPECT_EQ(config->credentials_file, "f");
  EXPECT_EQ(config->authz.pass_through_auth, PassThroughAuth::kAuto);
  config = Parse({"--pass-through-requires-auth=false"});
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->authz.pass_through_auth, PassThroughAuth::kOptional);
  EXPECT_THAT(Parse({"--pass-through-requires-auth=true"}).status().message(),
              HasSubstr("needs --credentials-file"));
  config = Parse({"--pass-through-requires-auth", "TRUE", "--credentials-file=f"});
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->authz.pass_through_auth, PassThroughAuth::kRequired);
  EXPECT_THAT(Parse({"--pass-through-requires-auth=maybe"}).status().message(),
              HasSubstr("expected auto, true or false"));
  EXPECT_THAT(HelpText(), HasSubstr("CONTACTS_GATEWAY_PASS_THROUGH_REQUIRES_AUTH, default auto"));
}

TEST(ConfigTest, RateLimitsPerAccountAddUp) {
  absl::StatusOr<Config> config =
      Parse({"--rate-limit=120", "--account-rate-limit=a1=30,a2=0", "--account-rate-limit",
             "a3=600", "--page-cache-bytes=0", "--page-cache-ttl=5s"});
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->rate.per_minute, 120);
  EXPECT_EQ(config->rate.per_account.size(), 3u);
  EXPECT_EQ(config->rate.per_account.at("a1"), 30);
  EXPECT_EQ(config->rate.per_account.at("a2"), 0);
  EXPECT_EQ(config->rate.per_account.at("a3"), 600);
  EXPECT_EQ(config->cache.max_bytes, 0u);
  EXPECT_EQ(config->cache.ttl, absl::Seconds(5));
  EXPECT_THAT(Parse({"--account-rate-limit=a1"}).status().message(),
              HasSubstr("--account-rate-limit"));
  EXPECT_THAT(Parse({"--account-rate-limit==5"}).status().message(), HasSubstr("ACCOUNT=N"));
  EXPECT_THAT(Parse({"--rate-limit-burst=0"}).status().message(), HasSubstr("--rate-limit-burst"));
}

TEST(ConfigTest, DurationsTakeSecondsOrUnits) {
  absl::StatusOr<Config> config = Parse({"--upstream-timeout=2.5", "--drain-timeout=1m"});
  ASSERT_TRUE(config.ok());
  EXPECT_EQ(config->upstream.http.request_timeout, absl::Milliseconds(2500));
  EXPECT_EQ(config->drain_timeout, absl::Minutes(1));
}

TEST(ConfigTest, SharedStateIsOffUnlessAUrlIsGiven) {
  absl::StatusOr<Config> config = Parse({});
  ASSERT_TRUE(config.ok());
  EXPECT_EQ(config->shared_state.url, "");
  EXPECT_FALSE(config->shared_state.pages);
  EXPECT_THAT(Parse({"--shared-state-pages"}).status().message(),
              HasSubstr("--shared-state-pages needs --shared-state"));

  config = Parse({"--shared-state=rediss://gw@redis:6380/1", "--shared-state-pages",
                  "--shared-state-lease=3s", "--shared-state-prefix=fleet-a:"},
                 {{"CONTACTS_GATEWAY_SHARED_STATE_PASSWORD", "redis-pw-3e1b"},
                  {"CONTACTS_GATEWAY_SHARED_STATE_TIMEOUT", "250ms"}});
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->shared_state.url, "rediss://gw@redis:6380/1");
  EXPECT_EQ(config->shared_state.password, "redis-pw-3e1b");
  EXPECT_TRUE(config->shared_state.pages);
  EXPECT_EQ(config->shared_state.lease, absl::Seconds(3));
  EXPECT_EQ(config->shared_state.command_timeout, absl::Milliseconds(250));
  EXPECT_EQ(config->shared_state.prefix, "fleet-a:");
}

TEST(ConfigTest, TheRedisPasswordIsNeverAFlagNorShown) {
  EXPECT_THAT(Parse({"--shared-state-password=x"}).status().message(),
              HasSubstr("unknown flag --shared-state-password"));
  absl::StatusOr<Config> in_url = Parse({"--shared-state=redis://gw:redis-pw-3e1b@redis"});
  EXPECT_THAT(in_url.status().message(), HasSubstr("must not hold a password"));
  EXPECT_THAT(in_url.status().message(), Not(HasSubstr("redis-pw-3e1b")));
  EXPECT_THAT(Parse({"--shared-state=redis://gw@redis"}).status().message(),
              HasSubstr("no password is set"));
  EXPECT_THAT(HelpText(), HasSubstr("CONTACTS_GATEWAY_SHARED_STATE_PASSWORD"));
  EXPECT_THAT(Parse({"--shared-state=http://redis"}).status().message(),
              HasSubstr("--shared-state: "));
}

}  // namespace
}  // namespace contacts::gateway
