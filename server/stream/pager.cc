#include "server/stream/pager.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace contacts::gateway {

Pager::Pager(PagerOptions options, ResumePoint start)
    : options_(options), delivered_(start.delivered) {
  // Re-read a little before the resume offset, to find the last delivered ids again even when
  // contacts were removed before it in the meantime.
  int64_t overlap = std::min<int64_t>(start.last_ids.size(), options_.page_size - 1);
  skip_ = std::max<int64_t>(0, start.next_offset - overlap);
  for (const std::string& id : start.last_ids) Remember(id);
  if (options_.max_contacts > 0 && delivered_ >= options_.max_contacts) done_ = true;
  resume_ = std::move(start);
}

std::optional<Pager::Request> Pager::Next() const {
  if (done_) return std::nullopt;
  return Request{skip_, options_.page_size};
}

void Pager::Remember(const std::string& id) {
  if (!recent_.insert(id).second) return;
  recent_order_.push_back(id);
  size_t capacity = std::max<size_t>(2 * static_cast<size_t>(options_.page_size), kMaxResumeIds);
  if (recent_order_.size() > capacity) {
    recent_.erase(recent_order_.front());
    recent_order_.pop_front();
  }
}

size_t Pager::ResumeStart(const Page& page, const Request& asked) const {
  // After the last of the previously delivered ids found in the page; if none is found (the
  // window shifted further than the overlap), from the offset the token named.
  for (size_t i = page.contacts.size(); i-- > 0;) {
    const std::string& id = page.contacts[i].id();
    if (std::find(resume_->last_ids.begin(), resume_->last_ids.end(), id) != resume_->last_ids.end()) {
      return i + 1;
    }
  }
  int64_t from = resume_->next_offset - asked.skip;
  return static_cast<size_t>(std::clamp<int64_t>(from, 0, page.contacts.size()));
}

absl::Status Pager::Accept(const Request& asked, Page page, std::vector<PagedContact>* out) {
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
  if (count > 0 && pages_ > 1 && count == last_size_ && page.contacts.front().id() == last_first_id_ &&
      page.contacts.back().id() == last_last_id_) {
    done_ = true;
    return absl::InternalError(absl::StrCat(
        "upstream answered the same page for skip=", asked.skip,
        " as for the previous offset; it does not seem to honour the paging parameters"));
  }
  if (count > 0) {
    last_size_ = count;
    last_first_id_ = page.contacts.front().id();
    last_last_id_ = page.contacts.back().id();
  }
  if (page.total_results) total_results_ = page.total_results;

  size_t first = 0;
  if (resume_) {
    first = ResumeStart(page, asked);
    resume_.reset();
  }
  for (size_t i = first; i < count; ++i) {
    if (options_.max_contacts > 0 && delivered_ >= options_.max_contacts) break;
    contacts::v1::Contact& contact = page.contacts[i];
    if (recent_.contains(contact.id())) {
      ++duplicates_dropped_;
      continue;
    }
    Remember(contact.id());
    ++delivered_;
    out->push_back(PagedContact{std::move(contact), asked.skip + static_cast<int64_t>(i) + 1});
  }

  skip_ = asked.skip + static_cast<int64_t>(count);
  bool more = page.has_more.value_or(total_results_ ? skip_ < *total_results_
                                                    : count >= static_cast<size_t>(asked.limit));
  if (!more || count == 0 || (total_results_ && skip_ >= *total_results_) ||
      (options_.max_contacts > 0 && delivered_ >= options_.max_contacts)) {
    done_ = true;
  }
  return absl::OkStatus();
}

}  // namespace contacts::gateway
