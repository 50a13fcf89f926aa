#ifndef CONTACTS_GATEWAY_SERVER_CONFIG_H_
#define CONTACTS_GATEWAY_SERVER_CONFIG_H_

#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "server/log.h"
#include "server/service/contact_service.h"
#include "server/stream/page_cache.h"
#include "server/stream/rate_budget.h"
#include "server/stream/retry.h"
#include "server/upstream/jwt.h"
#include "server/upstream/kore_client.h"

namespace contacts::gateway {

// Everything contacts-gateway can be told, with its defaults.
struct Config {
  std::string listen = "0.0.0.0:50051";
  KoreClientOptions upstream;
  RetryOptions retry;
  RateBudgetOptions rate;
  PageCacheOptions cache;
  std::string client_id;
  std::string client_secret;  // never printed
  JwtOptions jwt;
  StreamOptions stream;
  int io_threads = 2;
  absl::Duration drain_timeout = absl::Seconds(20);
  Severity log_level = Severity::kInfo;
};

// Reads flags (`--name=value`, `--name value`, `--flag` for booleans) over environment variables
// (`CONTACTS_GATEWAY_NAME`, upper case, '-' as '_') over the defaults. `getenv` is injectable for
// tests. Sets *help and returns a default Config when --help is given.
// Errors: kInvalidArgument with one line naming the flag and the problem (never a secret's value).
absl::StatusOr<Config> ParseConfig(const std::vector<std::string>& args,
                                   const std::function<const char*(const char*)>& getenv,
                                   bool* help);

// The --help text: every flag, its environment variable, its default and what it does.
std::string HelpText();

}  // namespace contacts::gateway

#endif  // CONTACTS_GATEWAY_SERVER_CONFIG_H_
