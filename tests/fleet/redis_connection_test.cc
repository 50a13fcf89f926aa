// RedisConnection and the RESP plumbing under it, against a real redis-server: pipelining,
// SELECT, AUTH (password and ACL user), TLS with peer and host-name checks, reconnecting after a
// crash, the command timeout, EVALSHA's reload after SCRIPT FLUSH, pub/sub across a restart, and
// a READONLY replica.
#include "server/fleet/redis_connection.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <deque>
#include <thread>

#include "absl/strings/str_cat.h"
#include "server/fleet/resp.h"
#include "tests/fleet/fleet_test_support.h"
#include "tests/integration/test_support.h"

namespace contacts::gateway {
namespace {

using ::contacts::testing::RedisServer;
using ::testing::HasSubstr;
using ::testing::Not;

TEST(RespTest, ReadsRepliesFedOneByteAtATime) {
  const std::string bytes =
      "+OK\r\n:-42\r\n$5\r\na\r\nbc\r\n$-1\r\n*2\r\n*1\r\n:1\r\n-ERR bad\r\n*0\r\n*-1\r\n";
  RespReader reader(1 << 10);
  std::vector<RedisReply> replies;
  for (char c : bytes) {
    ASSERT_TRUE(reader.Feed(std::string_view(&c, 1)).ok());
    for (;;) {
      absl::StatusOr<std::optional<RedisReply>> next = reader.Next();
      ASSERT_TRUE(next.ok()) << next.status();
      if (!*next) break;
      replies.push_back(**next);
    }
  }
  using Type = RedisReply::Type;
  ASSERT_EQ(replies.size(), 7u);
  EXPECT_EQ(replies[0].type, Type::kStatus);
  EXPECT_EQ(replies[0].text, "OK");
  EXPECT_EQ(replies[1].integer, -42);
  EXPECT_EQ(replies[2].text, "a\r\nbc");  // binary-safe
  EXPECT_EQ(replies[3].type, Type::kNil);
  ASSERT_EQ(replies[4].elements.size(), 2u);
  EXPECT_EQ(replies[4].elements[0].elements[0].integer, 1);
  EXPECT_TRUE(replies[4].elements[1].is_error());
  EXPECT_EQ(replies[4].elements[1].text, "ERR bad");
  EXPECT_EQ(replies[5].type, Type::kArray);
  EXPECT_TRUE(replies[5].elements.empty());
  EXPECT_EQ(replies[6].type, Type::kNil);
}

TEST(RespTest, RefusesWhatIsNotRespOrTooLarge) {
  for (const std::string& bad : {std::string("?what\r\n"), std::string("*100000\r\n"),
                                 std::string("$2000\r\n") + std::string(1500, 'x')}) {
    RespReader reader(1 << 10);
    absl::Status fed = reader.Feed(bad);
    absl::StatusOr<std::optional<RedisReply>> next =
        fed.ok() ? reader.Next() : absl::StatusOr<std::optional<RedisReply>>(fed);
    EXPECT_EQ(next.status().code(), absl::StatusCode::kDataLoss) << bad.substr(0, 10);
    EXPECT_FALSE(reader.Next().ok());  // and stays unusable
  }
}

TEST(RespTest, FormatsBinarySafeCommands) {
  EXPECT_EQ(FormatCommand({"SET", "k", std::string("a\r\n\0b", 5)}),
            std::string("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\na\r\n\0b\r\n", 31));
}

TEST(RedisUrlTest, ParsesWhatOperatorsWrite) {
  absl::StatusOr<RedisUrl> url = ParseRedisUrl("rediss://gw@redis.example:6380/2");
  ASSERT_TRUE(url.ok()) << url.status();
  EXPECT_TRUE(url->tls);
  EXPECT_EQ(url->user, "gw");
  EXPECT_EQ(url->host, "redis.example");
  EXPECT_EQ(url->port, "6380");
  EXPECT_EQ(url->db, 2);
  EXPECT_EQ(url->Display(), "rediss://gw@redis.example:6380/2");
  url = ParseRedisUrl("redis://[::1]");
  ASSERT_TRUE(url.ok()) << url.status();
  EXPECT_EQ(url->host, "::1");
  EXPECT_EQ(url->port, "6379");
  EXPECT_EQ(url->db, 0);

  absl::StatusOr<RedisUrl> secret = ParseRedisUrl("redis://gw:hunter2@redis:6379");
  EXPECT_EQ(secret.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(secret.status().message(), Not(HasSubstr("hunter2")));
  EXPECT_THAT(secret.status().message(), HasSubstr("--shared-state-password-file"));
  for (const char* bad : {"http://redis", "redis://", "redis://h:0", "redis://h:99999",
                          "redis://h/x", "redis://h?db=1", "redis://[::1"}) {
    EXPECT_FALSE(ParseRedisUrl(bad).ok()) << bad;
  }
}

class RedisConnectionTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { redis_ = RedisServer::Start(); }
  static void TearDownTestSuite() { redis_.reset(); }
  void SetUp() override {
    ASSERT_NE(redis_, nullptr);
    redis_->Cli({"FLUSHALL"});
  }
  void TearDown() override {
    for (const auto& connection : connections_) connection->Stop();
    io_.Join();
  }

  // A started connection to `url`; waits until it is up unless `expect_up` is false.
  std::shared_ptr<RedisConnection> Connect(RedisOptions options, StateLog* states,
                                           bool expect_up = true) {
    absl::StatusOr<std::shared_ptr<RedisConnection>> connection =
        RedisConnection::Create(io_.io(), std::move(options), "commands");
    EXPECT_TRUE(connection.ok()) << connection.status();
    if (!connection.ok()) return nullptr;
    connections_.push_back(*connection);
    (*connection)->Start(states->Callback());
    if (expect_up) {
      EXPECT_TRUE(Eventually([&] { return (*connection)->up(); }));
    } else {
      EXPECT_TRUE(Eventually([&] { return states->Last(false); }));
    }
    return *connection;
  }
  RedisOptions Options(const std::string& url) {
    RedisOptions options;
    options.url = url;
    options.reconnect_max = absl::Milliseconds(200);
    return options;
  }

  // Kept until the connections have stopped: they report to it until then.
  StateLog* NewLog() { return &logs_.emplace_back(); }

  static inline std::unique_ptr<RedisServer> redis_;
  std::deque<StateLog> logs_;
  IoThreads io_;
  std::vector<std::shared_ptr<RedisConnection>> connections_;
};

TEST_F(RedisConnectionTest, PipelinedCommandsAreAnsweredInOrder) {
  StateLog& states = *NewLog();
  auto redis = Connect(Options(redis_->url()), &states);
  ASSERT_NE(redis, nullptr);
  constexpr int kThreads = 4, kEach = 250;
  std::vector<std::vector<int64_t>> seen(kThreads);
  absl::Mutex mu;
  int answered = 0;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kEach; ++i) {
        redis->Command({"INCR", "n"}, [&, t](absl::StatusOr<RedisReply> reply) {
          absl::MutexLock lock(&mu);
          seen[t].push_back(reply.ok() ? reply->integer : -1);
          ++answered;
        });
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  ASSERT_TRUE(Eventually([&] {
    absl::MutexLock lock(&mu);
    return answered == kThreads * kEach;
  }));
  std::vector<int64_t> all;
  for (const std::vector<int64_t>& values : seen) {
    EXPECT_TRUE(std::is_sorted(values.begin(), values.end()));  // one caller's, in order
    all.insert(all.end(), values.begin(), values.end());
  }
  std::sort(all.begin(), all.end());
  for (int i = 0; i < kThreads * kEach; ++i) ASSERT_EQ(all[i], i + 1);
}

TEST_F(RedisConnectionTest, SelectsTheDatabaseOfTheUrl) {
  StateLog& states = *NewLog();
  auto redis = Connect(Options(redis_->url() + "/3"), &states);
  ASSERT_NE(redis, nullptr);
  ASSERT_TRUE(Call(*redis, {"SET", "where", "db3"}).ok());
  EXPECT_EQ(redis_->Cli({"-n", "3", "GET", "where"}), "db3");
  EXPECT_EQ(redis_->Cli({"GET", "where"}), "");
}

TEST_F(RedisConnectionTest, AuthenticatesWithPasswordOrAclUserAndNeverShowsThePassword) {
  auto redis = RedisServer::Start({.flags = {"--requirepass", "default-pw-51f3"}});
  ASSERT_NE(redis, nullptr);
  redis->Cli({"ACL", "SETUSER", "gateway", "on", ">gateway-pw-9c2e", "~*", "&*", "+@all"});

  StateLog &ok_states = *NewLog(), &user_states = *NewLog(), &wrong_states = *NewLog();
  RedisOptions options = Options(redis->url());
  options.password = "default-pw-51f3";
  auto by_password = Connect(options, &ok_states);
  ASSERT_NE(by_password, nullptr);
  EXPECT_EQ(Call(*by_password, {"PING"})->text, "PONG");

  options = Options(absl::StrCat("redis://gateway@127.0.0.1:", redis->port()));
  options.password = "gateway-pw-9c2e";
  auto by_user = Connect(options, &user_states);
  ASSERT_NE(by_user, nullptr);
  EXPECT_EQ(Call(*by_user, {"ACL", "WHOAMI"})->text, "gateway");

  options = Options(redis->url());
  options.password = "wrong-pw-77aa";
  auto wrong = Connect(options, &wrong_states, /*expect_up=*/false);
  ASSERT_NE(wrong, nullptr);
  ASSERT_FALSE(wrong_states.states().empty());
  const std::string why = wrong_states.states().front().second;
  EXPECT_THAT(why, HasSubstr("authentication refused: WRONGPASS"));
  EXPECT_THAT(why, Not(HasSubstr("wrong-pw-77aa")));
  EXPECT_EQ(Call(*wrong, {"PING"}).status().code(), absl::StatusCode::kUnavailable);
  // Failures while down are told once, not on every retry.
  absl::SleepFor(absl::Milliseconds(500));
  EXPECT_EQ(wrong_states.states().size(), 1u);
}

TEST_F(RedisConnectionTest, TlsVerifiesThePeerAndItsHostName) {
  const std::string dir = ::contacts::testing::TempDir();
  ASSERT_TRUE(::contacts::testing::MakeTestCertificates(dir));
  auto redis = RedisServer::Start({.tls_dir = dir});
  ASSERT_NE(redis, nullptr);

  StateLog &trusted = *NewLog(), &untrusted = *NewLog(), &wrong_name = *NewLog();
  RedisOptions options = Options(redis->url());  // rediss://localhost:PORT
  options.ca_file = dir + "/ca.pem";
  auto tls = Connect(options, &trusted);
  ASSERT_NE(tls, nullptr);
  ASSERT_TRUE(Call(*tls, {"SET", "over", "tls"}).ok());
  EXPECT_EQ(redis->Cli({"GET", "over"}), "tls");

  options.ca_file.clear();  // the system roots do not know the test CA
  Connect(options, &untrusted, /*expect_up=*/false);
  EXPECT_THAT(untrusted.states().front().second, HasSubstr("TLS certificate rejected"));

  options = Options(absl::StrCat("rediss://127.0.0.1:", redis->port()));  // not in the cert
  options.ca_file = dir + "/ca.pem";
  Connect(options, &wrong_name, /*expect_up=*/false);
  EXPECT_THAT(wrong_name.states().front().second, HasSubstr("TLS certificate rejected"));
}

TEST_F(RedisConnectionTest, FailsFastWhileDownAndReconnectsAfterACrash) {
  auto redis = RedisServer::Start();
  ASSERT_NE(redis, nullptr);
  StateLog& states = *NewLog();
  auto connection = Connect(Options(redis->url()), &states);
  ASSERT_NE(connection, nullptr);
  redis->Kill();
  ASSERT_TRUE(Eventually([&] { return states.Last(false); }));
  const absl::Time asked = absl::Now();
  EXPECT_EQ(Call(*connection, {"PING"}).status().code(), absl::StatusCode::kUnavailable);
  EXPECT_LT(absl::Now() - asked, absl::Seconds(1));  // nothing queues while down
  ASSERT_TRUE(redis->Restart());
  ASSERT_TRUE(Eventually([&] { return connection->up(); }));
  EXPECT_EQ(Call(*connection, {"PING"})->text, "PONG");
  const auto told = states.states();
  ASSERT_EQ(told.size(), 3u);
  EXPECT_TRUE(told[0].first);
  EXPECT_FALSE(told[1].first);
  EXPECT_THAT(told[1].second, HasSubstr("closed the connection"));
  EXPECT_TRUE(told[2].first);
}

TEST_F(RedisConnectionTest, ACommandOverItsTimeoutFailsAndResetsTheConnection) {
  auto redis = RedisServer::Start();
  ASSERT_NE(redis, nullptr);
  StateLog& states = *NewLog();
  RedisOptions options = Options(redis->url());
  options.command_timeout = absl::Milliseconds(200);
  auto connection = Connect(options, &states);
  ASSERT_NE(connection, nullptr);
  redis->Freeze(true);
  absl::StatusOr<RedisReply> frozen = Call(*connection, {"PING"});
  EXPECT_EQ(frozen.status().code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_THAT(frozen.status().message(), HasSubstr("did not answer within 200ms"));
  redis->Freeze(false);
  ASSERT_TRUE(Eventually([&] { return connection->up(); }));
  EXPECT_EQ(Call(*connection, {"PING"})->text, "PONG");
}

TEST_F(RedisConnectionTest, EvalLoadsTheScriptAgainAfterAFlush) {
  StateLog& states = *NewLog();
  auto redis = Connect(Options(redis_->url()), &states);
  ASSERT_NE(redis, nullptr);
  redis_->Cli({"CONFIG", "RESETSTAT"});
  const RedisScript echo("return ARGV[1] .. redis.call('GET', KEYS[1])");
  ASSERT_TRUE(Call(*redis, {"SET", "k", "!"}).ok());
  EXPECT_EQ(CallEval(*redis, echo, {"k"}, {"one"})->text, "one!");  // NOSCRIPT, then EVAL
  EXPECT_EQ(CallEval(*redis, echo, {"k"}, {"two"})->text, "two!");  // EVALSHA
  redis_->Cli({"SCRIPT", "FLUSH"});
  EXPECT_EQ(CallEval(*redis, echo, {"k"}, {"three"})->text, "three!");
  const std::string stats = redis_->Cli({"INFO", "commandstats"});
  EXPECT_THAT(stats, HasSubstr("cmdstat_eval:calls=2,"));
  EXPECT_THAT(stats, HasSubstr("cmdstat_evalsha:calls=3,"));
}

TEST_F(RedisConnectionTest, SubscriberGetsMessagesAndSubscribesAgainAfterARestart) {
  auto redis = RedisServer::Start();
  ASSERT_NE(redis, nullptr);
  absl::StatusOr<std::shared_ptr<RedisConnection>> subscriber =
      RedisConnection::Create(io_.io(), Options(redis->url()), "subscriber");
  ASSERT_TRUE(subscriber.ok());
  connections_.push_back(*subscriber);
  static absl::Mutex mu;  // outlive the connection's last callback
  static std::vector<std::string> messages;
  (*subscriber)
      ->Subscribe({"events"}, {"pages:*"}, [&](std::string_view channel, std::string_view message) {
        absl::MutexLock lock(&mu);
        messages.push_back(std::string(channel) + "=" + std::string(message));
      });
  StateLog& states = *NewLog();
  (*subscriber)->Start(states.Callback());
  auto received = [&](const std::string& what) {
    absl::MutexLock lock(&mu);
    return std::find(messages.begin(), messages.end(), what) != messages.end();
  };
  // PUBLISH answers how many subscribers got it: 0 until the SUBSCRIBE has been seen.
  ASSERT_TRUE(Eventually([&] { return redis->Cli({"PUBLISH", "events", "one"}) == "1"; }));
  ASSERT_TRUE(Eventually([&] { return redis->Cli({"PUBLISH", "pages:7", "two"}) == "1"; }));
  EXPECT_TRUE(Eventually([&] { return received("events=one") && received("pages:7=two"); }));
  ASSERT_TRUE(redis->Restart());
  ASSERT_TRUE(Eventually([&] { return redis->Cli({"PUBLISH", "events", "three"}) == "1"; }));
  EXPECT_TRUE(Eventually([&] { return received("events=three"); }));
  // PING works in subscribed mode (the shared state's liveness check).
  EXPECT_EQ(Call(**subscriber, {"PING"})->elements.at(0).text, "pong");
}

TEST_F(RedisConnectionTest, AReadOnlyReplicaResetsTheConnection) {
  auto replica =
      RedisServer::Start({.flags = {"--replicaof", "127.0.0.1", absl::StrCat(redis_->port())}});
  ASSERT_NE(replica, nullptr);
  StateLog& states = *NewLog();
  auto connection = Connect(Options(replica->url()), &states);
  ASSERT_NE(connection, nullptr);
  absl::StatusOr<RedisReply> write = Call(*connection, {"SET", "k", "v"});
  ASSERT_TRUE(write.ok());
  EXPECT_THAT(write->text, HasSubstr("READONLY"));
  ASSERT_TRUE(Eventually([&] { return states.states().size() >= 3; }));  // up, down, up again
  EXPECT_THAT(states.states()[1].second, HasSubstr("answered READONLY"));
}

}  // namespace
}  // namespace contacts::gateway
