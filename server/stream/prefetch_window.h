#ifndef CONTACTS_GATEWAY_SERVER_STREAM_PREFETCH_WINDOW_H_
#define CONTACTS_GATEWAY_SERVER_STREAM_PREFETCH_WINDOW_H_

#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/inlined_vector.h"
#include "absl/status/status.h"
#include "server/core/page_source.h"
#include "server/stream/pager.h"
#include "server/stream/resume_token.h"

namespace contacts::gateway {

// The upstream side of one stream, pure logic without I/O or threads (the caller locks): which
// pages to ask for — up to `window` pages in flight or waiting to be sent, several in parallel once
// the list's size is known — the answers put back in order (a later page may answer first) and
// through the Pager, the contacts ready to send, and where a stream would resume after the last
// one taken.
//
// Backpressure: pages in flight plus the pages' worth of contacts ready never exceed the window,
// so a caller slower than the upstream stops the prefetching and holds at most `window` pages.
class PrefetchWindow {
 public:
  struct Options {
    PagerOptions pager;
    int window = 4;  // pages in flight or ready, at most
  };
  // A page to fetch; its answer goes back to Accept with the same slot.
  struct Fetch {
    uint64_t slot;
    Pager::Request page;
    bool first_page;  // the stream's first request
  };

  PrefetchWindow(Options options, ResumePoint start);

  // The pages to ask for now (none once the upstream side ended).
  std::vector<Fetch> Refill();

  // Takes the answer of `slot`, then accepts the answered pages at the front, in order. A failed
  // page ends the upstream side with its status, unless it was a 400 that refused the page size
  // and the Pager goes on with a smaller one (Pager::Refused); a page prefetched for a list that
  // then shifted, or with a refused size, is dropped (Refill asks again from where the Pager is
  // now).
  void Accept(uint64_t slot, PageResult answer);

  // Contacts ready to send.
  size_t ready() const { return ready_count_; }
  // Takes the next contacts to send, at most `max_contacts` and about `max_bytes` (whole contacts;
  // at least one), as runs of their pages; the resume point moves past them.
  using Runs = absl::InlinedVector<ContactRun, 2>;  // mostly one run: no allocation per message
  Runs Take(size_t max_contacts, size_t max_bytes);
  // Where a stream resumes after the last contact taken.
  const ResumePoint& resume_point() const { return resume_; }

  // Ends the upstream side with `status` unless it already ended, and drops what is in flight and
  // ready (their contacts were not taken, so the resume point is unchanged).
  void Stop(absl::Status status);

  // nullopt while pages remain; OK once the list was read to its end (or max_contacts); else the
  // error that ended it, with what the last answer said about the budget.
  const std::optional<absl::Status>& end() const { return end_; }
  const RateLimitFacts& end_facts() const { return end_facts_; }

  int64_t delivered() const { return resume_.delivered; }  // contacts taken, across resumes
  int64_t resumed_at() const { return resumed_at_; }
  int64_t pages() const { return pages_; }  // answers received
  int64_t total_results() const { return pager_.total_results(); }
  bool list_changed() const { return pager_.list_changed(); }
  // The largest page the upstream serves, once this stream found it out (Pager).
  const std::optional<int32_t>& learned_page_size() const { return pager_.learned_page_size(); }
  const std::string& learned_why() const { return pager_.learned_why(); }
  const std::string& change() const { return pager_.change(); }

 private:
  struct Slot {
    uint64_t id;
    Pager::Request asked;
    std::optional<PageResult> answer;
  };

  // Adds `id` to the resume point's last ids, dropping the oldest beyond kMaxResumeIds.
  void KeepLastId(std::string_view id);

  const Options options_;
  Pager pager_;
  std::deque<Slot> slots_;  // asked (in flight, or answered and waiting for earlier ones), in order
  uint64_t last_slot_ = 0;
  std::deque<ContactRun> ready_;
  size_t ready_count_ = 0;
  std::optional<absl::Status> end_;
  RateLimitFacts end_facts_;
  int64_t pages_ = 0;
  const int64_t resumed_at_;
  ResumePoint resume_;  // after the last contact taken
};

}  // namespace contacts::gateway

#endif  // CONTACTS_GATEWAY_SERVER_STREAM_PREFETCH_WINDOW_H_
