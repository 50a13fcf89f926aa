#include "server/core/page.h"

#include <algorithm>
#include <cstring>

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

}  // namespace

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

void EncodedContacts::clear() {
  if (buffer_.use_count() > 1) {
    buffer_.reset();
  } else if (buffer_) {
    buffer_->wire.clear();
    buffer_->entries.clear();
  }
}

}  // namespace contacts::gateway
