// Real parts for integration tests: child processes (kore-sim, the gateway binary), a test CA,
// and a small HTTP(S) client for kore-sim's control API.
#ifndef CONTACTS_GATEWAY_TESTS_INTEGRATION_TEST_SUPPORT_H_
#define CONTACTS_GATEWAY_TESTS_INTEGRATION_TEST_SUPPORT_H_

#include <sys/types.h>

#include <memory>
#include <string>
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
// One HTTP/1.1 request to 127.0.0.1:port ("localhost" as TLS host name when ca_file is set).
HttpResult HttpRequest(const std::string& method, int port, const std::string& target,
                       const std::string& ca_file = "");

std::vector<std::string> SplitLines(const std::string& text);

}  // namespace contacts::testing

#endif  // CONTACTS_GATEWAY_TESTS_INTEGRATION_TEST_SUPPORT_H_
