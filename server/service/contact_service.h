#ifndef CONTACTS_GATEWAY_SERVER_SERVICE_CONTACT_SERVICE_H_
#define CONTACTS_GATEWAY_SERVER_SERVICE_CONTACT_SERVICE_H_

#include <grpcpp/grpcpp.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "contacts/v1/contacts.grpc.pb.h"
#include "server/core/page_size_memory.h"
#include "server/core/page_source.h"
#include "server/service/authz.h"
#include "server/stream/resume_token.h"

namespace contacts::gateway {

struct StreamOptions {
  // 0: the largest page the upstream serves, up to max_page_size (Pager, PageSizeMemory).
  int32_t default_page_size = 0;
  int32_t max_page_size = 1000;  // also the largest limit any request asks for
  int32_t default_batch_size = 500;
  int32_t max_batch_size = 10000;
  size_t max_batch_bytes = 1 << 20;  // a response message stays well below gRPC's 4 MiB default
  int32_t prefetch_pages = 4;        // pages in flight or buffered ahead of the caller, at most
  int64_t max_pages = 100000;        // per stream, against upstreams that never stop
  int32_t seam_overlap = 1;          // contacts re-read at each page seam (see Pager)
  // Sign and check resume tokens; without configured keys a random key of this process.
  std::shared_ptr<const ResumeTokenKeys> resume_token_keys = ResumeTokenKeys::ProcessRandom();
};

class StreamContactsReactor;

// "/contacts.v1.ContactService/StreamContacts", as gRPC names the method.
const std::string& StreamContactsMethod();

// contacts.v1.ContactService on gRPC's callback API: each StreamContacts call is one reactor
// (contact_service.cc) that asks `source` for pages through a PrefetchWindow and writes one
// message at a time, with no thread of its own. Callers that bring no upstream credentials
// (metadata `auth` + `iid`) get the gateway's own if `authorizer` (may be null: pass-through only)
// allows it. `page_sizes` (may be null: nothing remembered) tells each stream the largest page
// the upstream serves for its account, and learns it from them. All must outlive the service.
//
// The method is registered raw (request and responses as bytes) so that the gateway parses the
// request itself, naming the field when a string is not UTF-8, and writes each response from the
// pages' encoded contacts without re-encoding them; and as bidirectional, so that it reads the
// request itself and refuses a call without one, or with two (see the reactor). Reflection still
// describes it from the proto: a server stream.
class ContactService final : public grpc::Service {
 public:
  ContactService(PageSource& source, Authorizer* authorizer, StreamOptions options,
                 PageSizeMemory* page_sizes = nullptr);

  // For draining: ends every stream in flight with `status` once its current write is done (the
  // trailing metadata `contacts-resume-token` says where to resume), and refuses new streams
  // with it. Thread-safe.
  void AbortAll(const absl::Status& status);
  size_t active_streams() const;

 private:
  friend class StreamContactsReactor;
  // False (and *refusal set) once AbortAll ran.
  bool Register(StreamContactsReactor* stream, absl::Status* refusal);
  void Unregister(StreamContactsReactor* stream);

  PageSource& source_;
  Authorizer* const authorizer_;
  PageSizeMemory* const page_sizes_;
  const StreamOptions options_;
  mutable absl::Mutex mu_;
  absl::flat_hash_set<StreamContactsReactor*> active_ ABSL_GUARDED_BY(mu_);
  std::optional<absl::Status> refusal_ ABSL_GUARDED_BY(mu_);
};

}  // namespace contacts::gateway

#endif  // CONTACTS_GATEWAY_SERVER_SERVICE_CONTACT_SERVICE_H_
