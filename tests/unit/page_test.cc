#include "server/core/page.h"

#include <gtest/gtest.h>

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "contacts/v1/contacts.pb.h"

namespace contacts::gateway {
namespace {

using ::contacts::v1::Contact;
using ::contacts::v1::StreamContactsResponse;

Contact Make(std::string id, std::string phone, std::optional<std::pair<int64_t, int32_t>> created,
             std::optional<std::pair<int64_t, int32_t>> updated) {
  Contact contact;
  contact.set_id(std::move(id));
  contact.set_phone_number(std::move(phone));
  if (created) {
    contact.mutable_create_time()->set_seconds(created->first);
    contact.mutable_create_time()->set_nanos(created->second);
  }
  if (updated) {
    contact.mutable_update_time()->set_seconds(updated->first);
    contact.mutable_update_time()->set_nanos(updated->second);
  }
  return contact;
}

// Contacts whose encodings exercise every branch: long ids (two-byte lengths), no phone, times
// before 1970 (ten-byte varints), zero times (empty but present submessages), no times.
std::vector<Contact> Samples() {
  return {Make("c1", "+14155550100", {{1700000000, 123000000}}, {{1700000001, 0}}),
          Make(std::string(200, 'x'), "", std::nullopt, std::nullopt),
          Make("old", "1", {{-62135596800, 999999999}}, {{0, 0}}),
          Make("ü-ñ", std::string(64, '9'), {{0, 1}}, std::nullopt)};
}

TEST(EncodedContactsTest, EncodesExactlyAsProtobufDoes) {
  EncodedContacts encoded;
  StreamContactsResponse expected;
  for (const Contact& contact : Samples()) {
    encoded.push_back(contact);
    *expected.add_contacts() = contact;
  }
  ASSERT_EQ(encoded.size(), 4u);
  EXPECT_EQ(std::string(encoded.wire(0, encoded.size())), expected.SerializeAsString());
  EXPECT_EQ(encoded.bytes(), expected.ByteSizeLong());
}

TEST(EncodedContactsTest, ReadsIdsAndContactsBack) {
  EncodedContacts encoded;
  for (const Contact& contact : Samples()) encoded.push_back(contact);
  for (size_t i = 0; i < encoded.size(); ++i) {
    EXPECT_EQ(encoded.id(i), Samples()[i].id());
    EXPECT_EQ(encoded[i].SerializeAsString(), Samples()[i].SerializeAsString()) << i;
  }
}

TEST(EncodedContactsTest, AnyRangeIsAValidMessageOfThoseContacts) {
  EncodedContacts encoded;
  for (const Contact& contact : Samples()) encoded.push_back(contact);
  StreamContactsResponse message;
  ASSERT_TRUE(message.ParseFromString(std::string(encoded.wire(1, 3))));
  ASSERT_EQ(message.contacts_size(), 2);
  EXPECT_EQ(message.contacts(0).id(), Samples()[1].id());
  EXPECT_EQ(message.contacts(1).create_time().seconds(), -62135596800);
  EXPECT_TRUE(message.contacts(1).has_update_time());
  EXPECT_EQ(encoded.wire(2, 2), "");
}

TEST(EncodedContactsTest, CopiesShareUntilOneChanges) {
  EncodedContacts original;
  original.Append({.id = "a"});
  EncodedContacts copy = original;
  std::shared_ptr<const void> kept = original.Retain();
  const std::string_view before = original.wire(0, 1);
  copy.Append({.id = "b"});
  copy.clear();
  ASSERT_EQ(original.size(), 1u);
  EXPECT_EQ(original.id(0), "a");
  EXPECT_EQ(original.wire(0, 1).data(), before.data());  // never moved under a reader
  EXPECT_EQ(copy.size(), 0u);
}

}  // namespace
}  // namespace contacts::gateway
