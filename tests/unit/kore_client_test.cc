// The Kore.ai adapter's pure parts: the request target, the base URL, and the rate-limit facts of
// an answer. (Its exchanges over real sockets: tests/integration/upstream_client_test.cc.)
#include "server/upstream/kore_client.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace contacts::gateway {
namespace {

using ::testing::HasSubstr;

const absl::Time kStart = absl::FromUnixSeconds(1'700'000'000);

TEST(ContactsTargetTest, PercentEncodesTheIdsAndNamesThePagingParameters) {
  PageRequest request;
  request.stream_id = "st 1";
  request.list_id = "cl/2";
  request.account_id = "a&b";
  request.skip = 100;
  request.limit = 50;
  EXPECT_EQ(ContactsTarget(request, "offset", "size"),
            "/campaign/api/v2/public/st%201/campaign/contactList/cl%2F2/getAllContacts"
            "?accountId=a%26b&offset=100&size=50");
}

TEST(BaseUrlTest, SplitsHostPortAndPrefix) {
  absl::StatusOr<BaseUrl> url = ParseBaseUrl("https://[::1]:8443/kore/", false);
  ASSERT_TRUE(url.ok()) << url.status();
  EXPECT_TRUE(url->tls);
  EXPECT_EQ(url->host, "::1");
  EXPECT_EQ(url->port, "8443");
  EXPECT_EQ(url->base_path, "/kore");
  EXPECT_EQ(ParseBaseUrl("https://platform.kore.ai", false)->port, "443");
  EXPECT_THAT(ParseBaseUrl("http://localhost:1", false).status().message(),
              HasSubstr("plain http"));
  EXPECT_EQ(ParseBaseUrl("https://user@host", false).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ParseBaseUrl("https://host:99999", false).status().code(),
            absl::StatusCode::kInvalidArgument);
}

HttpResponse Answer(int status, std::vector<std::pair<std::string, std::string>> headers) {
  HttpResponse response;
  response.status = status;
  response.headers = std::move(headers);
  return response;
}

TEST(RateLimitFactsTest, ReadsDeltaSecondsAndUnixTimes) {
  RateLimitFacts facts = ParseRateLimitFacts(
      Answer(200, {{"RateLimit-Remaining", "5"}, {"ratelimit-reset", "12"}}), "", kStart);
  EXPECT_FALSE(facts.throttled);
  EXPECT_EQ(facts.remaining, 5);
  EXPECT_EQ(facts.reset, absl::Seconds(12));
  facts = ParseRateLimitFacts(
      Answer(200, {{"X-RateLimit-Remaining", "0"}, {"X-RateLimit-Reset", "1700000042"}}), "",
      kStart);
  EXPECT_EQ(facts.remaining, 0);
  EXPECT_EQ(facts.reset, absl::Seconds(42));
  facts = ParseRateLimitFacts(Answer(200, {{"RateLimit-Reset", "soon"}}), "", kStart);
  EXPECT_FALSE(facts.remaining.has_value());
  EXPECT_FALSE(facts.reset.has_value());
}

TEST(RateLimitFactsTest, A429OrTheRateLimitMessageIsThrottledWithItsRetryAfter) {
  RateLimitFacts facts = ParseRateLimitFacts(Answer(429, {{"Retry-After", "7"}}), "", kStart);
  EXPECT_TRUE(facts.throttled);
  EXPECT_EQ(facts.retry_after, absl::Seconds(7));
  facts = ParseRateLimitFacts(Answer(400, {}),
                              "You've exceeded the per-minute rate limit. Please wait for "
                              "sometime before retrying.",
                              kStart);
  EXPECT_TRUE(facts.throttled);
  EXPECT_FALSE(facts.retry_after.has_value());
  EXPECT_FALSE(ParseRateLimitFacts(Answer(503, {{"Retry-After", "1"}}), "", kStart).throttled);
}

}  // namespace
}  // namespace contacts::gateway
