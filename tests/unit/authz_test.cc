#include "server/service/authz.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>

#include <unistd.h>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "server/service/credentials.h"

namespace contacts::gateway {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

std::string HexSha256(const std::string& token) { return absl::BytesToHexString(Sha256(token)); }

std::string FileJson(const std::string& a_accounts = R"(["acct-a"])") {
  return absl::StrCat(
      R"({"accounts": {"acct-a": {"client_id": "cs-a", "client_secret": "secret-a-91f3"},
                                      "acct-b": {"client_id": "cs-b", "client_secret": "secret-b-22c8", "jti": true}},
                         "callers": [{"name": "svc-a", "token_sha256": ")",
      HexSha256("token-a"), R"(", "accounts": )", a_accounts, R"(},
                                     {"name": "svc-m", "mtls_subject": "CN=svc-m", "accounts": ["*"]}]})");
}

// A new file of its own (tests run in parallel processes: a name from rand(), unseeded, was the
// same in every one of them).
std::string WriteFile(const std::string& content) {
  std::string path = absl::StrCat(::testing::TempDir(), "/credentials-XXXXXX");
  const int fd = mkstemp(path.data());
  EXPECT_GE(fd, 0) << path;
  if (fd >= 0) close(fd);
  std::ofstream(path) << content;
  return path;
}

CallerIdentity Bearer(const std::string& token) {
  return {.has_bearer = true, .bearer_token = token};
}

TEST(CredentialsFileTest, ParsesAccountsAndCallers) {
  absl::StatusOr<CredentialsFile> file = ParseCredentialsFile(FileJson());
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_EQ(file->accounts.at("acct-a").client_id, "cs-a");
  EXPECT_FALSE(file->accounts.at("acct-a").jti);
  EXPECT_TRUE(file->accounts.at("acct-b").jti);
  ASSERT_EQ(file->callers.size(), 2u);
  EXPECT_EQ(file->callers[0].token_sha256, Sha256("token-a"));
  EXPECT_TRUE(file->callers[0].Allows("acct-a"));
  EXPECT_FALSE(file->callers[0].Allows("acct-b"));
  EXPECT_TRUE(file->callers[1].Allows("anything"));
}

TEST(CredentialsFileTest, ErrorsNameThePlaceButNeverAValue) {
  const std::pair<std::string, std::string> kBad[] = {
      {R"({"accounts": {"acct-a": {"client_id": "cs-a"}}})",
       "accounts.acct-a: needs client_id and client_secret"},
      {R"({"accounts": {"acct-a": {"client_id": "cs-a", "client_secret": 7}}})",
       "accounts.acct-a.client_secret"},
      {R"({"accounts": {"acct-a": {"client_id": "cs-a", "client_sercet": "hunter2-value"}}})",
       "unknown key"},
      {R"({"callers": [{"name": "x", "accounts": ["*"]}]})",
       "callers[0]: needs token_sha256 or mtls_subject"},
      {R"({"callers": [{"name": "x", "token_sha256": "hunter2-value"}]})",
       "callers[0].token_sha256: expected 64 hex"},
      {R"({"hunter2-value": 1})", "top level: unknown key"},
      {R"(["hunter2-value")", "top level: expected a JSON object"},
  };
  for (const auto& [json, message] : kBad) {
    absl::StatusOr<CredentialsFile> file = ParseCredentialsFile(json);
    ASSERT_FALSE(file.ok()) << json;
    EXPECT_EQ(file.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(file.status().message(), HasSubstr(message));
    EXPECT_THAT(file.status().message(), Not(HasSubstr("hunter2")));
  }
}

TEST(AuthorizerTest, BearerCallerGetsOnlyItsAccounts) {
  auto store = *CredentialStore::Create({.file = WriteFile(FileJson())});
  Authorizer authz(*store, {});
  absl::StatusOr<Grant> a = authz.Authorize(Bearer("token-a"), "acct-a");
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(a->caller, "svc-a");
  EXPECT_EQ(a->minter->client_id(), "cs-a");

  absl::StatusOr<Grant> b = authz.Authorize(Bearer("token-a"), "acct-b");
  EXPECT_EQ(b.status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(b.status().message(), HasSubstr("caller svc-a may not read account acct-b"));
}

TEST(AuthorizerTest, UnknownOrMissingIdentityIsUnauthenticated) {
  auto store = *CredentialStore::Create({.file = WriteFile(FileJson())});
  Authorizer authz(*store, {});
  EXPECT_EQ(authz.Authorize(Bearer("token-x"), "acct-a").status().code(),
            absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(authz.Authorize(Bearer(""), "acct-a").status().code(),
            absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(authz.Authorize({}, "acct-a").status().code(), absl::StatusCode::kUnauthenticated);
  // A bad token is not made good by a certificate.
  CallerIdentity both = Bearer("token-x");
  both.mtls_subjects = {"CN=svc-m"};
  EXPECT_EQ(authz.Authorize(both, "acct-a").status().code(), absl::StatusCode::kUnauthenticated);
}

TEST(AuthorizerTest, MtlsSubjectIdentifiesACaller) {
  auto store = *CredentialStore::Create({.file = WriteFile(FileJson())});
  Authorizer authz(*store, {});
  absl::StatusOr<Grant> grant = authz.Authorize({.mtls_subjects = {"CN=svc-m"}}, "acct-b");
  ASSERT_TRUE(grant.ok()) << grant.status();
  EXPECT_EQ(grant->minter->client_id(), "cs-b");
  EXPECT_EQ(authz.Authorize({.mtls_subjects = {"CN=svc-m"}}, "acct-z").status().code(),
            absl::StatusCode::kPermissionDenied);  // no credentials held for it
}

TEST(AuthorizerTest, UnauthenticatedCallersOnlyWithTheOptOut) {
  auto store = *CredentialStore::Create({.default_app = {"cs-default", "secret-d"}});
  Authorizer strict(*store, {});
  EXPECT_EQ(strict.Authorize({}, "acct-any").status().code(), absl::StatusCode::kUnauthenticated);
  Authorizer opened(*store, {.allow_unauthenticated = true});
  absl::StatusOr<Grant> grant = opened.Authorize({}, "acct-any");
  ASSERT_TRUE(grant.ok());
  EXPECT_EQ(grant->minter->client_id(), "cs-default");
}

TEST(AuthorizerTest, LimitsConcurrentStreamsPerCaller) {
  auto store = *CredentialStore::Create({.file = WriteFile(FileJson())});
  Authorizer authz(*store, {.max_streams_per_caller = 2});
  absl::StatusOr<Grant> one = authz.Authorize(Bearer("token-a"), "acct-a");
  absl::StatusOr<Grant> two = authz.Authorize(Bearer("token-a"), "acct-a");
  ASSERT_TRUE(one.ok() && two.ok());
  absl::StatusOr<Grant> three = authz.Authorize(Bearer("token-a"), "acct-a");
  EXPECT_EQ(three.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_TRUE(authz.Authorize({.mtls_subjects = {"CN=svc-m"}}, "acct-a").ok());  // another caller
  *one = Grant{};                                                                // a stream ends
  EXPECT_TRUE(authz.Authorize(Bearer("token-a"), "acct-a").ok());
}

TEST(AuthorizerTest, PassThroughCallersAreCountedByTheirJwtWhenAuthenticationIsOptional) {
  auto store = *CredentialStore::Create({});  // no credentials file: no caller rules
  Authorizer authz(*store, {.max_streams_per_caller = 2});
  absl::StatusOr<Grant> one = authz.AuthorizePassThrough({}, "acct-a", "jwt-one");
  absl::StatusOr<Grant> two = authz.AuthorizePassThrough({}, "acct-b", "jwt-one");
  ASSERT_TRUE(one.ok() && two.ok());
  EXPECT_EQ(one->caller, "jwt:" + HexSha256("jwt-one").substr(0, 16));
  EXPECT_EQ(one->minter, nullptr);  // the caller's own credentials go upstream
  absl::StatusOr<Grant> three = authz.AuthorizePassThrough({}, "acct-a", "jwt-one");
  EXPECT_EQ(three.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(three.status().message(), HasSubstr("--max-streams-per-caller"));
  EXPECT_THAT(three.status().message(), Not(HasSubstr("jwt-one")));
  EXPECT_TRUE(authz.AuthorizePassThrough({}, "acct-a", "jwt-two").ok());  // another caller
  *one = Grant{};
  EXPECT_TRUE(authz.AuthorizePassThrough({}, "acct-a", "jwt-one").ok());
}

TEST(AuthorizerTest, PassThroughCallersMustAuthenticateWheneverCallerRulesExist) {
  auto store = *CredentialStore::Create({.file = WriteFile(FileJson())});
  Authorizer authz(*store, {.max_streams_per_caller = 1});  // auto
  absl::StatusOr<Grant> none = authz.AuthorizePassThrough({}, "acct-a", "jwt-one");
  EXPECT_EQ(none.status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_THAT(none.status().message(), HasSubstr("callers that send their own JWT too"));
  EXPECT_EQ(authz.AuthorizePassThrough(Bearer("token-x"), "acct-a", "jwt-one").status().code(),
            absl::StatusCode::kUnauthenticated);
  // A known caller's rule must list the account, and its streams count under its name whatever
  // JWT each sends.
  EXPECT_EQ(authz.AuthorizePassThrough(Bearer("token-a"), "acct-b", "jwt-one").status().code(),
            absl::StatusCode::kPermissionDenied);
  absl::StatusOr<Grant> a = authz.AuthorizePassThrough(Bearer("token-a"), "acct-a", "jwt-one");
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(a->caller, "svc-a");
  EXPECT_EQ(authz.AuthorizePassThrough(Bearer("token-a"), "acct-a", "jwt-two").status().code(),
            absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(authz.Authorize(Bearer("token-a"), "acct-a").status().code(),
            absl::StatusCode::kResourceExhausted);  // one limit for both kinds of stream

  // Optional: anyone may pass through, told apart by a verified identity when there is one.
  Authorizer optional(*store, {.pass_through_auth = PassThroughAuth::kOptional});
  EXPECT_TRUE(optional.AuthorizePassThrough({}, "acct-b", "jwt-one").ok());
  absl::StatusOr<Grant> m =
      optional.AuthorizePassThrough({.mtls_subjects = {"CN=svc-m"}}, "acct-z", "jwt-one");
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->caller, "svc-m");
}

TEST(AuthorizerTest, RequiredPassThroughAuthenticationRefusesEveryoneWithoutRules) {
  auto store = *CredentialStore::Create({.default_app = {"cs-default", "secret-d"}});
  Authorizer authz(*store, {.pass_through_auth = PassThroughAuth::kRequired});
  EXPECT_EQ(authz.AuthorizePassThrough({}, "acct-a", "jwt-one").status().code(),
            absl::StatusCode::kUnauthenticated);
  Authorizer automatic(*store, {});  // auto, and no caller rules: optional
  EXPECT_TRUE(automatic.AuthorizePassThrough({}, "acct-a", "jwt-one").ok());
}

TEST(CredentialStoreTest, ReloadsAChangedFileAndKeepsTheOldOneWhenTheNewIsBad) {
  std::string path = WriteFile(FileJson());
  auto store = *CredentialStore::Create({.file = path, .reload_interval = absl::Hours(1)});
  Authorizer authz(*store, {});
  EXPECT_FALSE(store->Reload());  // unchanged
  std::ofstream(path) << FileJson(R"(["acct-a", "acct-b"])");
  EXPECT_TRUE(store->Reload());
  EXPECT_TRUE(authz.Authorize(Bearer("token-a"), "acct-b").ok());
  std::ofstream(path) << R"({"accounts": {"acct-a": {"client_secret": "hunter2"}})";
  EXPECT_FALSE(store->Reload());
  EXPECT_TRUE(authz.Authorize(Bearer("token-a"), "acct-b").ok());
}

TEST(CredentialStoreTest, UnreadableFileFailsAtStart) {
  absl::StatusOr<std::unique_ptr<CredentialStore>> store =
      CredentialStore::Create({.file = "/nonexistent/creds.json"});
  EXPECT_EQ(store.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(store.status().message(), HasSubstr("/nonexistent/creds.json"));
}

}  // namespace
}  // namespace contacts::gateway
