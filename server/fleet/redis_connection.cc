#include "server/fleet/redis_connection.h"

#include <openssl/sha.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "server/core/encoding.h"

namespace contacts::gateway {
namespace {

namespace asio = boost::asio;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;

bool IsIpLiteral(const std::string& host) {
  boost::system::error_code ec;
  asio::ip::make_address(host, ec);
  return !ec;
}

// Error replies after which this server cannot serve us until something changes (a failover, a
// restart finishing, a new AUTH): the connection is reset and made again.
bool ResetsConnection(const RedisReply& reply) {
  if (!reply.is_error()) return false;
  for (const char* prefix : {"READONLY", "LOADING", "MASTERDOWN", "NOAUTH", "WRONGPASS"}) {
    if (absl::StartsWith(reply.text, prefix)) return true;
  }
  return false;
}

void WithArgs(std::string_view verb, std::string first, std::vector<std::string> keys,
              std::vector<std::string> args, std::vector<std::string>* out) {
  out->clear();
  out->reserve(3 + keys.size() + args.size());
  out->emplace_back(verb);
  out->push_back(std::move(first));
  out->push_back(absl::StrCat(keys.size()));
  for (std::string& key : keys) out->push_back(std::move(key));
  for (std::string& arg : args) out->push_back(std::move(arg));
}

}  // namespace

std::string RedisUrl::Display() const {
  std::string host_part = host.find(':') != std::string::npos ? absl::StrCat("[", host, "]") : host;
  return absl::StrCat(tls ? "rediss://" : "redis://", user.empty() ? "" : user + "@", host_part,
                      ":", port, "/", db);
}

absl::StatusOr<RedisUrl> ParseRedisUrl(std::string_view input) {
  absl::string_view text = AsAbsl(input);
  RedisUrl url;
  if (absl::ConsumePrefix(&text, "rediss://")) {
    url.tls = true;
  } else if (!absl::ConsumePrefix(&text, "redis://")) {
    return absl::InvalidArgumentError("the shared-state URL must start with redis:// or rediss://");
  }
  if (text.find_first_of("?#") != absl::string_view::npos) {
    return absl::InvalidArgumentError("the shared-state URL takes no query or fragment");
  }
  absl::string_view authority = text.substr(0, text.find('/'));
  absl::string_view path = text.substr(authority.size());
  if (size_t at = authority.rfind('@'); at != absl::string_view::npos) {
    absl::string_view user = authority.substr(0, at);
    if (user.find(':') != absl::string_view::npos) {
      return absl::InvalidArgumentError(
          "the shared-state URL must not hold a password: use --shared-state-password-file or "
          "CONTACTS_GATEWAY_SHARED_STATE_PASSWORD");
    }
    url.user = std::string(user);
    authority.remove_prefix(at + 1);
  }
  absl::string_view port;
  if (absl::ConsumePrefix(&authority, "[")) {
    size_t close = authority.find(']');
    if (close == absl::string_view::npos) {
      return absl::InvalidArgumentError("the shared-state URL has an unclosed [");
    }
    url.host = std::string(authority.substr(0, close));
    authority.remove_prefix(close + 1);
    if (!authority.empty() && !absl::ConsumePrefix(&authority, ":")) {
      return absl::InvalidArgumentError("the shared-state URL has junk after ]");
    }
    port = authority;
  } else {
    size_t colon = authority.find(':');
    url.host = std::string(authority.substr(0, colon));
    if (colon != absl::string_view::npos) port = authority.substr(colon + 1);
  }
  if (url.host.empty()) return absl::InvalidArgumentError("the shared-state URL has no host");
  if (!port.empty()) {
    int number = 0;
    if (!absl::SimpleAtoi(port, &number) || number < 1 || number > 65535) {
      return absl::InvalidArgumentError("the shared-state URL's port must be 1 to 65535");
    }
    url.port = std::string(port);
  }
  if (absl::ConsumePrefix(&path, "/") && !path.empty()) {
    if (!absl::SimpleAtoi(path, &url.db) || url.db < 0 || url.db > 65535) {
      return absl::InvalidArgumentError(
          "the shared-state URL's path must be a database number (redis://host:6379/0)");
    }
  }
  return url;
}

RedisScript::RedisScript(std::string source) : source_(std::move(source)) {
  unsigned char digest[SHA_DIGEST_LENGTH];
  SHA1(reinterpret_cast<const unsigned char*>(source_.data()), source_.size(), digest);
  sha1_ = absl::BytesToHexString(
      absl::string_view(reinterpret_cast<const char*>(digest), SHA_DIGEST_LENGTH));
}

// The socket of one session; shared with the operations in flight on it, which may complete
// after the session ended.
struct RedisConnection::Stream {
  Stream(asio::strand<asio::io_context::executor_type> strand, ssl::context* tls) {
    if (tls) {
      secure = std::make_unique<ssl::stream<tcp::socket>>(strand, *tls);
    } else {
      plain = std::make_unique<tcp::socket>(strand);
    }
  }
  tcp::socket& socket() { return secure ? secure->next_layer() : *plain; }
  void Close() {
    boost::system::error_code ignored;
    socket().close(ignored);
  }
  std::unique_ptr<tcp::socket> plain;
  std::unique_ptr<ssl::stream<tcp::socket>> secure;
};

absl::StatusOr<std::shared_ptr<RedisConnection>> RedisConnection::Create(asio::io_context& io,
                                                                         RedisOptions options,
                                                                         std::string role) {
  absl::StatusOr<RedisUrl> url = ParseRedisUrl(options.url);
  if (!url.ok()) return url.status();
  if (!url->user.empty() && options.password.empty()) {
    return absl::InvalidArgumentError(
        "the shared-state URL names a user but no password is set (--shared-state-password-file)");
  }
  std::unique_ptr<ssl::context> tls;
  if (url->tls) {
    tls = std::make_unique<ssl::context>(ssl::context::tls_client);
    SSL_CTX_set_min_proto_version(tls->native_handle(), TLS1_2_VERSION);
    tls->set_verify_mode(ssl::verify_peer);
    boost::system::error_code ec;
    tls->set_default_verify_paths(ec);
    if (!options.ca_file.empty()) {
      tls->load_verify_file(options.ca_file, ec);
      if (ec) {
        return absl::InvalidArgumentError(absl::StrCat("cannot read the shared-state CA file ",
                                                       options.ca_file, ": ", ec.message()));
      }
    }
  }
  return std::shared_ptr<RedisConnection>(new RedisConnection(
      io, std::move(options), *std::move(url), std::move(tls), std::move(role)));
}

RedisConnection::RedisConnection(asio::io_context& io, RedisOptions options, RedisUrl url,
                                 std::unique_ptr<ssl::context> tls, std::string role)
    : options_(std::move(options)),
      url_(std::move(url)),
      tls_(std::move(tls)),
      role_(std::move(role)),
      strand_(asio::make_strand(io)),
      watchdog_(strand_),
      backoff_(strand_),
      random_(std::random_device{}()) {}

RedisConnection::~RedisConnection() = default;

void RedisConnection::Subscribe(std::vector<std::string> channels,
                                std::vector<std::string> patterns, MessageCallback on_message) {
  channels_ = std::move(channels);
  patterns_ = std::move(patterns);
  on_message_ = std::move(on_message);
}

void RedisConnection::Start(StateCallback on_state) {
  asio::post(strand_, [self = shared_from_this(), on_state = std::move(on_state)]() mutable {
    if (self->started_ || self->stopped_) return;
    self->started_ = true;
    self->on_state_ = std::move(on_state);
    asio::co_spawn(
        self->strand_, [self] { return self->Run(); }, asio::detached);
  });
}

void RedisConnection::Stop() {
  asio::post(strand_, [self = shared_from_this()] {
    if (self->stopped_) return;
    self->stopped_ = true;
    self->Close(absl::UnavailableError("the redis connection was stopped"));
    self->backoff_.cancel();
    self->watchdog_.cancel();
    self->FailPending(absl::UnavailableError("the redis connection was stopped"));
  });
}

void RedisConnection::Command(std::vector<std::string> args, Callback done) {
  asio::post(strand_, [self = shared_from_this(), bytes = FormatCommand(args),
                       done = std::move(done)]() mutable {
    self->Enqueue(std::move(bytes), std::move(done));
  });
}

void RedisConnection::Eval(const RedisScript& script, std::vector<std::string> keys,
                           std::vector<std::string> args, Callback done) {
  std::vector<std::string> command;
  WithArgs("EVALSHA", script.sha1(), std::move(keys), std::move(args), &command);
  std::vector<std::string> reload = command;
  reload[0] = "EVAL";
  reload[1] = script.source();
  Command(std::move(command), [self = shared_from_this(), reload = std::move(reload),
                               done = std::move(done)](absl::StatusOr<RedisReply> reply) mutable {
    if (reply.ok() && reply->is_error() && absl::StartsWith(reply->text, "NOSCRIPT")) {
      self->Command(std::move(reload), std::move(done));
      return;
    }
    std::move(done)(std::move(reply));
  });
}

void RedisConnection::Enqueue(std::string bytes, Callback done) {
  if (!ready_ || stopped_) {
    std::move(done)(absl::UnavailableError(
        absl::StrCat("redis (", url_.Display(), ", ", role_, ") is not connected")));
    return;
  }
  pending_.push_back(Pending{std::move(done), absl::Now() + options_.command_timeout});
  if (pending_.size() == 1) ArmWatchdog();
  Send(std::move(bytes));
}

void RedisConnection::ArmWatchdog() {
  if (pending_.empty()) return;
  watchdog_.expires_after(absl::ToChronoNanoseconds(
      std::max(absl::ZeroDuration(), pending_.front().deadline - absl::Now())));
  watchdog_.async_wait([self = shared_from_this(), stream = stream_](boost::system::error_code ec) {
    if (ec || stream != self->stream_ || self->pending_.empty()) return;
    if (self->pending_.front().deadline <= absl::Now()) {
      self->Close(absl::DeadlineExceededError(absl::StrCat(
          "redis (", self->url_.Display(), ", ", self->role_, ") did not answer within ",
          absl::FormatDuration(self->options_.command_timeout))));
    } else {
      self->ArmWatchdog();
    }
  });
}

void RedisConnection::Send(std::string bytes) {
  out_ += bytes;
  Write();
}

void RedisConnection::Write() {
  if (writing_ || out_.empty() || !stream_) return;
  writing_ = true;
  auto buffer = std::make_shared<std::string>(std::move(out_));
  out_.clear();
  auto written = [self = shared_from_this(), stream = stream_, buffer](boost::system::error_code ec,
                                                                       size_t) {
    if (stream != self->stream_) return;  // a session that has ended
    self->writing_ = false;
    if (ec) {
      self->Close(absl::UnavailableError(absl::StrCat("redis write failed: ", ec.message())));
      return;
    }
    self->Write();
  };
  if (stream_->secure) {
    asio::async_write(*stream_->secure, asio::buffer(*buffer), std::move(written));
  } else {
    asio::async_write(*stream_->plain, asio::buffer(*buffer), std::move(written));
  }
}

void RedisConnection::Close(absl::Status why) {
  if (close_reason_.ok()) close_reason_ = std::move(why);
  ready_ = false;
  up_.store(false, std::memory_order_release);
  if (stream_) stream_->Close();
}

void RedisConnection::FailPending(const absl::Status& status) {
  std::deque<Pending> pending;
  pending.swap(pending_);
  for (Pending& p : pending) std::move(p.done)(status);
}

asio::awaitable<void> RedisConnection::Run() {
  absl::Duration backoff = options_.reconnect_min;
  while (!stopped_) {
    close_reason_ = absl::OkStatus();
    reader_ = std::make_unique<RespReader>(options_.max_reply_bytes);
    stream_ = std::make_shared<Stream>(strand_, tls_.get());
    writing_ = false;
    out_.clear();
    bool came_up = false;
    absl::Status why = co_await Session(&came_up);
    stream_->Close();
    ready_ = false;
    up_.store(false, std::memory_order_release);
    FailPending(why);
    if (stopped_) break;
    if (came_up) backoff = options_.reconnect_min;
    if (came_up || !reported_down_) {
      reported_down_ = true;
      if (on_state_) on_state_(false, why);
    }
    // Full jitter over the upper half: replicas that lost Redis together do not return in step.
    const double jitter = std::uniform_real_distribution<double>(0.5, 1.0)(random_);
    backoff_.expires_after(absl::ToChronoNanoseconds(backoff * jitter));
    backoff = std::min(backoff * 2, options_.reconnect_max);
    boost::system::error_code ec;
    co_await backoff_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
  }
}

asio::awaitable<absl::Status> RedisConnection::Session(bool* came_up) {
  absl::Status connected = co_await Connect();
  if (!connected.ok()) co_return connected;
  if (stopped_) co_return absl::UnavailableError("the redis connection was stopped");
  ready_ = true;
  *came_up = true;
  up_.store(true, std::memory_order_release);
  reported_down_ = false;
  if (on_state_) on_state_(true, absl::OkStatus());
  if (!channels_.empty()) {
    std::vector<std::string> command = {"SUBSCRIBE"};
    command.insert(command.end(), channels_.begin(), channels_.end());
    Send(FormatCommand(command));
  }
  if (!patterns_.empty()) {
    std::vector<std::string> command = {"PSUBSCRIBE"};
    command.insert(command.end(), patterns_.begin(), patterns_.end());
    Send(FormatCommand(command));
  }
  for (;;) {
    absl::StatusOr<RedisReply> reply = co_await ReadReply();
    if (!close_reason_.ok()) co_return close_reason_;
    if (!reply.ok()) co_return reply.status();
    Dispatch(*std::move(reply));
  }
}

// One coroutine on purpose (about 100 lines): resolve, connect, TLS, AUTH and SELECT under one
// deadline read top to bottom as the steps of a connection; split, every step would carry the
// deadline, the stream and the error naming again.
asio::awaitable<absl::Status> RedisConnection::Connect() {
  const std::string where = absl::StrCat("redis ", url_.Display(), " (", role_, ")");
  std::shared_ptr<Stream> stream = stream_;
  // One deadline over connect, TLS and the handshake commands: closing the socket ends whichever
  // of them is under way.
  // The flag is shared with the timer's handler, which may run after this coroutine returned.
  auto expired = std::make_shared<bool>(false);
  const bool& timed_out = *expired;
  asio::steady_timer deadline(strand_);
  deadline.expires_after(absl::ToChronoNanoseconds(options_.connect_timeout));
  deadline.async_wait([stream, expired](boost::system::error_code ec) {
    if (ec) return;
    *expired = true;
    stream->Close();
  });
  auto failed = [&](absl::string_view what, const boost::system::error_code& ec) {
    deadline.cancel();
    if (timed_out) {
      return absl::UnavailableError(absl::StrCat(where, ": ", what, " timed out after ",
                                                 absl::FormatDuration(options_.connect_timeout)));
    }
    return absl::UnavailableError(absl::StrCat(where, ": ", what, " failed: ", ec.message()));
  };

  boost::system::error_code ec;
  tcp::resolver::results_type endpoints;
  if (IsIpLiteral(url_.host)) {
    endpoints = tcp::resolver::results_type::create(
        tcp::endpoint(asio::ip::make_address(url_.host),
                      static_cast<unsigned short>(std::stoi(url_.port))),
        url_.host, url_.port);
  } else {
    tcp::resolver resolver(strand_);
    endpoints = co_await resolver.async_resolve(url_.host, url_.port,
                                                asio::redirect_error(asio::use_awaitable, ec));
    if (ec) co_return failed("name lookup", ec);
  }
  co_await asio::async_connect(stream->socket(), endpoints,
                               asio::redirect_error(asio::use_awaitable, ec));
  if (ec || timed_out) co_return failed("connect", ec);
  stream->socket().set_option(tcp::no_delay(true), ec);
  if (stream->secure) {
    SSL* ssl = stream->secure->native_handle();
    if (IsIpLiteral(url_.host)) {
      X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), url_.host.c_str());
    } else {
      SSL_set_tlsext_host_name(ssl, url_.host.c_str());
      SSL_set1_host(ssl, url_.host.c_str());
    }
    co_await stream->secure->async_handshake(ssl::stream_base::client,
                                             asio::redirect_error(asio::use_awaitable, ec));
    if (ec || timed_out) {
      if (long verify = SSL_get_verify_result(ssl); verify != X509_V_OK && !timed_out) {
        deadline.cancel();
        co_return absl::UnavailableError(absl::StrCat(
            where, ": TLS certificate rejected: ", X509_verify_cert_error_string(verify),
            " (check --shared-state and --shared-state-ca-file)"));
      }
      co_return failed("TLS handshake", ec);
    }
  }

  // AUTH and SELECT, pipelined; each must answer without an error.
  std::vector<std::pair<std::string, std::string>> handshake;  // what, command bytes
  if (!options_.password.empty()) {
    std::vector<std::string> auth = {"AUTH"};
    if (!url_.user.empty()) auth.push_back(url_.user);
    auth.push_back(options_.password);
    handshake.emplace_back("authentication", FormatCommand(auth));
  }
  if (url_.db != 0) {
    handshake.emplace_back(absl::StrCat("SELECT ", url_.db),
                           FormatCommand({"SELECT", absl::StrCat(url_.db)}));
  }
  // And a PING: connected means answering (a frozen server accepts connections too).
  handshake.emplace_back("PING", FormatCommand({"PING"}));
  std::string bytes;
  for (const auto& [what, command] : handshake) bytes += command;
  {
    if (stream->secure) {
      co_await asio::async_write(*stream->secure, asio::buffer(bytes),
                                 asio::redirect_error(asio::use_awaitable, ec));
    } else {
      co_await asio::async_write(*stream->plain, asio::buffer(bytes),
                                 asio::redirect_error(asio::use_awaitable, ec));
    }
    if (ec || timed_out) co_return failed("handshake", ec);
  }
  for (const auto& [what, command] : handshake) {
    absl::StatusOr<RedisReply> reply = co_await ReadReply();
    if (timed_out) co_return failed(what, ec);
    if (!reply.ok()) {
      deadline.cancel();
      co_return absl::UnavailableError(
          absl::StrCat(where, ": ", what, ": ", reply.status().message()));
    }
    if (reply->is_error()) {
      deadline.cancel();
      // Redis's own text, which never holds the password (e.g. "WRONGPASS invalid
      // username-password pair or user is disabled.").
      co_return absl::UnavailableError(absl::StrCat(where, ": ", what, " refused: ", reply->text));
    }
  }
  deadline.cancel();
  co_return absl::OkStatus();
}

asio::awaitable<absl::StatusOr<RedisReply>> RedisConnection::ReadReply() {
  std::shared_ptr<Stream> stream = stream_;
  for (;;) {
    absl::StatusOr<std::optional<RedisReply>> next = reader_->Next();
    if (!next.ok()) co_return next.status();
    if (*next) co_return **std::move(next);
    boost::system::error_code ec;
    size_t n = 0;
    if (stream->secure) {
      n = co_await stream->secure->async_read_some(asio::buffer(read_buffer_),
                                                   asio::redirect_error(asio::use_awaitable, ec));
    } else {
      n = co_await stream->plain->async_read_some(asio::buffer(read_buffer_),
                                                  asio::redirect_error(asio::use_awaitable, ec));
    }
    if (ec) {
      co_return absl::UnavailableError(
          ec == asio::error::eof
              ? absl::StrCat("redis ", url_.Display(), " (", role_, ") closed the connection")
              : absl::StrCat("redis ", url_.Display(), " (", role_, "): ", ec.message()));
    }
    absl::Status fed = reader_->Feed(std::string_view(read_buffer_.data(), n));
    if (!fed.ok()) co_return fed;
  }
}

void RedisConnection::Dispatch(RedisReply reply) {
  if (on_message_ && reply.type == RedisReply::Type::kArray && !reply.elements.empty()) {
    // A subscriber connection: messages, subscription confirmations, and PING's "pong".
    const std::vector<RedisReply>& e = reply.elements;
    const std::string& kind = e[0].text;
    if (kind == "message" && e.size() == 3) {
      on_message_(e[1].text, e[2].text);
      return;
    }
    if (kind == "pmessage" && e.size() == 4) {
      on_message_(e[2].text, e[3].text);
      return;
    }
    if (kind == "subscribe" || kind == "psubscribe") return;
  }
  if (pending_.empty()) {
    Close(absl::DataLossError(
        absl::StrCat("redis (", role_, ") sent a reply nobody asked for: ", reply.Describe())));
    return;
  }
  Pending pending = std::move(pending_.front());
  pending_.pop_front();
  if (ResetsConnection(reply)) {
    Close(absl::UnavailableError(
        absl::StrCat("redis ", url_.Display(), " (", role_, ") answered ", reply.text)));
  }
  std::move(pending.done)(std::move(reply));
}

}  // namespace contacts::gateway
