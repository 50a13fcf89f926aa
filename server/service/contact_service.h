#ifndef CONTACTS_GATEWAY_SERVER_SERVICE_CONTACT_SERVICE_H_
#define CONTACTS_GATEWAY_SERVER_SERVICE_CONTACT_SERVICE_H_

#include <grpcpp/grpcpp.h>

#include <cstdint>

#include "absl/status/status.h"
#include "contacts/v1/contacts.grpc.pb.h"
#include "server/stream/page_source.h"
#include "server/upstream/jwt.h"

namespace contacts::gateway {

struct StreamOptions {
  int32_t default_page_size = 50;
  int32_t max_page_size = 1000;
  int32_t default_batch_size = 500;
  int32_t max_batch_size = 10000;
  size_t max_batch_bytes = 1 << 20;  // a response message stays well below gRPC's 4 MiB default
  int32_t prefetch_pages = 2;        // pages fetched or buffered ahead of the caller, at most
  int64_t max_pages = 100000;        // per stream, against upstreams that never stop
  int32_t seam_overlap = 1;          // contacts re-read at each page seam (see Pager)
};

// The one conversion from the gateway's absl::Status to what a gRPC caller sees.
grpc::Status ToGrpcStatus(const absl::Status& status);

// contacts.v1.ContactService on gRPC's callback API: each StreamContacts call is one reactor that
// pages through `source` and writes one message at a time, with no thread of its own.
// `minter` (may be null) supplies the gateway's own upstream credentials for callers that bring
// none. Both must outlive the service.
class ContactService final : public contacts::v1::ContactService::CallbackService {
 public:
  ContactService(PageSource& source, JwtMinter* minter, StreamOptions options);

  grpc::ServerWriteReactor<contacts::v1::StreamContactsResponse>* StreamContacts(
      grpc::CallbackServerContext* context,
      const contacts::v1::StreamContactsRequest* request) override;

 private:
  PageSource& source_;
  JwtMinter* const minter_;
  const StreamOptions options_;
};

}  // namespace contacts::gateway

#endif  // CONTACTS_GATEWAY_SERVER_SERVICE_CONTACT_SERVICE_H_
