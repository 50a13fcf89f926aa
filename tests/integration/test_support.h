// Real parts for integration tests: child processes (kore-sim with its control API, the gateway
// binary), a test CA, a small HTTP(S) client and file helpers.
#ifndef CONTACTS_GATEWAY_TESTS_INTEGRATION_TEST_SUPPORT_H_
#define CONTACTS_GATEWAY_TESTS_INTEGRATION_TEST_SUPPORT_H_

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace contacts::testing {

// A child process started with `args`; its stdout is read until a line containing
// "listening on HOST:PORT" tells the port (and "admin on HOST:PORT" the admin port, if any).
// Stdout is copied to `stdout_path()`, stderr goes to `log_path()`.
// The destructor sends SIGTERM and waits (SIGKILL after 10 s).
class ChildProcess {
 public:
  // Fails the current test (and returns nullptr) when the process does not get ready in 20 s.
  static std::unique_ptr<ChildProcess> Start(const std::vector<std::string>& args);
  ~ChildProcess();

  int port() const { return port_; }
  int admin_port() const { return admin_port_; }
  pid_t pid() const { return pid_; }
  const std::string& log_path() const { return log_path_; }
  const std::string& stdout_path() const { return stdout_path_; }
  // Sends `signal` and waits for the exit, and for stdout_path() to hold all the child wrote;
  // returns the exit status as from waitpid, or -1.
  int Stop(int signal, int timeout_ms = 10000);

 private:
  pid_t pid_ = -1;
  int port_ = 0;
  int admin_port_ = 0;
  std::string log_path_;
  std::string stdout_path_;
  std::thread copier_;  // stdout → stdout_path_
};

// A fresh directory under TMPDIR, removed by nobody: tests are short-lived.
std::string TempDir();

// Writes ca.pem, server.pem, server.key (for the name localhost only) into `dir` with the openssl
// command line tool; returns false (and fails the test) when that does not work.
bool MakeTestCertificates(const std::string& dir);

// Writes <name>.pem and <name>.key into `dir`: a certificate for `common_name` (also its DNS
// subjectAltName) signed by the CA <ca>.pem/<ca>.key there (made first when missing), valid for
// `days` (negative: expired already). Returns false (and fails the test) when openssl fails.
bool MakeCertificate(const std::string& dir, const std::string& ca, const std::string& name,
                     const std::string& common_name, int days = 2);

// This process's resident set size in bytes (VmRSS), or -1.
int64_t ResidentBytes(pid_t pid = 0);

struct HttpResult {
  int status = 0;
  std::string body;
};
// One HTTP/1.1 request to address:port ("localhost" as TLS host name when ca_file is set).
HttpResult HttpRequest(const std::string& method, int port, const std::string& target,
                       const std::string& ca_file = "", const std::string& address = "127.0.0.1");

std::vector<std::string> SplitLines(const std::string& text);

// The whole file, or "" when it cannot be read.
std::string ReadFile(const std::string& path);
// Writes `path` through a renamed temporary file, so that a reader sees the old or the new content
// only; fails the current test when the rename fails.
void WriteAtomically(const std::string& path, const std::string& content);
// Lower-case hex SHA-256 of `data`, as the credentials file's token_sha256 holds it.
std::string Sha256Hex(std::string_view data);

// The kore-sim process on a free port of 127.0.0.1, and its control API (/_sim/...).
class KoreSim {
 public:
  // Serve HTTPS with <dir>/<name>.pem and <dir>/<name>.key, signed by <dir>/ca.pem (see
  // MakeTestCertificates and MakeCertificate); control requests trust that CA.
  struct Tls {
    std::string dir;
    std::string name = "server";
  };
  // Starts kore-sim with --quiet and `flags` (--app ID=SECRET, --rate-limit N, ...), over plain
  // HTTP unless `tls` is set. Fails the current test (and returns nullptr) when it does not start.
  static std::unique_ptr<KoreSim> Start(const std::vector<std::string>& flags,
                                        const std::optional<Tls>& tls = std::nullopt);

  int port() const { return process_->port(); }
  // https://localhost:PORT (the test certificates' name) or http://127.0.0.1:PORT.
  std::string base_url() const;
  // The CA that signed kore-sim's certificate; empty over plain HTTP.
  const std::string& ca_file() const { return ca_file_; }

  // One control request, e.g. ("POST", "/_sim/reset").
  HttpResult Control(const std::string& method, const std::string& target) const;
  // The list's current ids, in list order.
  std::vector<std::string> Ids(const std::string& list) const;
  // The body of GET /_sim/stats: {"requests":N,"list_requests":N,...,"by_status":{"200":N,...}}.
  std::string Stats() const;
  // The requests on the contacts path since the last reset, or -1.
  int64_t ListRequests() const;
  // The number after "key": in a Stats() body, or `absent` (a status not answered yet is not in
  // by_status).
  static int64_t StatsNumber(const std::string& stats, const std::string& key, int64_t absent = -1);

 private:
  std::unique_ptr<ChildProcess> process_;
  std::string ca_file_;
};

// Debian's redis-server on a free port of 127.0.0.1, started by the test, without persistence
// (--save '' --appendonly no): an empty store after every (re)start. Its log is
// <dir()>/redis.log. The destructor kills it.
class RedisServer {
 public:
  struct Options {
    std::vector<std::string> flags{};  // more redis-server flags, e.g. {"--requirepass", "pw"}
    // TLS only (tls-port, no plain port) with <tls_dir>/server.pem and .key (for the name
    // localhost), clients not asked for certificates; see MakeTestCertificates.
    std::string tls_dir{};
  };
  // Fails the current test (and returns nullptr) when it does not answer PING within 10 s.
  static std::unique_ptr<RedisServer> Start(const Options& options);
  static std::unique_ptr<RedisServer> Start() { return Start(Options()); }
  ~RedisServer();

  int port() const { return port_; }
  // redis://127.0.0.1:PORT, or rediss://localhost:PORT with TLS.
  std::string url() const;
  const std::string& dir() const { return dir_; }
  // The output of redis-cli (its --tls/--cacert and -a password as needed) running `args`, e.g.
  // Cli({"SCRIPT", "FLUSH"}); trailing newline removed.
  std::string Cli(const std::vector<std::string>& args) const;
  // SIGKILL, as a crash: clients see the connection reset.
  void Kill();
  // Starts it again on the same port (empty); false (and a test failure) when it does not answer.
  bool Restart();
  // Pauses or resumes the process (SIGSTOP / SIGCONT): connections stay open, nothing answers.
  void Freeze(bool frozen);

 private:
  bool Launch();
  Options options_;
  std::string dir_;
  std::string password_;  // from --requirepass, for Cli
  int port_ = 0;
  pid_t pid_ = -1;
};

// A TCP proxy on a free port of 127.0.0.1 in front of 127.0.0.1:`target`, on its own thread, that
// holds every chunk of bytes in either direction for `delay` (changeable at any time), or drops
// every connection while cut. For slow and unreachable Redis.
class DelayProxy {
 public:
  explicit DelayProxy(int target);
  ~DelayProxy();
  int port() const { return port_; }
  void SetDelay(std::chrono::milliseconds delay);
  // Closes every connection and refuses new ones while cut.
  void Cut(bool cut);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  int port_ = 0;
};

// What a test chooses of the gateway binary's command line. Every member has an initializer, so
// that designated initializers may leave any out (-Wmissing-field-initializers).
struct GatewayFlags {
  int port = 0;                 // --listen 127.0.0.1:port; 0 for any
  std::string client_id{};      // --client-id, when set
  std::string client_secret{};  // --client-secret-file (a file written for it), when set
  bool allow_unauthenticated_callers = true;
  std::vector<std::string> extra{};  // last on the command line
};
// Starts the contacts-gateway binary against `upstream` (its URL and CA, or plain HTTP allowed),
// with an admin port (admin_port()), no rate limit of its own (--rate-limit 0), the resume token
// key every gateway process of the test shares, and `flags`.
// Fails the current test (and returns nullptr) when it does not start.
std::unique_ptr<ChildProcess> StartGatewayProcess(const KoreSim& upstream,
                                                  const GatewayFlags& flags = {});

}  // namespace contacts::testing

#endif  // CONTACTS_GATEWAY_TESTS_INTEGRATION_TEST_SUPPORT_H_
