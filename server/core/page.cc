#include "server/core/page.h"

#include <algorithm>
#include <cstring>
#include <limits>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "google/protobuf/stubs/common.h"
#include "google/protobuf/timestamp.pb.h"
#include "server/core/encoding.h"

namespace contacts::gateway {
namespace {

using contacts::v1::Contact;
using contacts::v1::StreamContactsResponse;
using google::protobuf::Timestamp;

// Protocol Buffers wire format: the one-byte tag of a field (numbers below 16) of a wire type.
constexpr int kVarint = 0;
constexpr int kLengthDelimited = 2;
constexpr char Tag(int field, int wire_type) { return static_cast<char>(field << 3 | wire_type); }
constexpr char kContactsEntry = Tag(StreamContactsResponse::kContactsFieldNumber, kLengthDelimited);
constexpr char kId = Tag(Contact::kIdFieldNumber, kLengthDelimited);
constexpr char kPhoneNumber = Tag(Contact::kPhoneNumberFieldNumber, kLengthDelimited);
constexpr char kCreateTime = Tag(Contact::kCreateTimeFieldNumber, kLengthDelimited);
constexpr char kUpdateTime = Tag(Contact::kUpdateTimeFieldNumber, kLengthDelimited);
constexpr char kSeconds = Tag(Timestamp::kSecondsFieldNumber, kVarint);
constexpr char kNanos = Tag(Timestamp::kNanosFieldNumber, kVarint);
static_assert(StreamContactsResponse::kContactsFieldNumber < 16 &&
                  Contact::kUpdateTimeFieldNumber < 16,
              "one-byte tags only");

char* PutBytes(char* out, char tag, std::string_view bytes) {
  *out++ = tag;
  out = PutVarint(out, bytes.size());
  return std::copy(bytes.begin(), bytes.end(), out);
}

// Proto3: zero values are not written. Negative int64 values take ten bytes, as in protobuf.
size_t TimeSize(const EncodedContacts::Time& time) {
  return (time.seconds != 0 ? 1 + VarintSize(static_cast<uint64_t>(time.seconds)) : 0) +
         (time.nanos != 0 ? 1 + VarintSize(static_cast<uint64_t>(int64_t{time.nanos})) : 0);
}

char* PutTime(char* out, char tag, const EncodedContacts::Time& time) {
  *out++ = tag;
  out = PutVarint(out, TimeSize(time));
  if (time.seconds != 0) {
    *out++ = kSeconds;
    out = PutVarint(out, static_cast<uint64_t>(time.seconds));
  }
  if (time.nanos != 0) {
    *out++ = kNanos;
    out = PutVarint(out, static_cast<uint64_t>(int64_t{time.nanos}));
  }
  return out;
}

size_t BytesSize(std::string_view bytes) { return 1 + VarintSize(bytes.size()) + bytes.size(); }

// Readers of untrusted bytes: each consumes from the front of *in, false when *in ends too soon or
// holds no varint in its shortest form (at most ten bytes, the tenth at most 1, the last not 0).
bool ReadVarint(std::string_view* in, uint64_t* out) {
  uint64_t value = 0;
  for (size_t i = 0; i < 10 && i < in->size(); ++i) {
    const auto byte = static_cast<unsigned char>((*in)[i]);
    if ((i == 9 && byte > 1) || (i > 0 && byte == 0)) return false;
    value |= static_cast<uint64_t>(byte & 0x7f) << (7 * i);
    if (!(byte & 0x80)) {
      in->remove_prefix(i + 1);
      *out = value;
      return true;
    }
  }
  return false;
}

bool ReadBytes(std::string_view* in, std::string_view* out) {
  uint64_t size = 0;
  if (!ReadVarint(in, &size) || size > in->size()) return false;
  *out = in->substr(0, size);
  in->remove_prefix(size);
  return true;
}

// Consumes `tag` and its length-delimited value when *in starts with it.
bool ReadField(std::string_view* in, char tag, std::optional<std::string_view>* out, bool* bad) {
  if (in->empty() || (*in)[0] != tag) return false;
  in->remove_prefix(1);
  std::string_view value;
  if (!ReadBytes(in, &value)) {
    *bad = true;
    return false;
  }
  *out = value;
  return true;
}

bool ReadTime(std::string_view in, EncodedContacts::Time* out) {
  uint64_t value = 0;
  if (!in.empty() && in[0] == kSeconds) {
    in.remove_prefix(1);
    if (!ReadVarint(&in, &value)) return false;
    out->seconds = static_cast<int64_t>(value);
  }
  if (!in.empty() && in[0] == kNanos) {
    in.remove_prefix(1);
    if (!ReadVarint(&in, &value) || value > 999'999'999) return false;
    out->nanos = static_cast<int32_t>(value);
  }
  return in.empty();
}

absl::Status Malformed(size_t contact, std::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat("contact ", contact, ": ", AsAbsl(what)));
}

// The page record (EncodePageRecord): kRecordMagic, kRecordVersion, a varint of flags, a varint
// per fact present (int64 as two's complement), the varint size of the contacts' wire bytes, then
// those bytes.
constexpr char kRecordMagic = 'P';
constexpr char kRecordVersion = 1;
enum RecordFlag : uint64_t {
  kHasSkip = 1,
  kHasLimit = 2,
  kHasMore = 4,
  kMoreValue = 8,
  kHasTotalResults = 16,
  kHasTotalPages = 32,
  kAllFlags = 63,
};

}  // namespace

absl::StatusOr<EncodedContacts> EncodedContacts::FromWire(std::string_view wire) {
  if (wire.size() > std::numeric_limits<uint32_t>::max()) {
    return absl::InvalidArgumentError("contacts larger than 4 GiB");
  }
  EncodedContacts out;
  out.Reserve(0, wire.size());
  std::string_view in = wire;
  for (size_t n = 0; !in.empty(); ++n) {
    std::string_view entry;
    if (in[0] != kContactsEntry) return Malformed(n, "not a contacts entry");
    in.remove_prefix(1);
    if (!ReadBytes(&in, &entry)) return Malformed(n, "truncated");
    // The fields in the order Append writes them, each at most once.
    std::optional<std::string_view> id, phone, created, updated;
    bool bad = false;
    ReadField(&entry, kId, &id, &bad);
    ReadField(&entry, kPhoneNumber, &phone, &bad);
    ReadField(&entry, kCreateTime, &created, &bad);
    ReadField(&entry, kUpdateTime, &updated, &bad);
    if (bad) return Malformed(n, "truncated field");
    if (!entry.empty()) return Malformed(n, "unexpected field");
    if (!id || id->empty()) return Malformed(n, "no id");
    // Proto3 strings: a caller's protobuf library refuses a message with invalid UTF-8 in them.
    if (!google::protobuf::internal::IsStructurallyValidUTF8(id->data(),
                                                             static_cast<int>(id->size())) ||
        (phone && !google::protobuf::internal::IsStructurallyValidUTF8(
                      phone->data(), static_cast<int>(phone->size())))) {
      return Malformed(n, "not UTF-8");
    }
    Fields fields{*id, phone.value_or(""), std::nullopt, std::nullopt};
    for (auto [bytes, time] :
         {std::pair{&created, &fields.create_time}, std::pair{&updated, &fields.update_time}}) {
      if (!*bytes) continue;
      *time = Time{};
      if (!ReadTime(**bytes, &**time)) return Malformed(n, "bad timestamp");
    }
    out.Append(fields);
  }
  // Whatever Append would not have written (zero values, long varints, empty ids written out)
  // differs from its output somewhere.
  if (out.bytes() != wire.size() || (!out.empty() && out.wire(0, out.size()) != wire)) {
    return absl::InvalidArgumentError("contacts not in the gateway's encoding");
  }
  return out;
}

EncodedContacts::Bytes& EncodedContacts::Bytes::operator=(const Bytes& other) {
  if (this == &other) return *this;
  data_.reset();
  size_ = capacity_ = 0;
  reserve(other.size_);
  if (other.size_ > 0) std::memcpy(data_.get(), other.data_.get(), other.size_);
  size_ = other.size_;
  return *this;
}

void EncodedContacts::Bytes::reserve(size_t capacity) {
  if (capacity <= capacity_) return;
  std::unique_ptr<char[]> grown(new char[capacity]);
  if (size_ > 0) std::memcpy(grown.get(), data_.get(), size_);
  data_ = std::move(grown);
  capacity_ = capacity;
}

char* EncodedContacts::Bytes::Extend(size_t n) {
  if (size_ + n > capacity_) reserve(std::max(size_ + n, 2 * capacity_));
  char* out = data_.get() + size_;
  size_ += n;
  return out;
}

std::string_view EncodedContacts::id(size_t i) const {
  const Entry& entry = buffer_->entries[i];
  return buffer_->wire.view().substr(entry.id, entry.id_size);
}

std::string_view EncodedContacts::wire(size_t begin, size_t end) const {
  if (begin >= end) return {};
  const size_t from = begin == 0 ? 0 : buffer_->entries[begin - 1].end;
  return buffer_->wire.view().substr(from, buffer_->entries[end - 1].end - from);
}

size_t EncodedContacts::footprint() const {
  if (!buffer_) return sizeof(*this);
  return sizeof(*this) + sizeof(Buffer) + buffer_->wire.capacity() +
         buffer_->entries.capacity() * sizeof(Entry);
}

contacts::v1::Contact EncodedContacts::operator[](size_t i) const {
  std::string_view entry = wire(i, i + 1);
  size_t header = 1;  // the tag, then the length's varint bytes
  while (static_cast<unsigned char>(entry[header]) & 0x80) ++header;
  ++header;
  contacts::v1::Contact contact;
  contact.ParseFromArray(entry.data() + header, static_cast<int>(entry.size() - header));
  return contact;
}

EncodedContacts::Buffer& EncodedContacts::Mutable() {
  if (!buffer_) {
    buffer_ = std::make_shared<Buffer>();
  } else if (buffer_.use_count() > 1) {
    buffer_ = std::make_shared<Buffer>(*buffer_);
  }
  return *buffer_;
}

void EncodedContacts::Reserve(size_t contacts, size_t bytes) {
  Buffer& buffer = Mutable();
  buffer.entries.reserve(contacts);
  buffer.wire.reserve(bytes);
}

void EncodedContacts::Append(const Fields& fields) {
  const size_t size =
      (fields.id.empty() ? 0 : BytesSize(fields.id)) +
      (fields.phone_number.empty() ? 0 : BytesSize(fields.phone_number)) +
      (fields.create_time
           ? 1 + VarintSize(TimeSize(*fields.create_time)) + TimeSize(*fields.create_time)
           : 0) +
      (fields.update_time
           ? 1 + VarintSize(TimeSize(*fields.update_time)) + TimeSize(*fields.update_time)
           : 0);
  Buffer& buffer = Mutable();
  char* out = buffer.wire.Extend(1 + VarintSize(size) + size);
  *out++ = kContactsEntry;
  out = PutVarint(out, size);
  const size_t id = static_cast<size_t>(out - buffer.wire.data()) +
                    (fields.id.empty() ? 0 : 1 + VarintSize(fields.id.size()));
  if (!fields.id.empty()) out = PutBytes(out, kId, fields.id);
  if (!fields.phone_number.empty()) out = PutBytes(out, kPhoneNumber, fields.phone_number);
  if (fields.create_time) out = PutTime(out, kCreateTime, *fields.create_time);
  if (fields.update_time) out = PutTime(out, kUpdateTime, *fields.update_time);
  buffer.entries.push_back(Entry{static_cast<uint32_t>(buffer.wire.size()),
                                 static_cast<uint32_t>(id),
                                 static_cast<uint32_t>(fields.id.size())});
}

void EncodedContacts::push_back(const contacts::v1::Contact& contact) {
  Fields fields{contact.id(), contact.phone_number(), std::nullopt, std::nullopt};
  if (contact.has_create_time())
    fields.create_time = Time{contact.create_time().seconds(), contact.create_time().nanos()};
  if (contact.has_update_time())
    fields.update_time = Time{contact.update_time().seconds(), contact.update_time().nanos()};
  Append(fields);
}

std::string EncodePageRecord(const Page& page) {
  const std::string_view wire = page.contacts.wire(0, page.contacts.size());
  uint64_t flags = 0;
  std::vector<int64_t> facts;
  for (auto [fact, flag] : {std::pair{page.skip, kHasSkip}, std::pair{page.limit, kHasLimit},
                            std::pair{page.total_results, kHasTotalResults},
                            std::pair{page.total_pages, kHasTotalPages}}) {
    if (!fact) continue;
    flags |= flag;
    facts.push_back(*fact);
  }
  if (page.has_more) flags |= kHasMore | (*page.has_more ? uint64_t{kMoreValue} : 0);
  std::string out;
  out.reserve(2 + 11 * (facts.size() + 2) + wire.size());
  out += kRecordMagic;
  out += kRecordVersion;
  AppendVarint(&out, flags);
  for (int64_t fact : facts) AppendVarint(&out, static_cast<uint64_t>(fact));
  AppendVarint(&out, wire.size());
  out.append(wire);
  return out;
}

absl::StatusOr<Page> DecodePageRecord(std::string_view record) {
  auto bad = [](std::string_view what) {
    return absl::InvalidArgumentError(absl::StrCat("stored page: ", AsAbsl(what)));
  };
  if (record.size() < 2 || record[0] != kRecordMagic) return bad("not a page record");
  if (record[1] != kRecordVersion) return bad("unknown record version");
  record.remove_prefix(2);
  uint64_t flags = 0;
  if (!ReadVarint(&record, &flags) || (flags & ~uint64_t{kAllFlags}) != 0 ||
      ((flags & kMoreValue) && !(flags & kHasMore))) {
    return bad("bad flags");
  }
  Page page;
  for (auto [fact, flag] : {std::pair{&page.skip, kHasSkip}, std::pair{&page.limit, kHasLimit},
                            std::pair{&page.total_results, kHasTotalResults},
                            std::pair{&page.total_pages, kHasTotalPages}}) {
    if (!(flags & flag)) continue;
    uint64_t value = 0;
    if (!ReadVarint(&record, &value)) return bad("truncated");
    *fact = static_cast<int64_t>(value);
  }
  if (flags & kHasMore) page.has_more = (flags & kMoreValue) != 0;
  std::string_view wire;
  if (!ReadBytes(&record, &wire)) return bad("truncated");
  if (!record.empty()) return bad("trailing bytes");
  absl::StatusOr<EncodedContacts> contacts = EncodedContacts::FromWire(wire);
  if (!contacts.ok()) return bad(std::string(contacts.status().message()));
  page.contacts = *std::move(contacts);
  return page;
}

void EncodedContacts::clear() {
  if (buffer_.use_count() > 1) {
    buffer_.reset();
  } else if (buffer_) {
    buffer_->wire.clear();
    buffer_->entries.clear();
  }
}

}  // namespace contacts::gateway
