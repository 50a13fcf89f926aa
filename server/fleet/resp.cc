#include "server/fleet/resp.h"

#include <hiredis/hiredis.h>
#include <hiredis/read.h>

#include <memory>
#include <new>

#include "absl/strings/str_cat.h"

namespace contacts::gateway {
namespace {

// hiredis's reply-object hooks, building RedisReply values: a root is allocated (and freed by
// freeObject, which hiredis calls on roots only); a child is the parent's element at its index,
// which createArray sized, so no child is allocated on its own.
RedisReply* Place(const redisReadTask* task) {
  if (task->parent == nullptr) return new (std::nothrow) RedisReply();
  auto* parent = static_cast<RedisReply*>(task->parent->obj);
  return &parent->elements[static_cast<size_t>(task->idx)];
}

void* CreateString(const redisReadTask* task, char* text, size_t size) {
  RedisReply* reply = Place(task);
  if (reply == nullptr) return nullptr;
  reply->type = task->type == REDIS_REPLY_ERROR    ? RedisReply::Type::kError
                : task->type == REDIS_REPLY_STATUS ? RedisReply::Type::kStatus
                                                   : RedisReply::Type::kString;
  reply->text.assign(text, size);
  return reply;
}

void* CreateArray(const redisReadTask* task, int elements) {
  if (elements < 0 || elements > RespReader::kMaxElements) return nullptr;  // hiredis: OOM error
  RedisReply* reply = Place(task);
  if (reply == nullptr) return nullptr;
  reply->type = RedisReply::Type::kArray;
  reply->elements.resize(static_cast<size_t>(elements));
  return reply;
}

void* CreateInteger(const redisReadTask* task, long long value) {  // NOLINT(runtime/int)
  RedisReply* reply = Place(task);
  if (reply == nullptr) return nullptr;
  reply->type = RedisReply::Type::kInteger;
  reply->integer = value;
  return reply;
}

void* CreateNil(const redisReadTask* task) {
  RedisReply* reply = Place(task);
  if (reply == nullptr) return nullptr;
  reply->type = RedisReply::Type::kNil;
  return reply;
}

void FreeObject(void* reply) { delete static_cast<RedisReply*>(reply); }

redisReplyObjectFunctions kFunctions = {CreateString, CreateArray, CreateInteger, CreateNil,
                                        FreeObject};

}  // namespace

std::string RedisReply::Describe() const {
  switch (type) {
    case Type::kString:
      return absl::StrCat("a string of ", text.size(), " bytes");
    case Type::kStatus:
      return absl::StrCat("status ", text);
    case Type::kError:
      return absl::StrCat("error ", text);
    case Type::kInteger:
      return absl::StrCat("integer ", integer);
    case Type::kNil:
      return "nil";
    case Type::kArray:
      return absl::StrCat("an array of ", elements.size());
  }
  return "?";
}

std::string FormatCommand(const std::vector<std::string>& args) {
  std::vector<const char*> argv;
  std::vector<size_t> sizes;
  argv.reserve(args.size());
  sizes.reserve(args.size());
  for (const std::string& arg : args) {
    argv.push_back(arg.data());
    sizes.push_back(arg.size());
  }
  char* command = nullptr;
  const int size =
      redisFormatCommandArgv(&command, static_cast<int>(args.size()), argv.data(), sizes.data());
  if (size < 0 || command == nullptr) throw std::bad_alloc();
  std::string out(command, static_cast<size_t>(size));
  redisFreeCommand(command);
  return out;
}

RespReader::RespReader(size_t max_buffered)
    : reader_(redisReaderCreateWithFunctions(&kFunctions)), max_buffered_(max_buffered) {
  if (reader_ == nullptr) throw std::bad_alloc();
}

RespReader::~RespReader() { redisReaderFree(reader_); }

absl::Status RespReader::Feed(std::string_view bytes) {
  if (failed_) return absl::DataLossError("redis protocol: unusable after an error");
  if (reader_->err != 0 || redisReaderFeed(reader_, bytes.data(), bytes.size()) != REDIS_OK) {
    return absl::DataLossError(absl::StrCat("redis protocol: ", reader_->errstr));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::optional<RedisReply>> RespReader::Next() {
  void* reply = nullptr;
  if (failed_) return absl::DataLossError("redis protocol: unusable after an error");
  if (reader_->err != 0 || redisReaderGetReply(reader_, &reply) != REDIS_OK) {
    return absl::DataLossError(absl::StrCat("redis protocol: ", reader_->errstr));
  }
  if (reply == nullptr) {
    if (reader_->len - reader_->pos > max_buffered_) {
      failed_ = true;
      return absl::DataLossError(
          absl::StrCat("redis protocol: a reply larger than ", max_buffered_, " bytes"));
    }
    return std::nullopt;
  }
  std::unique_ptr<RedisReply> owned(static_cast<RedisReply*>(reply));
  return std::optional<RedisReply>(std::move(*owned));
}

}  // namespace contacts::gateway
