// Streams one contact list from contacts-gateway through the installed client library and prints
// its ids, one a line, then "N contacts" on stderr. Exit code: the gRPC status code.
// Usage: consumer TARGET STREAM_ID LIST_ID ACCOUNT_ID
#include <iostream>

#include <grpcpp/grpcpp.h>

#include "client/contacts_client.h"
#include "contacts/v1/contacts.grpc.pb.h"

int main(int argc, char** argv) {
  if (argc != 5) {
    std::cerr << "usage: consumer TARGET STREAM_ID LIST_ID ACCOUNT_ID\n";
    return 64;
  }
  auto channel = grpc::CreateCustomChannel(argv[1], grpc::InsecureChannelCredentials(),
                                           contacts::client::GatewayChannelArguments());
  auto stub = contacts::v1::ContactService::NewStub(channel);
  contacts::v1::StreamContactsRequest request;
  request.set_stream_id(argv[2]);
  request.set_contact_list_id(argv[3]);
  request.set_account_id(argv[4]);
  contacts::client::StreamResult result = contacts::client::StreamContacts(
      *stub, request, {}, [](const contacts::v1::StreamContactsResponse& response) {
        for (const auto& contact : response.contacts()) std::cout << contact.id() << '\n';
        return true;
      });
  std::cerr << result.contacts << " contacts\n";
  if (!result.status.ok()) std::cerr << "error: " << result.status.error_message() << '\n';
  return result.status.error_code();
}
