#ifndef CONTACTS_GATEWAY_SERVER_CORE_PAGE_H_
#define CONTACTS_GATEWAY_SERVER_CORE_PAGE_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "contacts/v1/contacts.pb.h"

namespace contacts::gateway {

// The contacts of one page, held as the bytes the gateway sends them in: each contact is one
// complete `contacts` entry of contacts.v1.StreamContactsResponse (field 1: tag, length, encoded
// Contact), back to back. A batch of consecutive contacts is then one slice of the buffer, written
// without re-encoding, and ids are read in place: no allocation per contact anywhere between the
// upstream's JSON and the caller's socket.
// Copies share the buffer and are cheap; changing one copies it first (copy on write), so build a
// value on one thread and only then share it.
class EncodedContacts {
 public:
  struct Time {
    int64_t seconds = 0;
    int32_t nanos = 0;  // 0..999,999,999
  };
  // One contact's fields, as parsed; the views need only live until Append returns.
  struct Fields {
    std::string_view id{};  // non-empty for contacts of the upstream
    std::string_view phone_number{};
    std::optional<Time> create_time{};
    std::optional<Time> update_time{};
  };

  size_t size() const { return buffer_ ? buffer_->entries.size() : 0; }
  bool empty() const { return size() == 0; }
  std::string_view id(size_t i) const;
  // The encoded entries of contacts [begin, end).
  std::string_view wire(size_t begin, size_t end) const;
  size_t bytes() const { return buffer_ ? buffer_->wire.size() : 0; }
  // Memory held: the buffer's capacity and its index.
  size_t footprint() const;
  // Contact i, decoded (for tests and tools; the gateway itself never decodes).
  contacts::v1::Contact operator[](size_t i) const;
  // Keeps the bytes that wire() returned alive for as long as the result lives, whatever happens
  // to this value: lets gRPC send them without a copy.
  std::shared_ptr<const void> Retain() const { return buffer_; }

  void Reserve(size_t contacts, size_t bytes);
  void Append(const Fields& fields);
  // Contacts back from the bytes wire(0, size()) returned (e.g. a page another replica stored):
  // every `contacts` entry is walked, read and written again with Append. Errors
  // (kInvalidArgument) unless the bytes are exactly what Append writes for contacts with an id and
  // UTF-8 text, so a stored page can only ever send what this gateway would have sent itself.
  static absl::StatusOr<EncodedContacts> FromWire(std::string_view wire);
  void push_back(const contacts::v1::Contact& contact);
  void clear();

 private:
  struct Entry {
    uint32_t end;  // where the entry ends in `wire` (and the next one begins)
    uint32_t id;   // where its id begins
    uint32_t id_size;
  };
  // Bytes that grow without being zeroed first (std::string::resize would write every byte
  // twice: a few percent of the gateway's time per contact).
  class Bytes {
   public:
    Bytes() = default;
    Bytes(const Bytes& other) { *this = other; }
    Bytes& operator=(const Bytes& other);
    size_t size() const { return size_; }
    size_t capacity() const { return capacity_; }
    const char* data() const { return data_.get(); }
    std::string_view view() const { return {data_.get(), size_}; }
    void reserve(size_t capacity);
    // Room for `n` more bytes, uninitialized; the caller writes all of them.
    char* Extend(size_t n);
    void clear() { size_ = 0; }

   private:
    std::unique_ptr<char[]> data_;
    size_t size_ = 0;
    size_t capacity_ = 0;
  };
  struct Buffer {
    Bytes wire;
    std::vector<Entry> entries;
  };
  Buffer& Mutable();
  std::shared_ptr<Buffer> buffer_;
};

// One answer of the upstream's getAllContacts endpoint, as parsed: the contacts in upstream order
// and the paging facts the upstream reported. A fact the upstream left out (or sent as null) is
// std::nullopt; the Pager decides what a missing fact means.
struct Page {
  EncodedContacts contacts;
  std::optional<int64_t> skip;           // echoed offset of the first contact
  std::optional<int64_t> limit;          // echoed page size
  std::optional<bool> has_more;          // more contacts after this page
  std::optional<int64_t> total_results;  // size of the whole list
  std::optional<int64_t> total_pages;
};

// A page as one replica stores it for the others (fleet/RedisPageStore): a versioned binary
// record of the paging facts and the contacts' wire bytes.
std::string EncodePageRecord(const Page& page);
// The page of a record EncodePageRecord wrote; kInvalidArgument, saying what is wrong, for
// anything else (another version, truncated, trailing bytes, contacts FromWire refuses).
absl::StatusOr<Page> DecodePageRecord(std::string_view record);

}  // namespace contacts::gateway

#endif  // CONTACTS_GATEWAY_SERVER_CORE_PAGE_H_
