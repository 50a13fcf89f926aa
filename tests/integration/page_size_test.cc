// The largest page the upstream serves, found and remembered per account: the contacts-gateway
// binary against the real kore-sim process, capping pages silently (max_limit) or refusing larger
// ones with 400 (reject_limit_above), set per test through POST /_sim/config. kore-sim's request
// log shows each request's limit and status; the gateway's log and /metrics show what it learned.
#include <gmock/gmock.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "contacts/v1/contacts.grpc.pb.h"
#include "simdjson.h"
#include "tests/integration/sim_suite.h"
#include "tests/integration/test_support.h"

namespace contacts::gateway {
namespace {

using ::contacts::testing::ChildProcess;
using ::contacts::testing::HttpRequest;
using ::contacts::testing::KoreSim;
using ::contacts::testing::ReadFile;
using ::contacts::testing::SplitLines;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kAppId[] = "cs-pagesize";
constexpr char kSecret[] = "pagesize-secret-5e1b";
constexpr char kAccount[] = "acct-ps";

class PageSizeTest : public ::contacts::testing::SimSuite {
 protected:
  static void SetUpTestSuite() {
    sim_ = KoreSim::Start({"--app", absl::StrCat(kAppId, "=", kSecret)});
    ASSERT_NE(sim_, nullptr);
  }

  // A fresh gateway (nothing remembered) with its defaults: no --page-size, --max-page-size 1000.
  void StartGateway() {
    process_ = contacts::testing::StartGatewayProcess(
        *sim_,
        {.client_id = kAppId, .client_secret = kSecret, .extra = {"--metrics-accounts", "4"}});
    ASSERT_NE(process_, nullptr);
    stub_ = contacts::v1::ContactService::NewStub(grpc::CreateChannel(
        absl::StrCat("127.0.0.1:", process_->port()), grpc::InsecureChannelCredentials()));
  }

  struct Result {
    grpc::Status status;
    std::vector<std::string> ids;
  };
  Result Stream(const std::string& list, int32_t page_size = 0) {
    contacts::v1::StreamContactsRequest request;
    request.set_stream_id("st-ps");
    request.set_contact_list_id(list);
    request.set_account_id(kAccount);
    request.set_page_size(page_size);
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
    auto reader = stub_->StreamContacts(&context, request);
    Result result;
    contacts::v1::StreamContactsResponse response;
    while (reader->Read(&response)) {
      for (const auto& contact : response.contacts()) result.ids.push_back(contact.id());
    }
    result.status = reader->Finish();
    return result;
  }

  // The requests kore-sim logged for `list`, oldest first.
  struct Asked {
    int64_t skip;
    int64_t limit;
    int64_t status;
  };
  std::vector<Asked> Requests(const std::string& list) {
    contacts::testing::HttpResult log = sim_->Control("GET", "/_sim/requests?list=" + list);
    EXPECT_EQ(log.status, 200);
    simdjson::dom::parser parser;
    simdjson::dom::element root = parser.parse(log.body);
    std::vector<Asked> out;
    for (simdjson::dom::element entry : root["requests"].get_array()) {
      out.push_back(
          {entry["skip"].get_int64(), entry["limit"].get_int64(), entry["status"].get_int64()});
    }
    return out;
  }

  std::string Scrape() {
    contacts::testing::HttpResult result = HttpRequest("GET", process_->admin_port(), "/metrics");
    EXPECT_EQ(result.status, 200);
    return result.body;
  }
  // The gateway's log lines saying what it learned.
  std::vector<std::string> LearnedLines() {
    std::vector<std::string> out;
    for (const std::string& line : SplitLines(ReadFile(process_->stdout_path()))) {
      if (line.find("the upstream serves pages of at most") != std::string::npos) {
        out.push_back(line);
      }
    }
    return out;
  }

  std::unique_ptr<ChildProcess> process_;
  std::unique_ptr<contacts::v1::ContactService::Stub> stub_;
};

TEST_F(PageSizeTest, ASilentCapIsLearnedFromTheFirstPageAndAskedForAtOnceAfterwards) {
  ASSERT_EQ(sim_->Control("POST", "/_sim/config?max_limit=100").status, 200);
  StartGateway();
  Result first = Stream("cl-sim-1234");
  ASSERT_TRUE(first.status.ok()) << first.status.error_message();
  EXPECT_EQ(first.ids, sim_->Ids("cl-sim-1234"));
  std::vector<Asked> asked = Requests("cl-sim-1234");
  ASSERT_FALSE(asked.empty());
  EXPECT_EQ(asked[0].limit, 1000);  // --max-page-size first
  for (size_t i = 1; i < asked.size(); ++i) EXPECT_EQ(asked[i].limit, 100) << "request " << i;
  for (const Asked& a : asked) EXPECT_EQ(a.status, 200) << "skip=" << a.skip;
  EXPECT_EQ(asked.size(), 13u);  // 100, then 99 new contacts per page (the seam): none wasted

  // The account's next stream asks for 100 at once; a caller's larger page size is cut to it, a
  // smaller one honoured.
  Result second = Stream("cl-sim-777");
  ASSERT_TRUE(second.status.ok()) << second.status.error_message();
  EXPECT_EQ(second.ids, sim_->Ids("cl-sim-777"));
  asked = Requests("cl-sim-777");
  ASSERT_EQ(asked.size(), 8u);
  for (const Asked& a : asked) EXPECT_EQ(a.limit, 100) << "skip=" << a.skip;
  ASSERT_TRUE(Stream("cl-sim-300", 500).status.ok());
  for (const Asked& a : Requests("cl-sim-300")) EXPECT_EQ(a.limit, 100) << "skip=" << a.skip;
  ASSERT_TRUE(Stream("cl-sim-120", 30).status.ok());
  EXPECT_EQ(Requests("cl-sim-120")[1].limit, 31);

  std::vector<std::string> learned = LearnedLines();
  ASSERT_EQ(learned.size(), 1u);  // one line when it changes
  EXPECT_THAT(learned[0], HasSubstr("\"severity\":\"INFO\""));
  EXPECT_THAT(learned[0], HasSubstr("at most 100 for account acct-ps: a page of 1000 came back "
                                    "with 100 contacts and more to follow"));
  EXPECT_THAT(learned[0], HasSubstr("\"account_id\":\"acct-ps\""));
  EXPECT_THAT(Scrape(),
              HasSubstr("contacts_gateway_account_upstream_page_size{account=\"acct-ps\"} 100\n"));
}

TEST_F(PageSizeTest, ALimitRefusedWith400StepsDownWithoutAnErrorAndIsNeverAskedAgain) {
  ASSERT_EQ(sim_->Control("POST", "/_sim/config?reject_limit_above=100").status, 200);
  StartGateway();
  Result first = Stream("cl-sim-1234");
  ASSERT_TRUE(first.status.ok()) << first.status.error_message();
  EXPECT_EQ(first.ids, sim_->Ids("cl-sim-1234"));
  std::vector<Asked> asked = Requests("cl-sim-1234");
  ASSERT_GE(asked.size(), 2u);
  EXPECT_EQ(asked[0].limit, 1000);
  EXPECT_EQ(asked[0].status, 400);
  int wasted = 0;
  for (const Asked& a : asked) wasted += a.status != 200;
  EXPECT_EQ(wasted, 1);  // "limit must be between 1 and 100" names the size that works
  for (size_t i = 1; i < asked.size(); ++i) {
    EXPECT_EQ(asked[i].limit, 100) << "request " << i;
    EXPECT_EQ(asked[i].status, 200) << "request " << i;
  }
  EXPECT_EQ(asked.size(), 1u + 13u);

  Result second = Stream("cl-sim-777");
  ASSERT_TRUE(second.status.ok()) << second.status.error_message();
  EXPECT_EQ(second.ids, sim_->Ids("cl-sim-777"));
  asked = Requests("cl-sim-777");
  ASSERT_EQ(asked.size(), 8u);
  for (const Asked& a : asked) {
    EXPECT_EQ(a.limit, 100) << "skip=" << a.skip;
    EXPECT_EQ(a.status, 200) << "skip=" << a.skip;
  }
  std::vector<std::string> learned = LearnedLines();
  ASSERT_EQ(learned.size(), 1u);
  EXPECT_THAT(learned[0], HasSubstr("at most 100 for account acct-ps: a page of 1000 was refused "
                                    "(HTTP 400), one of 100 was served"));
  const std::string scrape = Scrape();
  EXPECT_THAT(scrape, HasSubstr("contacts_gateway_upstream_page_size_refusals_total 1\n"));
  EXPECT_THAT(scrape,
              HasSubstr("contacts_gateway_account_upstream_page_size{account=\"acct-ps\"} 100\n"));
}

// A 400 that does not name the limit may still be about it while the page asked is above the
// documented sample (50): that size is tried once, and when it is refused too the caller gets the
// upstream's answer, and nothing is learned.
TEST_F(PageSizeTest, ABadRequestNotAboutTheLimitReachesTheCallerAfterOneTryAtTheSample) {
  ASSERT_EQ(sim_->Control("POST", "/_sim/faults?kind=status&code=400&count=-1").status, 200);
  StartGateway();
  Result result = Stream("cl-sim-500");
  EXPECT_EQ(result.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(result.status.error_message(), HasSubstr("Simulated upstream error"));
  EXPECT_TRUE(result.ids.empty());
  std::vector<Asked> asked = Requests("cl-sim-500");
  ASSERT_EQ(asked.size(), 2u);
  EXPECT_EQ(asked[0].limit, 1000);
  EXPECT_EQ(asked[1].limit, 50);
  EXPECT_THAT(LearnedLines(), ::testing::IsEmpty());
  EXPECT_THAT(Scrape(), Not(HasSubstr("contacts_gateway_account_upstream_page_size{")));
}

}  // namespace
}  // namespace contacts::gateway
