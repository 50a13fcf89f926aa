#ifndef CONTACTS_GATEWAY_TOOLS_KORE_SIM_CONTACT_RENDER_H_
#define CONTACTS_GATEWAY_TOOLS_KORE_SIM_CONTACT_RENDER_H_

// The simulated contacts and their JSON, written straight into a string (no DOM) so the simulator
// can serve millions of contacts a second. Everything here is a pure function of its arguments.
//
// Contact i (0-based) of list L, as generated from the list's size:
//   _id          c-<8 hex digits of FNV-1a-32(L)>-<i, at least 8 digits>   e.g. c-1a2b3c4d-00000042
//   createdAt    2024-01-01T00:00:00.000Z + i seconds
//   updatedAt    createdAt + 1 day
//   phoneNumber  "+1" and 10 digits derived from (L, i)
// A contact inserted later through a mutation gets a store-wide sequence number s instead:
//   _id c-<hash>-n<s, at least 8 digits>, createdAt 2025-01-01T00:00:00.000Z + s seconds.
//
// "Dirty" rendering (--dirty) is keyed by the contact's 1-based ordinal k = i + 1 (or s):
//   k % 7 == 0 → no phoneNumber; k % 11 == 0 → "updatedAt": null; k % 5 == 0 → timestamps without
//   milliseconds; every contact carries an unknown "attributes" object.

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

namespace contacts::kore_sim {

// Identifies one contact of a list: either the i-th contact generated from the list's size or the
// s-th contact inserted by a mutation. Eight bytes, so a materialized 10 M list stays small.
class ContactKey {
 public:
  static ContactKey Generated(int64_t index) { return ContactKey(static_cast<uint64_t>(index)); }
  static ContactKey Inserted(int64_t seq) {
    return ContactKey(static_cast<uint64_t>(seq) | kInsertedBit);
  }

  bool inserted() const { return (bits_ & kInsertedBit) != 0; }
  // The index for generated contacts, the sequence number for inserted ones.
  int64_t ordinal() const { return static_cast<int64_t>(bits_ & ~kInsertedBit); }

 private:
  static constexpr uint64_t kInsertedBit = uint64_t{1} << 63;
  explicit ContactKey(uint64_t bits) : bits_(bits) {}
  uint64_t bits_;
};

// FNV-1a, 32 bits, of the list id: the list part of every contact id.
uint32_t ListHash(std::string_view list_id);

// Appends the contact's `_id` (no quotes).
void AppendContactId(std::string& out, uint32_t list_hash, ContactKey key);

// One page answer as the simulator decided it; RenderPage writes it in the documented shape:
// {"status":"success","message":"Contacts retrieved successfully","data":{"results":[...],
//  "skip":S,"limit":L,"hasMore":B,"totalPages":P,"totalResults":T}}
struct PageAnswer {
  uint32_t list_hash = 0;
  std::span<const ContactKey> contacts;
  int64_t skip = 0;   // echoed as data.skip
  int64_t limit = 1;  // echoed as data.limit; > 0
  int64_t total = 0;  // data.totalResults; data.totalPages = ceil(total / limit)
  bool has_more = false;
  bool dirty = false;  // dirty contacts, and skip/limit/totalResults as strings on odd pages
};
std::string RenderPage(const PageAnswer& page);

}  // namespace contacts::kore_sim

#endif  // CONTACTS_GATEWAY_TOOLS_KORE_SIM_CONTACT_RENDER_H_
