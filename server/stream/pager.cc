#include "server/stream/pager.h"

#include <algorithm>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace contacts::gateway {

namespace {

// After a refusal that names the limit but no smaller number: the sibling voice-campaign API's
// documented maximum, then the documented sample page size.
constexpr int32_t kPageSizeLadder[] = {100, 50};

}  // namespace

std::optional<int32_t> SmallerPageSize(int32_t refused, const LimitRefusal& refusal, int32_t served,
                                       int32_t remembered) {
  if (refusal.names_limit) {
    if (refused <= served) return std::nullopt;  // this stream was served that much
    if (refusal.allowed && *refusal.allowed < refused) return std::max(*refusal.allowed, served);
    for (int32_t step : kPageSizeLadder) {
      if (step < refused) return std::max(step, served);
    }
    return std::nullopt;
  }
  const int32_t known = std::max({served, remembered, kPageSizeLadder[1]});
  if (refused > known) return known;
  return std::nullopt;
}

Pager::Pager(PagerOptions options, ResumePoint start)
    : options_(options), next_(start.next_offset), delivered_(start.delivered) {
  ceiling_ = options_.max_limit;
  if (options_.upstream_serves > 0 && (ceiling_ == 0 || options_.upstream_serves < ceiling_)) {
    ceiling_ = options_.upstream_serves;
  }
  if (!start.last_ids.empty()) {
    EncodedContacts ids;
    for (const std::string& id : start.last_ids) {
      EncodedContacts::Fields contact;
      contact.id = id;
      ids.Append(contact);
    }
    for (size_t i = 0; i < ids.size(); ++i) Remember(ids.id(i), ids);
  }
  if (!start.last_ids.empty()) {
    anchor_ = start.last_ids.back();
    // Re-read the token's last ids, to find the resume point even if contacts before it went.
    back_ = std::min<int64_t>(start.last_ids.size(), next_);
  }
  if (options_.max_contacts > 0 && delivered_ >= options_.max_contacts) done_ = true;
}

std::optional<Pager::Request> Pager::Next() const {
  if (done_) return std::nullopt;
  return After(next_, back_);
}

int32_t Pager::Overlap() const {
  return ceiling_ > 0 ? std::min(options_.seam_overlap, ceiling_ - 1) : options_.seam_overlap;
}

bool Pager::AtCeiling() const {
  return ceiling_ > 0 && int64_t{options_.page_size} + Overlap() >= ceiling_;
}

int32_t Pager::page_size() const {
  return AtCeiling() ? ceiling_ - Overlap() : std::max(1, options_.page_size);
}

Pager::Request Pager::After(int64_t next, int64_t back) const {
  const int64_t size = page_size();
  const int64_t shift = AtCeiling() ? Overlap() : 0;  // see Next()
  const int64_t end = next < shift ? size + shift : ((next - shift) / size + 1) * size + shift;
  int64_t skip = std::max<int64_t>(0, next - back);
  if (ceiling_ > 0 && end - skip > ceiling_) {
    // Re-reading further back after the list shifted: keep the start. Re-reading a resume
    // token's last ids: keep the end (the pages streams share), and re-read fewer of them; the
    // seam overlap still fits.
    if (rereads_ > 0) return Request{skip, ceiling_};
    skip = end - ceiling_;
  }
  return Request{skip, static_cast<int32_t>(end - skip)};
}

std::optional<Pager::Request> Pager::Ahead(int ahead) const {
  if (done_ || !total_results_ || ahead < 1) return std::nullopt;
  Request request = After(next_, back_);
  int64_t start = next_;  // the first new contact of `request`
  for (int i = 0; i < ahead; ++i) {
    start = request.skip + request.limit;
    request = After(start, std::min<int64_t>(Overlap(), start));
  }
  if (start >= *total_results_ || pages_ + ahead >= options_.max_pages ||
      (options_.max_contacts > 0 && delivered_ + (start - next_) >= options_.max_contacts)) {
    return std::nullopt;
  }
  return request;
}

// 8 bytes at a time through splitmix64's mixer (once per contact streamed, so no general-purpose
// string hash).
Pager::HashedId::HashedId(std::string_view id) : id(id) {
  auto mix = [](uint64_t x) {
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9;
    x = (x ^ (x >> 27)) * 0x94d049bb133111eb;
    return x ^ (x >> 31);
  };
  auto word = [&](size_t at) {
    uint64_t w;
    std::memcpy(&w, id.data() + at, 8);
    return w;
  };
  uint64_t h = 0x9e3779b97f4a7c15 + id.size();
  if (id.size() < 8) {
    uint64_t w = 0;
    std::memcpy(&w, id.data(), id.size());
    hash = mix(h ^ w);
    return;
  }
  for (size_t at = 0; at + 8 < id.size(); at += 8) h = mix(h ^ word(at));
  hash = mix(h ^ word(id.size() - 8));  // the last 8 bytes, overlapping the word before
}

bool Pager::IsRecent(std::string_view id) const {
  const HashedId key(id);
  return newer_.ids.contains(key) || older_.ids.contains(key);
}

bool Pager::Remember(std::string_view id, const EncodedContacts& page) {
  const HashedId key(id);
  if (older_.ids.contains(key) || !newer_.ids.insert(key).second) return false;
  if (!newer_.holds_last_page) {
    newer_.pages.push_back(page.Retain());
    newer_.holds_last_page = true;
  }
  const size_t generation = std::max<size_t>(2 * static_cast<size_t>(page_size()), kMaxResumeIds);
  if (newer_.ids.size() >= generation) {
    older_ = std::move(newer_);
    newer_ = Generation{};
    newer_.ids.reserve(generation);
  }
  return true;
}

void Pager::NoteChange(std::string what) {
  if (change_.empty()) change_ = std::move(what);
}

std::optional<size_t> Pager::FindStart(const Request& asked, const Page& page) {
  const size_t count = page.contacts.size();
  if (!anchor_ || asked.skip >= next_) return 0;  // no seam to check
  size_t expected = static_cast<size_t>(next_ - 1 - asked.skip);
  if (expected < count && page.contacts.id(expected) == *anchor_) return expected + 1;
  // The seam moved: continue after the last recently delivered id in the page, if any.
  for (size_t i = count; i-- > 0;) {
    if (IsRecent(page.contacts.id(i))) {
      NoteChange(absl::StrCat("the contacts at offset ", next_ - 1, " moved to offset ",
                              asked.skip + static_cast<int64_t>(i)));
      return i + 1;
    }
  }
  NoteChange(absl::StrCat("the last delivered contact is no longer at offset ", next_ - 1));
  if (asked.skip > 0 && rereads_ < kMaxRereads) return std::nullopt;
  return 0;  // nothing left to anchor on: deliver what is new
}

absl::Status Pager::CheckPaging(const Request& asked, const Page& page) {
  if (++pages_ > options_.max_pages) {
    done_ = true;
    return absl::InternalError(absl::StrCat("stopped after ", options_.max_pages,
                                            " upstream pages, the per-stream page cap; the "
                                            "upstream kept reporting more"));
  }
  if (page.skip && *page.skip != asked.skip) {
    done_ = true;
    return absl::InternalError(absl::StrCat(
        "upstream ignored the paging parameters: asked for skip=", asked.skip,
        ", it answered skip=", *page.skip, " (check the configured skip/limit parameter names)"));
  }
  const size_t count = page.contacts.size();
  if (count > 0 && pages_ > 1 && count == last_size_ && page.contacts.id(0) == last_first_id_ &&
      page.contacts.id(count - 1) == last_last_id_ && asked.skip != last_skip_) {
    done_ = true;
    return absl::InternalError(absl::StrCat("upstream answered the same page for skip=", asked.skip,
                                            " as for skip=", last_skip_,
                                            "; it does not seem to honour the paging parameters"));
  }
  if (count > 0) {
    last_size_ = count;
    last_first_id_ = page.contacts.id(0);
    last_last_id_ = page.contacts.id(count - 1);
    last_skip_ = asked.skip;
  }
  return absl::OkStatus();
}

void Pager::LearnPageSize(const Request& asked, size_t count, bool has_more) {
  // A short page with more after it: the upstream serves at most `count`.
  const bool capped =
      count > 0 && count < static_cast<size_t>(asked.limit) &&
      (has_more || (total_results_ && asked.skip + static_cast<int64_t>(count) < *total_results_));
  if (capped) {
    ceiling_ = static_cast<int32_t>(count);
    learned_why_ = absl::StrCat("a page of ", asked.limit, " came back with ", count,
                                " contacts and more to follow");
    unconfirmed_ = true;
  }
  served_ = std::max(served_, capped ? static_cast<int32_t>(count) : asked.limit);
  if (unconfirmed_) {
    learned_ = ceiling_;
    unconfirmed_ = false;
  }
}

absl::Status Pager::Accept(const Request& asked, const Page& page, std::deque<ContactRun>* out) {
  if (absl::Status checked = CheckPaging(asked, page); !checked.ok()) return checked;
  const size_t count = page.contacts.size();
  if (page.total_results) {
    if (total_results_ && *total_results_ != *page.total_results) {
      NoteChange(
          absl::StrCat("totalResults went from ", *total_results_, " to ", *page.total_results));
    }
    total_results_ = page.total_results;
  }

  std::optional<size_t> start = FindStart(asked, page);
  if (!start) {
    // Contacts were removed before the seam: look for the last delivered ones a page further back.
    ++rereads_;
    ++rereads_total_;
    back_ += page_size();
    return absl::OkStatus();
  }
  if (count > 0) anchor_ = page.contacts.id(count - 1);
  newer_.holds_last_page = false;
  bool extend = false;  // contact i - 1 went to out->back()
  for (size_t i = *start; i < count; ++i) {
    if (options_.max_contacts > 0 && delivered_ >= options_.max_contacts) break;
    if (!Remember(page.contacts.id(i), page.contacts)) {
      ++duplicates_dropped_;
      extend = false;
      continue;
    }
    ++delivered_;
    if (!extend) out->push_back(ContactRun{page.contacts, i, i, asked.skip});
    out->back().end = i + 1;
    extend = true;
  }

  LearnPageSize(asked, count, page.has_more.value_or(false));
  // Offsets are those of the list as it is now: continue after this page.
  next_ = asked.skip + static_cast<int64_t>(count);
  back_ = anchor_ ? std::min<int64_t>(Overlap(), next_) : 0;
  rereads_ = 0;

  const bool more = page.has_more.value_or(
      total_results_ ? next_ < *total_results_ : count >= static_cast<size_t>(asked.limit));
  // A short page that holds nothing after the seam is the end; a full one (a re-read cut short
  // by the upstream's page-size cap) is not.
  if (!more || (count == *start && count < static_cast<size_t>(asked.limit)) ||
      (total_results_ && next_ >= *total_results_) ||
      (options_.max_contacts > 0 && delivered_ >= options_.max_contacts)) {
    done_ = true;
  }
  return absl::OkStatus();
}

bool Pager::Refused(const Request& asked, const LimitRefusal& refusal) {
  if (done_) return false;
  std::optional<int32_t> smaller =
      SmallerPageSize(asked.limit, refusal, served_, options_.upstream_serves);
  if (!smaller) return false;
  ceiling_ = *smaller;
  learned_why_ = absl::StrCat("a page of ", asked.limit, " was refused (HTTP 400), one of ",
                              *smaller, " was served");
  unconfirmed_ = true;
  return true;
}

}  // namespace contacts::gateway
