#include "tools/kore-sim/list_store.h"

#include <algorithm>
#include <utility>

#include "absl/status/status.h"
#include "tools/kore-sim/text.h"

namespace contacts::kore_sim {
namespace {

constexpr std::string_view kGeneratedPrefix = "cl-sim-";

// cl-sim-<N>, N in canonical decimal (no sign, no leading zeros).
std::optional<int64_t> GeneratedListSize(std::string_view list_id) {
  if (!list_id.starts_with(kGeneratedPrefix)) return std::nullopt;
  std::string_view digits = list_id.substr(kGeneratedPrefix.size());
  if (digits.empty() || digits.size() > 8 || (digits.size() > 1 && digits[0] == '0') ||
      !std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return std::nullopt;
  }
  std::optional<int64_t> size = ParseInt64(digits);
  if (!size || *size > ListStore::kMaxGeneratedSize) return std::nullopt;
  return size;
}

}  // namespace

ListStore::ListStore(std::map<std::string, int64_t, std::less<>> configured)
    : configured_(std::move(configured)) {}

std::optional<int64_t> ListStore::InitialSize(std::string_view list_id) const {
  if (auto it = configured_.find(list_id); it != configured_.end()) return it->second;
  return GeneratedListSize(list_id);
}

std::optional<ListStore::Page> ListStore::ReadPage(std::string_view list_id, int64_t skip,
                                                   int64_t limit) const {
  Page page;
  page.list_hash = ListHash(list_id);
  {
    absl::MutexLock lock(&mu_);
    if (auto it = mutated_.find(list_id); it != mutated_.end()) {
      const std::vector<ContactKey>& all = it->second;
      page.total = static_cast<int64_t>(all.size());
      if (skip < page.total) {
        const int64_t end = std::min(page.total, skip + limit);
        page.contacts.assign(all.begin() + skip, all.begin() + end);
      }
      return page;
    }
  }
  std::optional<int64_t> size = InitialSize(list_id);
  if (!size) return std::nullopt;
  page.total = *size;
  if (skip < page.total) {
    const int64_t end = std::min(page.total, skip + limit);
    page.contacts.reserve(static_cast<size_t>(end - skip));
    for (int64_t i = skip; i < end; ++i) page.contacts.push_back(ContactKey::Generated(i));
  }
  return page;
}

absl::StatusOr<int64_t> ListStore::Mutate(std::string_view list_id, MutationOp op, int64_t at,
                                          int64_t n) {
  absl::MutexLock lock(&mu_);
  auto it = mutated_.find(list_id);
  if (it == mutated_.end()) {
    std::optional<int64_t> size = InitialSize(list_id);
    if (!size) return absl::NotFoundError("Contact list not found");
    std::vector<ContactKey> all;
    all.reserve(static_cast<size_t>(*size));
    for (int64_t i = 0; i < *size; ++i) all.push_back(ContactKey::Generated(i));
    it = mutated_.emplace(std::string(list_id), std::move(all)).first;
  }
  std::vector<ContactKey>& all = it->second;
  const auto size = static_cast<int64_t>(all.size());
  if (n < 0) return absl::InvalidArgumentError("n must be a non-negative integer");
  if (op == MutationOp::kInsert) {
    if (at < 0 || at > size) return absl::InvalidArgumentError("at must be within 0..size");
    if (size + n > kMaxMutatedSize) {
      return absl::InvalidArgumentError("the list would grow too large");
    }
    std::vector<ContactKey> fresh;
    fresh.reserve(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) fresh.push_back(ContactKey::Inserted(next_seq_++));
    all.insert(all.begin() + at, fresh.begin(), fresh.end());
  } else {
    if (at < 0 || at >= size) return absl::InvalidArgumentError("at must be within 0..size-1");
    all.erase(all.begin() + at, all.begin() + std::min(size, at + n));
  }
  return static_cast<int64_t>(all.size());
}

std::optional<std::string> ListStore::RenderIds(std::string_view list_id) const {
  std::optional<Page> page = ReadPage(list_id, 0, kMaxMutatedSize);
  if (!page) return std::nullopt;
  std::string out;
  out.reserve(page->contacts.size() * 21);
  for (ContactKey key : page->contacts) {
    AppendContactId(out, page->list_hash, key);
    out += '\n';
  }
  return out;
}

void ListStore::Reset() {
  absl::MutexLock lock(&mu_);
  mutated_.clear();
}

}  // namespace contacts::kore_sim
