// baseline_server: B2's baseline (bench/REPORT.md). contacts.v1.ContactService/StreamContacts with
// nothing of the gateway behind it: each call streams prebuilt one-contact StreamContactsResponse
// messages, so that load_client measures what gRPC 1.51's callback API costs per message, and the
// gateway's contacts/s can be taken as a share of it.
//
// Written as the gateway writes (server/service/contact_service.cc, gateway_server.cc): a raw
// callback method (messages as grpc::ByteBuffer), one message in flight per stream, every message
// with more ready behind it sent with the buffer hint, GRPC_ARG_HTTP2_WRITE_BUFFER_SIZE 16 KiB.
// The messages are the gateway's, byte for byte in shape and size: for each --list cl-sim-N,
// kore-sim's rendered 1000-contact pages go through the gateway's ParsePage, and each contact's
// encoded entry is followed by resume_token (the gateway's EncodeResumeToken, with the last four
// ids as after one contact per message, signed with the key file's key as the gateway signs with
// its --resume-token-key-file), total_results and delivered_count. All are built before
// the ready line; a call copies nothing, it hands gRPC a reference to the next message.
//
//   baseline_server [--listen HOST:PORT] [--resume-token-key-file FILE] --list cl-sim-N ...
//
// Prints "baseline_server listening on HOST:PORT" when ready; serves until killed. A call for
// another list ends with NOT_FOUND; the request's page_size, max_batch_size, max_contacts and
// resume_token are ignored (every call streams the whole list, one contact per message).

#include <algorithm>
#include <cstdio>
#include <deque>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "contacts/v1/contacts.grpc.pb.h"
#include "grpcpp/grpcpp.h"
#include "server/stream/resume_token.h"
#include "server/upstream/page_parser.h"
#include "tools/kore-sim/contact_render.h"

namespace {

using contacts::v1::ContactService;
using contacts::v1::StreamContactsRequest;
using contacts::v1::StreamContactsResponse;

constexpr int kWriteBufferBytes = 16 << 10;  // as the gateway (gateway_server.cc)
constexpr int64_t kPageSize = 1000;
// load_client's default ids: the tokens are bound to them (only their size matters here).
constexpr std::string_view kStreamId = "st-bench";
constexpr std::string_view kAccountId = "acct-bench";

using Messages = std::vector<grpc::Slice>;

// The messages of list cl-sim-`size`, one contact each, as the gateway would send them.
absl::StatusOr<Messages> BuildMessages(const std::string& list_id, int64_t size,
                                       const contacts::gateway::ResumeTokenKeys& token_keys) {
  namespace gw = contacts::gateway;
  namespace sim = contacts::kore_sim;
  const uint64_t fingerprint = gw::ListFingerprint(kStreamId, list_id, kAccountId);
  Messages messages;
  messages.reserve(static_cast<size_t>(size));
  std::deque<std::string> last_ids;
  std::vector<sim::ContactKey> keys;
  for (int64_t skip = 0; skip < size; skip += kPageSize) {
    keys.clear();
    for (int64_t i = skip; i < std::min(size, skip + kPageSize); ++i) {
      keys.push_back(sim::ContactKey::Generated(i));
    }
    std::string body = sim::RenderPage({.list_hash = sim::ListHash(list_id),
                                        .contacts = keys,
                                        .skip = skip,
                                        .limit = kPageSize,
                                        .total = size,
                                        .has_more = skip + kPageSize < size});
    absl::StatusOr<gw::Page> page = gw::ParsePage(body);
    if (!page.ok()) return page.status();
    for (size_t i = 0; i < page->contacts.size(); ++i) {
      const int64_t delivered = static_cast<int64_t>(messages.size()) + 1;
      last_ids.emplace_back(page->contacts.id(i));
      if (last_ids.size() > gw::kMaxResumeIds) last_ids.pop_front();
      std::string wire(page->contacts.wire(i, i + 1));
      StreamContactsResponse rest;
      rest.set_total_results(page->total_results.value_or(0));
      rest.set_delivered_count(delivered);
      rest.set_resume_token(gw::EncodeResumeToken(
          {delivered, delivered, std::vector<std::string>(last_ids.begin(), last_ids.end())},
          fingerprint, token_keys));
      rest.AppendToString(&wire);
      messages.emplace_back(wire);
    }
  }
  return messages;
}

// One call: writes the list's messages in order, one in flight at a time. gRPC calls back on its
// own threads, one callback at a time per call; the reactor deletes itself in OnDone.
class Writer final : public grpc::ServerWriteReactor<grpc::ByteBuffer> {
 public:
  explicit Writer(const Messages* messages) : messages_(messages) {
    if (messages_ == nullptr) {
      Finish(grpc::Status(grpc::StatusCode::NOT_FOUND, "baseline_server: no such list"));
      return;
    }
    // As the gateway, the headers go first on their own (sent with a buffer-hinted first message,
    // they would wait with it, and that write would not complete); the writes begin once they
    // are out.
    StartSendInitialMetadata();
  }

  void OnSendInitialMetadataDone(bool ok) override {
    if (!ok) {
      Finish(grpc::Status(grpc::StatusCode::CANCELLED, "the stream broke before the first write"));
      return;
    }
    Next();
  }

  void OnWriteDone(bool ok) override {
    if (!ok) {
      Finish(grpc::Status(grpc::StatusCode::CANCELLED, "the stream broke while writing"));
      return;
    }
    Next();
  }

  void OnDone() override { delete this; }

 private:
  void Next() {
    if (next_ == messages_->size()) {
      Finish(grpc::Status::OK);
      return;
    }
    grpc::Slice message = (*messages_)[next_++];  // a reference, not a copy
    grpc::ByteBuffer wire(&message, 1);
    wire_.Swap(&wire);
    // As the gateway: a message with more ready behind it waits for them (up to the write
    // buffer); the last one goes without the hint, which flushes them all.
    const bool more = next_ < messages_->size();
    StartWrite(&wire_, more ? grpc::WriteOptions().set_buffer_hint() : grpc::WriteOptions());
  }

  const Messages* const messages_;
  size_t next_ = 0;
  grpc::ByteBuffer wire_;  // the message being written, owned by gRPC until OnWriteDone
};

class BaselineService final
    : public ContactService::WithRawCallbackMethod_StreamContacts<ContactService::Service> {
 public:
  explicit BaselineService(const std::map<std::string, Messages>& lists) : lists_(lists) {}

  grpc::ServerWriteReactor<grpc::ByteBuffer>* StreamContacts(
      grpc::CallbackServerContext*, const grpc::ByteBuffer* request) override {
    std::vector<grpc::Slice> slices;
    std::string bytes;
    if (request->Dump(&slices).ok()) {
      for (const grpc::Slice& slice : slices) {
        bytes.append(reinterpret_cast<const char*>(slice.begin()), slice.size());
      }
    }
    StreamContactsRequest parsed;
    const Messages* messages = nullptr;
    if (parsed.ParseFromString(bytes)) {
      auto it = lists_.find(parsed.contact_list_id());
      if (it != lists_.end()) messages = &it->second;
    }
    return new Writer(messages);
  }

 private:
  const std::map<std::string, Messages>& lists_;  // read-only once serving
};

constexpr std::string_view kUsage =
    "usage: baseline_server [--listen HOST:PORT] [--resume-token-key-file FILE] --list cl-sim-N "
    "[--list cl-sim-M ...]\n";

}  // namespace

int main(int argc, char** argv) {
  std::string listen = "127.0.0.1:0";
  std::shared_ptr<const contacts::gateway::ResumeTokenKeys> keys =
      contacts::gateway::ResumeTokenKeys::ProcessRandom();
  std::map<std::string, Messages> lists;
  for (int i = 1; i < argc; ++i) {
    const std::string_view flag = argv[i];
    if (i + 1 >= argc ||
        (flag != "--listen" && flag != "--list" && flag != "--resume-token-key-file")) {
      std::fprintf(stderr, "%s", kUsage.data());
      return 2;
    }
    const std::string value = argv[++i];
    if (flag == "--listen") {
      listen = value;
      continue;
    }
    if (flag == "--resume-token-key-file") {  // before the lists it signs for
      std::ifstream in(value);
      std::stringstream text;
      text << in.rdbuf();
      absl::StatusOr<std::shared_ptr<const contacts::gateway::ResumeTokenKeys>> parsed =
          contacts::gateway::ResumeTokenKeys::Parse(text.str());
      if (!in || !parsed.ok()) {
        std::fprintf(stderr, "baseline_server: %s: %s\n", value.c_str(),
                     in ? std::string(parsed.status().message()).c_str() : "cannot read it");
        return 2;
      }
      keys = *std::move(parsed);
      continue;
    }
    int64_t size = 0;
    if (!value.starts_with("cl-sim-") || !absl::SimpleAtoi(value.substr(7), &size) || size < 0) {
      std::fprintf(stderr, "baseline_server: lists are kore-sim's generated cl-sim-N\n%s",
                   kUsage.data());
      return 2;
    }
    absl::StatusOr<Messages> messages = BuildMessages(value, size, *keys);
    if (!messages.ok()) {
      std::fprintf(stderr, "baseline_server: %s\n",
                   std::string(messages.status().message()).c_str());
      return 1;
    }
    lists[value] = *std::move(messages);
  }
  if (lists.empty()) {
    std::fprintf(stderr, "%s", kUsage.data());
    return 2;
  }

  BaselineService service(lists);
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(listen, grpc::InsecureServerCredentials(), &port);
  builder.AddChannelArgument(GRPC_ARG_HTTP2_WRITE_BUFFER_SIZE, kWriteBufferBytes);
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (!server || port == 0) {
    std::fprintf(stderr, "baseline_server: cannot listen on %s\n", listen.c_str());
    return 1;
  }
  std::printf("baseline_server listening on %s:%d\n", listen.substr(0, listen.rfind(':')).c_str(),
              port);
  std::fflush(stdout);
  server->Wait();
  return 0;
}
