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

// Bytes given as numbers, NULs included.
std::string B(std::initializer_list<int> bytes) {
  std::string out;
  for (int byte : bytes) out += static_cast<char>(byte);
  return out;
}

Page SamplePage() {
  Page page;
  for (const Contact& contact : Samples()) page.contacts.push_back(contact);
  page.skip = 100;
  page.limit = 4;
  page.has_more = false;
  page.total_results = -1;  // whatever the upstream said, negative too
  return page;
}

TEST(PageRecordTest, RoundTripsContactsAndPagingFacts) {
  const Page page = SamplePage();
  absl::StatusOr<Page> back = DecodePageRecord(EncodePageRecord(page));
  ASSERT_TRUE(back.ok()) << back.status();
  ASSERT_EQ(back->contacts.size(), page.contacts.size());
  EXPECT_EQ(back->contacts.wire(0, 4), page.contacts.wire(0, 4));
  for (size_t i = 0; i < 4; ++i) EXPECT_EQ(back->contacts.id(i), Samples()[i].id());
  EXPECT_EQ(back->skip, 100);
  EXPECT_EQ(back->limit, 4);
  EXPECT_EQ(back->has_more, false);
  EXPECT_EQ(back->total_results, -1);
  EXPECT_EQ(back->total_pages, std::nullopt);

  absl::StatusOr<Page> empty = DecodePageRecord(EncodePageRecord(Page{}));
  ASSERT_TRUE(empty.ok()) << empty.status();
  EXPECT_EQ(empty->contacts.size(), 0u);
  EXPECT_EQ(empty->has_more, std::nullopt);
}

TEST(PageRecordTest, EveryTruncationAndTrailingByteIsRejected) {
  const std::string record = EncodePageRecord(SamplePage());
  for (size_t size = 0; size < record.size(); ++size) {
    EXPECT_FALSE(DecodePageRecord(record.substr(0, size)).ok()) << size;
  }
  EXPECT_FALSE(DecodePageRecord(record + '\0').ok());
  std::string other_version = record;
  other_version[1] = 2;
  EXPECT_EQ(DecodePageRecord(other_version).status().message(),
            "stored page: unknown record version");
  // Facts as varints in their shortest form only: one record per page.
  EXPECT_FALSE(DecodePageRecord(B({'P', 1, 1, 0x80, 0x00, 0})).ok());
  EXPECT_TRUE(DecodePageRecord(B({'P', 1, 1, 0x00, 0})).ok());
  std::string unknown_flag = record;
  unknown_flag[2] = static_cast<char>(unknown_flag[2] | 64);
  EXPECT_FALSE(DecodePageRecord(unknown_flag).ok());
}

// One `contacts` entry (tag 0x0a) holding `contact` as raw bytes.
std::string Entry(const std::string& contact) {
  return B({0x0a, static_cast<int>(contact.size())}) + contact;
}

TEST(PageRecordTest, FromWireAcceptsOnlyWhatAppendWrites) {
  const std::string id = B({0x0a, 2}) + "c1";  // field 1, "c1"
  EXPECT_TRUE(EncodedContacts::FromWire(Entry(id)).ok());
  EXPECT_TRUE(EncodedContacts::FromWire(Entry(id + B({0x1a, 0}))).ok());  // a zero create_time
  const std::vector<std::pair<std::string, std::string>> bad = {
      {"no id", Entry(B({0x12, 1}) + "5")},
      {"empty id written out", Entry(B({0x0a, 0}))},
      {"id not UTF-8", Entry(B({0x0a, 2, 0xc3, 0x28}))},
      {"phone not UTF-8", Entry(id + B({0x12, 1, 0xff}))},
      {"unknown field", Entry(id + B({0x2a, 1}) + "x")},
      {"fields out of order", Entry(B({0x12, 1}) + "5" + id)},
      {"id twice", Entry(id + id)},
      {"zero seconds written out", Entry(id + B({0x1a, 2, 0x08, 0}))},
      {"nanos of 10^9", Entry(id + B({0x1a, 6, 0x10, 0x80, 0x94, 0xeb, 0xdc, 0x03}))},
      {"entry length as a long varint", B({0x0a, 0x84, 0x00}) + id},
      {"length past the end", Entry(B({0x0a, 9}) + "c1")},
      {"not a contacts entry", B({0x12, 4}) + id},
      {"varint of eleven bytes",
       Entry(id + B({0x1a, 11, 0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f}))},
  };
  for (const auto& [what, wire] : bad) {
    EXPECT_FALSE(EncodedContacts::FromWire(wire).ok()) << what;
  }
}

}  // namespace
}  // namespace contacts::gateway
