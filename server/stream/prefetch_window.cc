#include "server/stream/prefetch_window.h"

#include <algorithm>
#include <utility>

#include "server/core/error_reason.h"
#include "server/core/metrics.h"

namespace contacts::gateway {

PrefetchWindow::PrefetchWindow(Options options, ResumePoint start)
    : options_(options),
      pager_(options.pager, start),
      resumed_at_(start.delivered),
      resume_(std::move(start)) {
  if (pager_.done()) end_ = absl::OkStatus();  // max_contacts reached before this call
}

std::vector<PrefetchWindow::Fetch> PrefetchWindow::Refill() {
  std::vector<Fetch> out;
  if (end_) return out;
  const size_t page = static_cast<size_t>(pager_.page_size());
  const size_t window = static_cast<size_t>(std::max(1, options_.window));
  for (;;) {
    std::optional<Pager::Request> next =
        slots_.empty() ? pager_.Next() : pager_.Ahead(static_cast<int>(slots_.size()));
    const size_t buffered = (ready_count_ + page - 1) / page;
    if (!next || slots_.size() + buffered >= window) break;
    slots_.push_back(Slot{++last_slot_, *next, std::nullopt});
    // The first page may be asked again with a smaller size (Pager::Refused): still the first.
    out.push_back(Fetch{last_slot_, *next, pager_.pages() == 0});
  }
  return out;
}

void PrefetchWindow::Accept(uint64_t slot, PageResult answer) {
  auto it =
      std::find_if(slots_.begin(), slots_.end(), [slot](const Slot& s) { return s.id == slot; });
  if (it != slots_.end()) {
    it->answer = std::move(answer);
    ++pages_;
  }
  while (!slots_.empty() && slots_.front().answer && !end_) {
    Slot front = std::move(slots_.front());
    slots_.pop_front();
    if (std::optional<Pager::Request> expected = pager_.Next();
        !expected || !(front.asked == *expected)) {
      // Prefetched for a list that then shifted: Refill asks again from where the Pager is now.
      slots_.clear();
      break;
    }
    PageResult& result = *front.answer;
    if (!result.page.ok()) {
      if (result.limit_refusal && pager_.Refused(front.asked, *result.limit_refusal)) {
        // Pages asked with the refused size are of no use: Refill asks again with the smaller.
        Metrics().page_size_refusals.Increment();
        slots_.clear();
        break;
      }
      end_ = result.page.status();
      end_facts_ = result.rate_limit;
      break;
    }
    const size_t before = ready_.size();
    absl::Status accepted = pager_.Accept(front.asked, *result.page, &ready_);
    for (size_t i = before; i < ready_.size(); ++i) ready_count_ += ready_[i].size();
    if (!accepted.ok()) {
      end_ = WithReason(accepted, reason::kUpstreamPaging);
    } else if (pager_.done()) {
      end_ = absl::OkStatus();
    }
  }
  if (end_) slots_.clear();
}

PrefetchWindow::Runs PrefetchWindow::Take(size_t max_contacts, size_t max_bytes) {
  Runs out;
  size_t count = 0;
  size_t bytes = 0;
  while (!ready_.empty() && count < max_contacts && bytes < max_bytes) {
    ContactRun& run = ready_.front();
    size_t end = run.begin;
    while (end < run.end && count < max_contacts && bytes < max_bytes) {
      bytes += run.contacts.wire(end, end + 1).size();
      ++end;
      ++count;
    }
    out.push_back(ContactRun{run.contacts, run.begin, end, run.skip});
    for (size_t i = end - std::min(end - run.begin, kMaxResumeIds); i < end; ++i) {
      KeepLastId(run.contacts.id(i));
    }
    resume_.next_offset = run.next_offset(end - 1);
    run.begin = end;
    if (run.begin == run.end) ready_.pop_front();
  }
  ready_count_ -= count;
  resume_.delivered += static_cast<int64_t>(count);
  return out;
}

void PrefetchWindow::KeepLastId(std::string_view id) {
  std::vector<std::string>& ids = resume_.last_ids;
  if (ids.size() < kMaxResumeIds) {
    ids.emplace_back(id);
    return;
  }
  // The oldest id's string takes the newest: no allocation per message once ids fit in it.
  std::rotate(ids.begin(), ids.begin() + 1, ids.end());
  ids.back().assign(id);
}

void PrefetchWindow::Stop(absl::Status status) {
  if (!end_) end_ = std::move(status);
  slots_.clear();
  ready_.clear();
  ready_count_ = 0;
}

}  // namespace contacts::gateway
