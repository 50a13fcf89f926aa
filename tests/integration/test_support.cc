#include "tests/integration/test_support.h"

#include <fcntl.h>
#include <openssl/sha.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <thread>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "gtest/gtest.h"

namespace contacts::testing {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;

std::string TempDir() {
  const char* base = getenv("TMPDIR");
  std::string pattern = absl::StrCat(base ? base : "/tmp", "/contacts-test-XXXXXX");
  std::vector<char> buffer(pattern.begin(), pattern.end());
  buffer.push_back('\0');
  if (mkdtemp(buffer.data()) == nullptr) ADD_FAILURE() << "mkdtemp failed";
  return buffer.data();
}

std::unique_ptr<ChildProcess> ChildProcess::Start(const std::vector<std::string>& args) {
  auto child = std::unique_ptr<ChildProcess>(new ChildProcess());
  const std::string dir = TempDir();
  child->log_path_ = dir + "/stderr.log";
  child->stdout_path_ = dir + "/stdout.log";
  int out[2];
  if (pipe(out) != 0) {
    ADD_FAILURE() << "pipe failed";
    return nullptr;
  }
  pid_t pid = fork();
  if (pid == 0) {
    dup2(out[1], STDOUT_FILENO);
    int log = open(child->log_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    dup2(log, STDERR_FILENO);
    close(out[0]);
    std::vector<char*> argv;
    for (const std::string& arg : args) argv.push_back(const_cast<char*>(arg.c_str()));
    argv.push_back(nullptr);
    execv(argv[0], argv.data());
    _exit(127);
  }
  close(out[1]);
  child->pid_ = pid;
  // Read stdout until the ready line, 20 s at most.
  FILE* stream = fdopen(out[0], "r");
  // fgets ends at EOF if the child dies first; a child that hangs is ended by CTest's timeout.
  // (No waitpid here: reaping the child early would hide its exit status from Stop().)
  FILE* copy = fopen(child->stdout_path_.c_str(), "w");
  if (copy == nullptr) {
    ADD_FAILURE() << "cannot write " << child->stdout_path_;
    fclose(stream);
    return nullptr;
  }
  // The port after `label` ("listening on HOST:PORT"), or 0.
  auto port_after = [](const std::string& text, const std::string& label) {
    size_t at = text.find(label);
    if (at == std::string::npos) return 0;
    std::string address = text.substr(at + label.size());
    address = address.substr(0, address.find_first_of(" \n\",;"));
    int port = 0;
    return absl::SimpleAtoi(address.substr(address.rfind(':') + 1), &port) ? port : 0;
  };
  char line[4096];
  while (fgets(line, sizeof line, stream) != nullptr) {
    fputs(line, copy);
    child->port_ = port_after(line, "listening on ");
    child->admin_port_ = port_after(line, "admin on ");
    if (child->port_ != 0) break;
  }
  fflush(copy);
  // Keep copying stdout in the background so the child never blocks on a full pipe.
  child->copier_ = std::thread([stream, copy] {
    char more[4096];
    while (fgets(more, sizeof more, stream) != nullptr) {
      fputs(more, copy);
      fflush(copy);
    }
    fclose(stream);
    fclose(copy);
  });
  if (child->port_ == 0) {
    ADD_FAILURE() << args[0] << " did not report a listening port; see " << child->stdout_path_
                  << " and " << child->log_path_;
    return nullptr;
  }
  return child;
}

int ChildProcess::Stop(int signal, int timeout_ms) {
  if (pid_ <= 0) return -1;
  kill(pid_, signal);
  int status = 0;
  int result = -1;
  for (int waited = 0; waited < timeout_ms && result == -1; waited += 10) {
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      result = status;
    } else {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }
  if (result == -1) {
    kill(pid_, SIGKILL);
    waitpid(pid_, &status, 0);
  }
  pid_ = -1;
  if (copier_.joinable()) copier_.join();  // the pipe ends with the child
  return result;
}

ChildProcess::~ChildProcess() {
  Stop(SIGTERM);
  if (copier_.joinable()) copier_.join();
}

bool MakeTestCertificates(const std::string& dir) {
  std::string script = absl::StrCat(
      "set -e; cd '", dir, "';",
      "openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=contacts-test-ca "
      "-keyout ca.key -out ca.pem 2>/dev/null;",
      "openssl req -newkey rsa:2048 -nodes -subj /CN=localhost -keyout server.key -out server.csr "
      "2>/dev/null;",
      "printf 'subjectAltName=DNS:localhost\\n' > san.ext;",
      "openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 "
      "-extfile san.ext -out server.pem 2>/dev/null");
  int rc = std::system(
      absl::StrCat("bash -c \"", absl::StrReplaceAll(script, {{"\"", "\\\""}}), "\"").c_str());
  EXPECT_EQ(rc, 0) << "openssl could not make the test certificates";
  return rc == 0;
}

bool MakeCertificate(const std::string& dir, const std::string& ca, const std::string& name,
                     const std::string& common_name, int days) {
  std::string script = absl::StrCat(
      "set -e; cd '", dir, "';", "[ -f ", ca,
      ".pem ] || openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=", ca, " -keyout ", ca,
      ".key -out ", ca, ".pem 2>/dev/null;",
      "openssl req -newkey rsa:2048 -nodes -subj /CN=", common_name, " -keyout ", name,
      ".key -out ", name, ".csr 2>/dev/null;", "printf 'subjectAltName=DNS:", common_name,
      "\\n' > ", name, ".ext;", "openssl x509 -req -in ", name, ".csr -CA ", ca, ".pem -CAkey ", ca,
      ".key -CAcreateserial -days ", days, " -extfile ", name, ".ext -out ", name,
      ".pem 2>/dev/null");
  int rc = std::system(
      absl::StrCat("bash -c \"", absl::StrReplaceAll(script, {{"\"", "\\\""}}), "\"").c_str());
  EXPECT_EQ(rc, 0) << "openssl could not make the certificate " << name;
  return rc == 0;
}

int64_t ResidentBytes(pid_t pid) {
  std::ifstream status(pid == 0 ? std::string("/proc/self/status")
                                : absl::StrCat("/proc/", pid, "/status"));
  std::string line;
  while (std::getline(status, line)) {
    int64_t kb = 0;
    if (line.rfind("VmRSS:", 0) == 0 &&
        absl::SimpleAtoi(absl::StripAsciiWhitespace(absl::StripSuffix(line.substr(6), "kB")),
                         &kb)) {
      return kb * 1024;
    }
  }
  return -1;
}

HttpResult HttpRequest(const std::string& method, int port, const std::string& target,
                       const std::string& ca_file, const std::string& address) {
  asio::io_context io;
  asio::ip::tcp::endpoint endpoint(asio::ip::make_address(address),
                                   static_cast<unsigned short>(port));
  http::request<http::empty_body> request{http::string_to_verb(method), target, 11};
  request.set(http::field::host, "localhost");
  http::response<http::string_body> response;
  beast::flat_buffer buffer;
  beast::error_code ec;
  if (ca_file.empty()) {
    beast::tcp_stream stream(io);
    stream.connect(endpoint, ec);
    if (!ec) http::write(stream, request, ec);
    if (!ec) http::read(stream, buffer, response, ec);
  } else {
    asio::ssl::context tls(asio::ssl::context::tls_client);
    tls.load_verify_file(ca_file);
    tls.set_verify_mode(asio::ssl::verify_peer);
    beast::ssl_stream<beast::tcp_stream> stream(io, tls);
    SSL_set_tlsext_host_name(stream.native_handle(), "localhost");
    beast::get_lowest_layer(stream).connect(endpoint, ec);
    if (!ec) stream.handshake(asio::ssl::stream_base::client, ec);
    if (!ec) http::write(stream, request, ec);
    if (!ec) http::read(stream, buffer, response, ec);
  }
  EXPECT_FALSE(ec) << method << " " << target << ": " << ec.message();
  return {static_cast<int>(response.result_int()), response.body()};
}

std::vector<std::string> SplitLines(const std::string& text) {
  return absl::StrSplit(text, '\n', absl::SkipEmpty());
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

void WriteAtomically(const std::string& path, const std::string& content) {
  std::ofstream(path + ".new") << content;
  EXPECT_EQ(std::rename((path + ".new").c_str(), path.c_str()), 0) << "cannot write " << path;
}

std::string Sha256Hex(std::string_view data) {
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(data.data()), data.size(), digest);
  return absl::BytesToHexString(
      absl::string_view(reinterpret_cast<const char*>(digest), sizeof digest));
}

std::unique_ptr<KoreSim> KoreSim::Start(const std::vector<std::string>& flags,
                                        const std::optional<Tls>& tls) {
  auto sim = std::unique_ptr<KoreSim>(new KoreSim());
  std::vector<std::string> args = {KORE_SIM_PATH, "--listen", "127.0.0.1:0", "--quiet"};
  if (tls) {
    const std::string stem = absl::StrCat(tls->dir, "/", tls->name);
    args.insert(args.end(), {"--tls-cert", stem + ".pem", "--tls-key", stem + ".key"});
    sim->ca_file_ = tls->dir + "/ca.pem";
  }
  args.insert(args.end(), flags.begin(), flags.end());
  sim->process_ = ChildProcess::Start(args);
  if (sim->process_ == nullptr) return nullptr;
  return sim;
}

std::string KoreSim::base_url() const {
  return ca_file_.empty() ? absl::StrCat("http://127.0.0.1:", port())
                          : absl::StrCat("https://localhost:", port());
}

HttpResult KoreSim::Control(const std::string& method, const std::string& target) const {
  return HttpRequest(method, port(), target, ca_file_);
}

std::vector<std::string> KoreSim::Ids(const std::string& list) const {
  return SplitLines(Control("GET", absl::StrCat("/_sim/lists/", list, "/ids")).body);
}

std::string KoreSim::Stats() const { return Control("GET", "/_sim/stats").body; }

int64_t KoreSim::ListRequests() const { return StatsNumber(Stats(), "list_requests"); }

int64_t KoreSim::StatsNumber(const std::string& stats, const std::string& key, int64_t absent) {
  const std::string label = absl::StrCat("\"", key, "\":");
  size_t at = stats.find(label);
  return at == std::string::npos ? absent : std::stoll(stats.substr(at + label.size()));
}

std::unique_ptr<ChildProcess> StartGatewayProcess(const KoreSim& upstream,
                                                  const GatewayFlags& flags) {
  std::vector<std::string> args = {
      GATEWAY_PATH,        "--listen",     absl::StrCat("127.0.0.1:", flags.port),
      "--admin-listen",    "127.0.0.1:0",  "--upstream",
      upstream.base_url(), "--rate-limit", "0"};
  if (upstream.ca_file().empty()) {
    args.push_back("--upstream-allow-plain-http");
  } else {
    args.insert(args.end(), {"--upstream-ca-file", upstream.ca_file()});
  }
  if (!flags.client_id.empty()) args.insert(args.end(), {"--client-id", flags.client_id});
  if (!flags.client_secret.empty()) {
    const std::string secret_file = TempDir() + "/secret";
    std::ofstream(secret_file) << flags.client_secret;
    args.insert(args.end(), {"--client-secret-file", secret_file});
  }
  if (flags.allow_unauthenticated_callers) args.push_back("--allow-unauthenticated-callers");
  // One resume token key for every gateway process of the test, as replicas share one Secret: a
  // token from before a restart is good after it. A key file in `extra` comes later and wins.
  static const std::string* key_file = [] {
    auto* path = new std::string(TempDir() + "/resume-token.keys");
    std::ofstream(*path) << "test-support-resume-token-key-0123456789\n";
    return path;
  }();
  args.insert(args.end(), {"--resume-token-key-file", *key_file});
  args.insert(args.end(), flags.extra.begin(), flags.extra.end());
  return ChildProcess::Start(args);
}

}  // namespace contacts::testing

namespace contacts::testing {
namespace {

int FreePort() {
  asio::io_context io;
  asio::ip::tcp::acceptor acceptor(io,
                                   asio::ip::tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  return acceptor.local_endpoint().port();
}

std::string ShellQuote(const std::string& arg) {
  return absl::StrCat("'", absl::StrReplaceAll(arg, {{"'", "'\\''"}}), "'");
}

}  // namespace

std::unique_ptr<RedisServer> RedisServer::Start(const Options& options) {
  auto server = std::unique_ptr<RedisServer>(new RedisServer());
  server->options_ = options;
  server->dir_ = TempDir();
  for (size_t i = 0; i + 1 < options.flags.size(); ++i) {
    if (options.flags[i] == "--requirepass") server->password_ = options.flags[i + 1];
  }
  // The port is free when chosen, but another process may take it before redis-server binds it:
  // then redis-server exits and another port is tried.
  for (int attempt = 0; attempt < 5; ++attempt) {
    server->port_ = FreePort();
    if (server->Launch()) return server;
  }
  ADD_FAILURE() << "redis-server did not start; see " << server->dir_ << "/redis.log";
  return nullptr;
}

bool RedisServer::Launch() {
  std::vector<std::string> args = {
      "/usr/bin/redis-server", "--bind", "127.0.0.1", "--save", "",
      "--appendonly",          "no",     "--dir",     dir_,     "--logfile",
      dir_ + "/redis.log"};
  if (options_.tls_dir.empty()) {
    args.insert(args.end(), {"--port", absl::StrCat(port_)});
  } else {
    const std::string& tls = options_.tls_dir;
    args.insert(args.end(), {"--port", "0", "--tls-port", absl::StrCat(port_), "--tls-cert-file",
                             tls + "/server.pem", "--tls-key-file", tls + "/server.key",
                             "--tls-ca-cert-file", tls + "/ca.pem", "--tls-auth-clients", "no"});
  }
  args.insert(args.end(), options_.flags.begin(), options_.flags.end());
  pid_t pid = fork();
  if (pid == 0) {
    int null = open("/dev/null", O_RDWR);
    dup2(null, STDIN_FILENO);
    dup2(null, STDOUT_FILENO);
    dup2(null, STDERR_FILENO);
    std::vector<char*> argv;
    for (const std::string& arg : args) argv.push_back(const_cast<char*>(arg.c_str()));
    argv.push_back(nullptr);
    execv(argv[0], argv.data());
    _exit(127);
  }
  pid_ = pid;
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (std::chrono::steady_clock::now() < give_up) {
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return false;
    }
    if (Cli({"PING"}) == "PONG") return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  Kill();
  return false;
}

std::string RedisServer::url() const {
  return options_.tls_dir.empty() ? absl::StrCat("redis://127.0.0.1:", port_)
                                  : absl::StrCat("rediss://localhost:", port_);
}

std::string RedisServer::Cli(const std::vector<std::string>& args) const {
  std::string command = absl::StrCat("/usr/bin/redis-cli -h 127.0.0.1 -p ", port_);
  if (!options_.tls_dir.empty()) {
    absl::StrAppend(&command, " --tls --sni localhost --cacert ",
                    ShellQuote(options_.tls_dir + "/ca.pem"));
  }
  if (!password_.empty()) {
    absl::StrAppend(&command, " --no-auth-warning -a ", ShellQuote(password_));
  }
  for (const std::string& arg : args) absl::StrAppend(&command, " ", ShellQuote(arg));
  absl::StrAppend(&command, " 2>&1");
  FILE* pipe = popen(command.c_str(), "r");
  if (pipe == nullptr) return "";
  std::string out;
  char buffer[4096];
  size_t n = 0;
  while ((n = fread(buffer, 1, sizeof buffer, pipe)) > 0) out.append(buffer, n);
  pclose(pipe);
  while (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

void RedisServer::Kill() {
  if (pid_ <= 0) return;
  kill(pid_, SIGCONT);
  kill(pid_, SIGKILL);
  waitpid(pid_, nullptr, 0);
  pid_ = -1;
}

bool RedisServer::Restart() {
  Kill();
  if (Launch()) return true;
  ADD_FAILURE() << "redis-server did not restart on port " << port_;
  return false;
}

void RedisServer::Freeze(bool frozen) {
  if (pid_ > 0) kill(pid_, frozen ? SIGSTOP : SIGCONT);
}

RedisServer::~RedisServer() { Kill(); }

struct DelayProxy::Impl {
  struct Link {
    explicit Link(asio::io_context& io) : client(io), server(io) {}
    asio::ip::tcp::socket client, server;
  };

  explicit Impl(int target_port)
      : acceptor(io, asio::ip::tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0)),
        target(asio::ip::make_address("127.0.0.1"), static_cast<unsigned short>(target_port)) {}

  void Accept() {
    acceptor.async_accept([this](boost::system::error_code ec, asio::ip::tcp::socket socket) {
      if (ec) return;
      Accept();
      if (cut) return;  // the socket closes here
      auto link = std::make_shared<Link>(io);
      link->client = std::move(socket);
      links.erase(std::remove_if(links.begin(), links.end(),
                                 [](const std::weak_ptr<Link>& l) { return l.expired(); }),
                  links.end());
      links.push_back(link);
      link->server.async_connect(target, [this, link](boost::system::error_code ec) {
        if (ec) {
          Close(*link);
          return;
        }
        Pump(link, &link->client, &link->server);
        Pump(link, &link->server, &link->client);
      });
    });
  }

  // Reads a chunk, holds it for the delay, writes it on, and again; one chunk at a time.
  void Pump(std::shared_ptr<Link> link, asio::ip::tcp::socket* from, asio::ip::tcp::socket* to) {
    auto buffer = std::make_shared<std::array<char, 65536>>();
    from->async_read_some(asio::buffer(*buffer), [this, link, from, to, buffer](
                                                     boost::system::error_code ec, size_t n) {
      if (ec) {
        Close(*link);
        return;
      }
      auto timer = std::make_shared<asio::steady_timer>(io);
      timer->expires_after(std::chrono::milliseconds(delay_ms.load()));
      timer->async_wait([this, link, from, to, buffer, n, timer](boost::system::error_code) {
        asio::async_write(*to, asio::buffer(*buffer, n),
                          [this, link, from, to, buffer](boost::system::error_code ec, size_t) {
                            if (ec) {
                              Close(*link);
                              return;
                            }
                            Pump(link, from, to);
                          });
      });
    });
  }

  void Close(Link& link) {
    boost::system::error_code ignored;
    link.client.close(ignored);
    link.server.close(ignored);
  }

  asio::io_context io;
  asio::ip::tcp::acceptor acceptor;
  asio::ip::tcp::endpoint target;
  std::atomic<int64_t> delay_ms{0};
  bool cut = false;                        // on the proxy's thread
  std::vector<std::weak_ptr<Link>> links;  // on the proxy's thread
  std::thread thread;
};

DelayProxy::DelayProxy(int target) : impl_(std::make_unique<Impl>(target)) {
  port_ = impl_->acceptor.local_endpoint().port();
  impl_->Accept();
  impl_->thread = std::thread([impl = impl_.get()] { impl->io.run(); });
}

DelayProxy::~DelayProxy() {
  impl_->io.stop();
  impl_->thread.join();
}

void DelayProxy::SetDelay(std::chrono::milliseconds delay) { impl_->delay_ms = delay.count(); }

void DelayProxy::Cut(bool cut) {
  asio::post(impl_->io, [impl = impl_.get(), cut] {
    impl->cut = cut;
    if (!cut) return;
    for (const std::weak_ptr<Impl::Link>& weak : impl->links) {
      if (std::shared_ptr<Impl::Link> link = weak.lock()) impl->Close(*link);
    }
    impl->links.clear();
  });
}

}  // namespace contacts::testing
