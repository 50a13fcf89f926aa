// contacts-cli: command-line parsing, progress display and the run loop behind client/cli_main.cc.
// Contacts go to stdout (or --output) as JSON Lines or CSV; progress, resume notes, the summary
// and errors go to stderr.
//
// Exit codes: 0 success; 1..16 the gRPC status code that ended the stream (e.g. 14 UNAVAILABLE
// after the resumes ran out, 5 NOT_FOUND); 64 usage error (bad or missing flag); 66 a credential
// (--token-file or $CONTACTS_TOKEN, --jwt-file, --ca-file, --cert-file, --key-file) cannot be read,
// is empty or is not usable; 73 --output cannot be created; 74 writing the output failed.
#ifndef CONTACTS_CLIENT_CLI_H_
#define CONTACTS_CLIENT_CLI_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "client/contacts_client.h"
#include "contacts/v1/contacts.pb.h"

namespace contacts::client {

inline constexpr int kExitUsage = 64;       // EX_USAGE
inline constexpr int kExitNoInput = 66;     // EX_NOINPUT
inline constexpr int kExitCantCreate = 73;  // EX_CANTCREAT
inline constexpr int kExitIoError = 74;     // EX_IOERR

enum class OutputFormat { kJsonLines, kCsv };
enum class ProgressMode { kAuto, kAlways, kNever };

// Everything the command line says. File names are kept as names: RunCli reads them.
struct CliOptions {
  bool help = false;  // --help: print CliUsage() and exit 0
  std::string target = "127.0.0.1:50051";
  contacts::v1::StreamContactsRequest request;  // list fields, sizes, max_contacts, resume_token
  OutputFormat format = OutputFormat::kJsonLines;
  // Secrets are read from files by RunCli (or come from the environment), never from argv.
  std::string token_file;  // bearer token, sent as `authorization: Bearer <token>`
  std::string env_token;   // $CONTACTS_TOKEN, used when token_file is empty
  std::string jwt_file;    // the caller's own Kore.ai JWT, sent as `auth`
  std::string app_id;
  TlsFiles tls;  // any set: TLS (mutual TLS with cert_file and key_file); none: plaintext
  absl::Duration deadline = absl::InfiniteDuration();
  int max_resumes = 5;
  std::string output;  // empty or "-": stdout
  ProgressMode progress = ProgressMode::kAuto;
  bool quiet = false;
};

// Parses `args` (argv without the program name). `env_target` is $CONTACTS_CLI_TARGET, if set;
// --target overrides it. Accepts `--flag value` and `--flag=value`. Errors are INVALID_ARGUMENT
// with a one-line message naming the flag. env_token is left for the caller to fill.
absl::StatusOr<CliOptions> ParseCliArgs(const std::vector<std::string_view>& args,
                                        std::optional<std::string_view> env_target);

// The --help text.
std::string CliUsage();

// One progress line (no "\r"): bar, delivered/total, percent, rate and ETA when `total` is known,
// else delivered and rate. `delivered` counts across resumes (and earlier runs, when resuming from
// a token); `received` is what this run received in `elapsed`, which sets the rate.
std::string FormatProgressLine(int64_t delivered, int64_t total, int64_t received,
                               absl::Duration elapsed);

// Runs the stream described by `options`; returns the exit code (see above).
int RunCli(const CliOptions& options);

// main(): parse, then help / usage error / RunCli.
int CliMain(int argc, char** argv);

}  // namespace contacts::client

#endif  // CONTACTS_CLIENT_CLI_H_
