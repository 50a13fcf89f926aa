// The gateway (in-process) against an upstream that answers with hostile bytes: every answer
// must end the stream with a clear status while the gateway's memory stays bounded. The peer is
// a raw socket server in this test, since these answers are not HTTP a real server would send.
#include <arpa/inet.h>
#include <gmock/gmock.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <functional>
#include <thread>

#include "absl/strings/str_cat.h"
#include "server/app/gateway_server.h"
#include "tests/integration/test_support.h"

namespace contacts::gateway {
namespace {

using ::testing::HasSubstr;

// Accepts connections on 127.0.0.1 and answers each request by calling `answer` with the socket;
// the answer writes what it likes, the connection is closed after it returns.
class HostileUpstream {
 public:
  explicit HostileUpstream(std::function<void(int fd)> answer) : answer_(std::move(answer)) {
    listener_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(listener_, reinterpret_cast<sockaddr*>(&address), sizeof address);
    listen(listener_, 16);
    socklen_t length = sizeof address;
    getsockname(listener_, reinterpret_cast<sockaddr*>(&address), &length);
    port_ = ntohs(address.sin_port);
    thread_ = std::thread([this] {
      for (;;) {
        int fd = accept(listener_, nullptr, nullptr);
        if (fd < 0) return;
        std::string request;
        char buffer[4096];
        while (request.find("\r\n\r\n") == std::string::npos) {
          ssize_t n = read(fd, buffer, sizeof buffer);
          if (n <= 0) break;
          request.append(buffer, static_cast<size_t>(n));
        }
        ++requests_;
        answer_(fd);
        close(fd);
      }
    });
  }
  ~HostileUpstream() {
    shutdown(listener_, SHUT_RDWR);
    close(listener_);
    thread_.join();
  }
  int port() const { return port_; }
  int requests() const { return requests_; }

  // Writes all of `data`; false once the peer is gone.
  static bool Send(int fd, std::string_view data) {
    while (!data.empty()) {
      ssize_t n = send(fd, data.data(), data.size(), MSG_NOSIGNAL);
      if (n <= 0) return false;
      data.remove_prefix(static_cast<size_t>(n));
    }
    return true;
  }
  static void SendResponse(int fd, const std::string& body) {
    Send(fd, absl::StrCat("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: ",
                          body.size(), "\r\n\r\n", body));
  }

 private:
  std::function<void(int)> answer_;
  int listener_ = -1;
  int port_ = 0;
  std::atomic<int> requests_{0};
  std::thread thread_;
};

class HostileUpstreamTest : public ::testing::Test {
 protected:
  // Streams one list from a gateway over `upstream` (no retries); returns the final status.
  grpc::Status StreamFrom(const HostileUpstream& upstream, size_t max_response_bytes = 32 << 20) {
    Config config;
    config.listen = "127.0.0.1:0";
    config.upstream.http.base_url = absl::StrCat("http://127.0.0.1:", upstream.port());
    config.upstream.http.allow_plain_http = true;
    config.upstream.http.max_response_bytes = max_response_bytes;
    config.upstream.http.request_timeout = absl::Seconds(20);
    config.retry.max_attempts = 1;
    config.client_id = "cs-hostile";
    config.client_secret = "hostile-secret";
    config.authz.allow_unauthenticated = true;
    config.rate.per_minute = 0;
    absl::StatusOr<std::unique_ptr<GatewayServer>> gateway = GatewayServer::Start(config);
    EXPECT_TRUE(gateway.ok()) << gateway.status();
    if (!gateway.ok()) return grpc::Status::CANCELLED;
    auto stub = contacts::v1::ContactService::NewStub(grpc::CreateChannel(
        absl::StrCat("127.0.0.1:", (*gateway)->port()), grpc::InsecureChannelCredentials()));
    contacts::v1::StreamContactsRequest request;
    request.set_stream_id("st-hostile");
    request.set_contact_list_id("cl-hostile");
    request.set_account_id("acct-hostile");
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
    auto reader = stub->StreamContacts(&context, request);
    contacts::v1::StreamContactsResponse response;
    while (reader->Read(&response)) contacts_ += response.contacts_size();
    grpc::Status status = reader->Finish();
    peak_rss_ = contacts::testing::ResidentBytes();
    (*gateway)->Shutdown(absl::ZeroDuration());
    return status;
  }

  void SetUp() override { baseline_rss_ = contacts::testing::ResidentBytes(); }
  // The gateway shares this process: its growth over the start of the test.
  int64_t RssGrowth() const { return peak_rss_ - baseline_rss_; }

  int64_t baseline_rss_ = 0;
  int64_t peak_rss_ = 0;
  int contacts_ = 0;
};

constexpr int64_t kMiB = 1 << 20;

TEST_F(HostileUpstreamTest, EndlessChunkedBodyStopsAtTheResponseCap) {
  HostileUpstream upstream([](int fd) {
    if (!HostileUpstream::Send(fd, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")) return;
    const std::string chunk = absl::StrCat("1000\r\n", std::string(4096, '['), "\r\n");
    while (HostileUpstream::Send(fd, chunk)) {
    }
  });
  grpc::Status status = StreamFrom(upstream, 4 * kMiB);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INTERNAL);
  EXPECT_THAT(status.error_message(), HasSubstr("exceeds 4194304 bytes"));
  EXPECT_LT(RssGrowth(), 64 * kMiB);
}

TEST_F(HostileUpstreamTest, GigabyteContentLengthIsRefusedBeforeTheBody) {
  HostileUpstream upstream([](int fd) {
    HostileUpstream::Send(fd, "HTTP/1.1 200 OK\r\nContent-Length: 1073741824\r\n\r\n{\"status\":");
    char byte;
    if (read(fd, &byte, 1) < 0) return;  // stall until the gateway hangs up
  });
  grpc::Status status = StreamFrom(upstream);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INTERNAL);
  EXPECT_THAT(status.error_message(), HasSubstr("exceeds 33554432 bytes"));
  EXPECT_LT(RssGrowth(), 64 * kMiB);
}

TEST_F(HostileUpstreamTest, EndlessHeadersStopAtTheHeaderCap) {
  HostileUpstream upstream([](int fd) {
    if (!HostileUpstream::Send(fd, "HTTP/1.1 200 OK\r\n")) return;
    const std::string header = absl::StrCat("X-Filler: ", std::string(1000, 'x'), "\r\n");
    while (HostileUpstream::Send(fd, header)) {
    }
  });
  grpc::Status status = StreamFrom(upstream);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INTERNAL);
  EXPECT_THAT(status.error_message(), HasSubstr("headers"));
  EXPECT_LT(RssGrowth(), 64 * kMiB);
}

TEST_F(HostileUpstreamTest, MillionTinyContactsInOnePageAreRefused) {
  std::string body = R"({"status":"success","data":{"hasMore":false,"results":[)";
  for (int i = 0; i < 1000000; ++i) absl::StrAppend(&body, i == 0 ? "" : ",", R"({"_id":)", i, "}");
  body += "]}}";
  HostileUpstream upstream([&body](int fd) { HostileUpstream::SendResponse(fd, body); });
  grpc::Status status = StreamFrom(upstream);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INTERNAL);
  EXPECT_THAT(status.error_message(), HasSubstr("100000"));
  EXPECT_EQ(contacts_, 0);
  EXPECT_LT(RssGrowth(), 256 * kMiB);
}

TEST_F(HostileUpstreamTest, DeeplyNestedJsonWhereContactsAreReadIsRefused) {
  std::string body = absl::StrCat(R"({"status":"success","data":{"results":)",
                                  std::string(100000, '['), std::string(100000, ']'), "}}");
  HostileUpstream upstream([&body](int fd) { HostileUpstream::SendResponse(fd, body); });
  grpc::Status status = StreamFrom(upstream);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INTERNAL);
  EXPECT_THAT(status.error_message(), HasSubstr("data.results[0]"));
  EXPECT_EQ(contacts_, 0);
  EXPECT_LT(RssGrowth(), 64 * kMiB);
}

TEST_F(HostileUpstreamTest, DeeplyNestedUnknownFieldIsSkippedWithoutRecursion) {
  // simdjson on-demand skips an unknown value by counting brackets: no stack, no allocation.
  std::string body =
      absl::StrCat(R"({"status":"success","data":{"hasMore":false,"results":[{"_id":"c1","x":)",
                   std::string(1000000, '['), std::string(1000000, ']'), "}]}}");
  HostileUpstream upstream([&body](int fd) { HostileUpstream::SendResponse(fd, body); });
  grpc::Status status = StreamFrom(upstream);
  EXPECT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(contacts_, 1);
  EXPECT_LT(RssGrowth(), 64 * kMiB);
}

TEST_F(HostileUpstreamTest, InvalidUtf8InAContactIsRefused) {
  HostileUpstream upstream([](int fd) {
    HostileUpstream::SendResponse(fd,
                                  "{\"status\":\"success\",\"data\":{\"hasMore\":false,\"results\":"
                                  "[{\"_id\":\"c\xff\xfe\",\"phoneNumber\":\"+1\"}]}}");
  });
  grpc::Status status = StreamFrom(upstream);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INTERNAL);
  EXPECT_THAT(status.error_message(), HasSubstr("UTF"));
  EXPECT_EQ(contacts_, 0);
}

TEST_F(HostileUpstreamTest, OverlongFieldsAreRefused) {
  HostileUpstream upstream([](int fd) {
    HostileUpstream::SendResponse(
        fd, absl::StrCat(R"({"status":"success","data":{"hasMore":false,"results":[{"_id":")",
                         std::string(100000, 'x'), R"("}]}})"));
  });
  grpc::Status status = StreamFrom(upstream);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INTERNAL);
  EXPECT_THAT(status.error_message(), HasSubstr("_id"));
  EXPECT_EQ(contacts_, 0);
}

TEST_F(HostileUpstreamTest, RedirectsAreNotFollowed) {
  HostileUpstream upstream([](int fd) {
    HostileUpstream::Send(fd,
                          "HTTP/1.1 302 Found\r\nLocation: "
                          "https://attacker.example/steal\r\nContent-Length: 0\r\n\r\n");
  });
  grpc::Status status = StreamFrom(upstream);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INTERNAL);
  EXPECT_THAT(status.error_message(), HasSubstr("HTTP 302"));
  EXPECT_EQ(upstream.requests(), 1);  // no second request, to anyone
}

}  // namespace
}  // namespace contacts::gateway
