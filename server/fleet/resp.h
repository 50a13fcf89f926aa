#ifndef CONTACTS_GATEWAY_SERVER_FLEET_RESP_H_
#define CONTACTS_GATEWAY_SERVER_FLEET_RESP_H_

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

struct redisReader;

namespace contacts::gateway {

// One Redis reply (RESP2), as a value.
struct RedisReply {
  enum class Type { kString, kStatus, kError, kInteger, kNil, kArray };
  Type type = Type::kNil;
  std::string text;  // kString, kStatus, kError
  int64_t integer = 0;
  std::vector<RedisReply> elements;  // kArray

  bool is_error() const { return type == Type::kError; }
  // "kError NOSCRIPT No matching script" and the like, for logs.
  std::string Describe() const;
};

// A command as RESP bytes (hiredis's redisFormatCommandArgv).
std::string FormatCommand(const std::vector<std::string>& args);

// Replies from RESP bytes (hiredis's redisReader), as they arrive in any pieces. Bounded: arrays
// of more than kMaxElements elements, and more than max_buffered bytes waiting for the end of a
// reply, are protocol errors. Not thread-safe.
class RespReader {
 public:
  static constexpr int64_t kMaxElements = 1 << 16;

  explicit RespReader(size_t max_buffered);
  ~RespReader();
  RespReader(const RespReader&) = delete;
  RespReader& operator=(const RespReader&) = delete;

  // Errors (kDataLoss) once the bytes are not RESP; the reader is unusable after that.
  absl::Status Feed(std::string_view bytes);
  // The next complete reply; nullopt until more bytes arrive.
  absl::StatusOr<std::optional<RedisReply>> Next();

 private:
  redisReader* reader_;
  const size_t max_buffered_;
  bool failed_ = false;
};

}  // namespace contacts::gateway

#endif  // CONTACTS_GATEWAY_SERVER_FLEET_RESP_H_
