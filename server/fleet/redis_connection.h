#ifndef CONTACTS_GATEWAY_SERVER_FLEET_REDIS_CONNECTION_H_
#define CONTACTS_GATEWAY_SERVER_FLEET_REDIS_CONNECTION_H_

#include <utility>  // std::exchange, which Boost 1.74 awaitable.hpp uses without including

#include <array>
#include <atomic>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <deque>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "server/fleet/resp.h"

namespace contacts::gateway {

// redis://[USER@]HOST[:PORT][/DB] or rediss:// (TLS). A password never goes in the URL: it comes
// from a file or the environment (RedisOptions::password).
struct RedisUrl {
  bool tls = false;
  std::string user;  // ACL user; "" = the default user
  std::string host;  // name or IP literal, without brackets
  std::string port = "6379";
  int db = 0;
  std::string Display() const;  // for logs
};
// Errors: kInvalidArgument naming what is wrong (never echoing a password).
absl::StatusOr<RedisUrl> ParseRedisUrl(std::string_view url);

struct RedisOptions {
  std::string url;
  std::string ca_file;   // rediss://: extra PEM CA bundle, besides the system roots
  std::string password;  // AUTH; never logged
  absl::Duration connect_timeout = absl::Seconds(2);         // connect + TLS + AUTH + SELECT
  absl::Duration command_timeout = absl::Milliseconds(500);  // one command, sent to answered
  absl::Duration reconnect_min = absl::Milliseconds(100);    // backoff after a failure, doubling
  absl::Duration reconnect_max = absl::Seconds(2);           // up to this, with jitter
  size_t max_reply_bytes = 8 << 20;                          // a larger reply breaks the connection
};

// A Lua script run by EVALSHA; its SHA-1 is computed here.
class RedisScript {
 public:
  explicit RedisScript(std::string source);
  const std::string& source() const { return source_; }
  const std::string& sha1() const { return sha1_; }

 private:
  std::string source_;
  std::string sha1_;
};

// One connection to Redis on the caller's io_context (a strand; no thread of its own), plain TCP
// or TLS (peer and host name verified), with AUTH, SELECT and a PING (up means answering),
// kept open: after any failure it
// reconnects with capped, jittered exponential backoff until Stop(). Commands are pipelined:
// written as they come, answered in order. Each has `command_timeout`; one that runs over fails
// with kDeadlineExceeded and resets the connection (RESP cannot skip a reply), as do the error
// replies that say this server cannot serve us now (READONLY, LOADING, MASTERDOWN, NOAUTH).
// While the connection is not up, commands fail at once with kUnavailable: callers fall back,
// nothing queues. A subscriber connection (Subscribe) carries only SUBSCRIBE/PSUBSCRIBE and their
// messages, and subscribes again after each reconnect.
// Callbacks run on the connection's strand, never inside the call that started them; they must
// not block. Thread-safe. Call Stop() before the io_context stops; the owner of the callbacks may
// go once the io_context's threads are joined.
class RedisConnection : public std::enable_shared_from_this<RedisConnection> {
 public:
  using Callback = absl::AnyInvocable<void(absl::StatusOr<RedisReply>) &&>;
  // Called when the connection comes up, and when it goes down or first fails to come up (once
  // per change of state, with why).
  using StateCallback = std::function<void(bool up, const absl::Status& why)>;
  using MessageCallback = std::function<void(std::string_view channel, std::string_view message)>;

  // `role` names the connection in errors ("commands", "subscriber"). Errors: kInvalidArgument
  // for a bad URL or an unreadable CA file.
  static absl::StatusOr<std::shared_ptr<RedisConnection>> Create(boost::asio::io_context& io,
                                                                 RedisOptions options,
                                                                 std::string role);
  ~RedisConnection();

  // Makes this a subscriber connection; before Start only.
  void Subscribe(std::vector<std::string> channels, std::vector<std::string> patterns,
                 MessageCallback on_message);
  void Start(StateCallback on_state);
  // Closes for good; commands waiting fail with kUnavailable. Idempotent.
  void Stop();
  bool up() const { return up_.load(std::memory_order_acquire); }
  const RedisUrl& url() const { return url_; }

  // One command; `done` gets the reply (an error reply is a reply of type kError), or
  // kUnavailable (not connected, or the connection broke before the reply), or
  // kDeadlineExceeded.
  void Command(std::vector<std::string> args, Callback done);
  // EVALSHA; when Redis does not know the script (NOSCRIPT: after SCRIPT FLUSH or a restart)
  // the same call again as EVAL, which also loads it.
  void Eval(const RedisScript& script, std::vector<std::string> keys, std::vector<std::string> args,
            Callback done);

 private:
  struct Stream;
  struct Pending {
    Callback done;
    absl::Time deadline;
  };
  RedisConnection(boost::asio::io_context& io, RedisOptions options, RedisUrl url,
                  std::unique_ptr<boost::asio::ssl::context> tls, std::string role);

  boost::asio::awaitable<void> Run();
  // One connection from connect to failure; returns why it ended.
  boost::asio::awaitable<absl::Status> Session(bool* came_up);
  boost::asio::awaitable<absl::Status> Connect();
  boost::asio::awaitable<absl::StatusOr<RedisReply>> ReadReply();
  void Dispatch(RedisReply reply);
  void Send(std::string bytes);
  void Write();
  void ArmWatchdog();
  void Close(absl::Status why);  // ends the session with `why`
  void FailPending(const absl::Status& status);
  void Enqueue(std::string bytes, Callback done);

  const RedisOptions options_;
  const RedisUrl url_;
  const std::unique_ptr<boost::asio::ssl::context> tls_;
  const std::string role_;
  boost::asio::strand<boost::asio::io_context::executor_type> strand_;
  std::atomic<bool> up_{false};

  // Everything below on strand_ only.
  bool started_ = false;
  bool stopped_ = false;
  bool ready_ = false;          // handshake done: commands are accepted
  bool reported_down_ = false;  // the last state told was "down"
  StateCallback on_state_;
  std::vector<std::string> channels_, patterns_;
  MessageCallback on_message_;
  std::shared_ptr<Stream> stream_;
  std::unique_ptr<RespReader> reader_;
  std::array<char, 16 << 10> read_buffer_;
  std::deque<Pending> pending_;
  std::string out_;  // written after the write in flight
  bool writing_ = false;
  absl::Status close_reason_;
  boost::asio::steady_timer watchdog_;  // the oldest command's deadline
  boost::asio::steady_timer backoff_;
  std::mt19937_64 random_;
};

}  // namespace contacts::gateway

#endif  // CONTACTS_GATEWAY_SERVER_FLEET_REDIS_CONNECTION_H_
