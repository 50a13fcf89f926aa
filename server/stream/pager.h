#ifndef CONTACTS_GATEWAY_SERVER_STREAM_PAGER_H_
#define CONTACTS_GATEWAY_SERVER_STREAM_PAGER_H_

#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "server/core/page.h"
#include "server/core/page_source.h"
#include "server/stream/resume_token.h"

namespace contacts::gateway {

struct PagerOptions {
  int32_t page_size = 50;      // new contacts asked of the upstream per page (see max_limit)
  int64_t max_pages = 100000;  // loop guard: no stream fetches more pages than this
  int64_t max_contacts = 0;  // stop after this many delivered contacts (resumes included); 0 = all
  int32_t seam_overlap = 1;  // contacts re-read at each page seam to check the list did not shift
  // The largest limit a request asks for (--max-page-size), seam contacts included; 0 = none.
  int32_t max_limit = 0;
  // The largest page the upstream is known to serve (PageSizeMemory), which lowers max_limit;
  // 0 = not known.
  int32_t upstream_serves = 0;
};

// The page size to try after the upstream answered HTTP 400 to a page of `refused`, or nullopt
// when the 400 is not about the page size (it then goes to the caller). `served` is the largest
// page this stream was served; `remembered` the PageSizeMemory's (0: none). A 400 whose message
// names the limit parameter refuses the page size: the stream goes on with the largest number of
// the message below `refused` (100 of "limit must be between 1 and 100"), else with the next step
// of the ladder (100, the sibling API's documented maximum, then 50, the documented sample). Any
// other 400 may be about the page size only when `refused` is above every size known to work (what
// was remembered, or 50): it is tried once more at that size. Never `refused` or more again.
std::optional<int32_t> SmallerPageSize(int32_t refused, const LimitRefusal& refusal, int32_t served,
                                       int32_t remembered);

// Contacts [begin, end) of one page, ready for the caller. The contact at index i sat at upstream
// offset skip + i, so a stream resumes after it at skip + i + 1.
struct ContactRun {
  EncodedContacts contacts;
  size_t begin = 0;
  size_t end = 0;
  int64_t skip = 0;

  size_t size() const { return end - begin; }
  int64_t next_offset(size_t i) const { return skip + static_cast<int64_t>(i) + 1; }
};

// The paging state machine of one stream, pure logic without I/O: which page to ask for next,
// what of an answered page to deliver, and when to stop. Not thread-safe; one per stream.
//
// Offset paging over a list that changes under it can skip or repeat contacts. The Pager
//  - re-reads `seam_overlap` contacts at each seam and checks that the last contact it consumed
//    is still where it was (after a resume: one of the token's last ids);
//  - on a mismatch, continues right after the last recently delivered id it finds in the page, or
//    when it finds none (contacts were removed before the seam), re-reads further back, a page at
//    a time, up to kMaxRereads pages;
//  - never delivers an id it delivered within the last two pages (bounded memory);
//  - reports the list as changed when the seam moved or `totalResults` changed.
// Guarantee: every contact present in the list for the whole stream is delivered once, in order,
// as long as the list shifts by less than kMaxRereads pages between two requests. Contacts removed
// during the stream may be missing; contacts inserted before the current position are not seen.
class Pager {
 public:
  static constexpr int kMaxRereads = 3;

  struct Request {
    int64_t skip = 0;
    int32_t limit = 0;
    bool operator==(const Request&) const = default;
  };

  Pager(PagerOptions options, ResumePoint start);

  // The page to fetch next, or nullopt once the stream is complete. Pages end on multiples of
  // page_size(), so that streams of the same list (resumed ones too) ask for the same pages and can
  // share them (see CachingPageSource). No request asks for more than the ceiling (max_limit, or
  // what the upstream serves, once known): when the page size and the seam overlap do not fit
  // under it, pages end on multiples of (ceiling - overlap) plus the overlap, so that every
  // request, its re-read seam contacts included, asks for exactly the ceiling.
  std::optional<Request> Next() const;

  // The request `ahead` pages after Next() (ahead ≥ 1), as it will be if every page until then
  // comes back full and the list does not shift; nullopt when the list's size is not known yet or
  // that page lies past the end, the page cap or max_contacts. Lets a stream fetch pages in
  // parallel: Accept still takes pages in Next() order, and a prefetched request that is not
  // Next() when its turn comes must be thrown away.
  std::optional<Request> Ahead(int ahead) const;

  // Takes the answer to Next() and appends what to deliver to `out` (possibly nothing, e.g. when
  // the page only served to find the seam again); the runs share the page's buffer.
  // Errors (kInternal, message for the caller): the upstream echoed another offset than asked,
  // answered the same page twice, or the page cap was reached.
  absl::Status Accept(const Request& asked, const Page& page, std::deque<ContactRun>* out);

  // Takes an HTTP 400 answer to Next(): true when it refused the page size (SmallerPageSize) and
  // the stream goes on with a smaller one (Next() changes); false when the 400 ends the stream.
  bool Refused(const Request& asked, const LimitRefusal& refusal);

  // New contacts per page, as the pages are laid out now (see Next()).
  int32_t page_size() const;
  // The largest page the upstream serves, as this stream found it: set once the ceiling came
  // down (a page came back capped, or a smaller page was served after a refusal), with why.
  const std::optional<int32_t>& learned_page_size() const { return learned_; }
  const std::string& learned_why() const { return learned_why_; }

  bool done() const { return done_; }
  int64_t total_results() const { return total_results_.value_or(0); }
  int64_t delivered() const { return delivered_; }
  // Whether the list changed under the stream, and the first sign of it ("" until then).
  bool list_changed() const { return !change_.empty(); }
  const std::string& change() const { return change_; }
  int64_t duplicates_dropped() const { return duplicates_dropped_; }
  int64_t rereads() const { return rereads_total_; }
  int64_t pages() const { return pages_; }  // answers accepted

 private:
  // The request for the page whose first new contact is at `next`, re-reading `back` before it.
  Request After(int64_t next, int64_t back) const;
  // Contacts re-read at a seam: seam_overlap, less when the ceiling is that small.
  int32_t Overlap() const;
  // Whether the page size and the overlap do not fit under the ceiling (see Next()).
  bool AtCeiling() const;
  // Remembers id, which lies in `page`; false when it was known already.
  bool Remember(std::string_view id, const EncodedContacts& page);
  bool IsRecent(std::string_view id) const;
  void NoteChange(std::string what);
  // Refuses a page that breaks the paging rules (the per-stream page cap, paging parameters the
  // upstream ignored, the same page for another offset) and remembers it for the last check.
  absl::Status CheckPaging(const Request& asked, const Page& page);
  // Learns the upstream's page-size ceiling from a page of `count` contacts answering `asked`.
  void LearnPageSize(const Request& asked, size_t count, bool has_more);
  // Where in `page` (asked at `asked`) the undelivered contacts start; nullopt: re-read further
  // back.
  std::optional<size_t> FindStart(const Request& asked, const Page& page);

  const PagerOptions options_;
  int64_t next_ = 0;  // offset of the first contact not consumed yet
  int64_t back_ = 0;  // how far before next_ the next request starts
  int rereads_ = 0;   // re-reads at the current seam
  int64_t rereads_total_ = 0;
  std::optional<std::string> anchor_;  // id of the last contact consumed, at offset next_ - 1
  int64_t pages_ = 0;
  int64_t delivered_ = 0;
  int64_t duplicates_dropped_ = 0;
  bool done_ = false;
  std::string change_;
  std::optional<int64_t> total_results_;
  // The largest limit asked (0: none): max_limit, lowered to what the upstream serves.
  int32_t ceiling_ = 0;
  int32_t served_ = 0;        // the largest page the upstream answered in this stream
  bool unconfirmed_ = false;  // the ceiling came down on a refusal; no page was served since
  std::optional<int32_t> learned_;
  std::string learned_why_;
  // Fingerprint of the last page: offset, first id, last id, size.
  int64_t last_skip_ = -1;
  std::string last_first_id_, last_last_id_;
  size_t last_size_ = 0;
  // An id and its 64-bit hash (all of its bytes): ids are compared only when the hashes are equal.
  struct HashedId {
    uint64_t hash;
    std::string_view id;
    explicit HashedId(std::string_view id);
    bool operator==(const HashedId& other) const { return hash == other.hash && id == other.id; }
    template <typename H>
    friend H AbslHashValue(H state, const HashedId& key) {
      return H::combine(std::move(state), key.hash);
    }
  };
  // Ids delivered most recently, for duplicates at seams: the last two to four pages' worth, in two
  // generations of up to two pages each. New ids go to the newer; once it is full it becomes the
  // older and the older is forgotten (no eviction per id). The ids point into the pages their
  // generation holds.
  struct Generation {
    absl::flat_hash_set<HashedId> ids;
    std::vector<std::shared_ptr<const void>> pages;  // EncodedContacts::Retain() of each page
    bool holds_last_page = false;                    // the page being accepted is in `pages`
  };
  Generation newer_, older_;
};

}  // namespace contacts::gateway

#endif  // CONTACTS_GATEWAY_SERVER_STREAM_PAGER_H_
