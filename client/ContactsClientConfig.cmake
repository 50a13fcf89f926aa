# find_package(ContactsClient CONFIG): the contacts-gateway client library as contacts::client
# (client/contacts_client.h, client/contact_format.h) and its contacts.v1 stubs as contacts::proto.
include(CMakeFindDependencyMacro)
find_dependency(Protobuf)
find_dependency(gRPC CONFIG)
find_dependency(absl CONFIG)
include(${CMAKE_CURRENT_LIST_DIR}/ContactsClientTargets.cmake)
