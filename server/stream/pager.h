#ifndef CONTACTS_GATEWAY_SERVER_STREAM_PAGER_H_
#define CONTACTS_GATEWAY_SERVER_STREAM_PAGER_H_

#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "contacts/v1/contacts.pb.h"
#include "server/stream/resume_token.h"
#include "server/upstream/page.h"

namespace contacts::gateway {

struct PagerOptions {
  int32_t page_size = 50;     // `limit` asked of the upstream
  int64_t max_pages = 100000;  // loop guard: no stream fetches more pages than this
  int64_t max_contacts = 0;   // stop after this many delivered contacts (resumes included); 0 = all
};

// A contact ready for the caller, with the upstream offset just after it (for resume tokens).
struct PagedContact {
  contacts::v1::Contact contact;
  int64_t next_offset = 0;
};

// The paging state machine of one stream, pure logic without I/O: which page to ask for next,
// what of an answered page to deliver, and when to stop. It keeps upstream order, drops ids it
// delivered moments ago (duplicates at page seams when the list shifts), and refuses to loop when
// the upstream ignores the paging parameters. Not thread-safe; one per stream.
class Pager {
 public:
  struct Request {
    int64_t skip = 0;
    int32_t limit = 0;
  };

  Pager(PagerOptions options, ResumePoint start);

  // The page to fetch next, or nullopt once the stream is complete.
  std::optional<Request> Next() const;

  // Takes the answer to Next() and appends what to deliver to `out`.
  // Errors (kInternal, message for the caller): the upstream echoed another offset than asked,
  // answered the same page twice, or the page cap was reached.
  absl::Status Accept(const Request& asked, Page page, std::vector<PagedContact>* out);

  bool done() const { return done_; }
  int64_t total_results() const { return total_results_.value_or(0); }
  int64_t delivered() const { return delivered_; }
  // Duplicates dropped at page seams so far.
  int64_t duplicates_dropped() const { return duplicates_dropped_; }

 private:
  void Remember(const std::string& id);
  // Index of the first contact of the first page after a resume that was not delivered before.
  size_t ResumeStart(const Page& page, const Request& asked) const;

  const PagerOptions options_;
  std::optional<ResumePoint> resume_;  // until the first page after a resume is accepted
  int64_t skip_ = 0;
  int64_t pages_ = 0;
  int64_t delivered_ = 0;
  int64_t duplicates_dropped_ = 0;
  bool done_ = false;
  std::optional<int64_t> total_results_;
  // Fingerprint of the last page: first id, last id, size.
  std::string last_first_id_, last_last_id_;
  size_t last_size_ = 0;
  // Ids delivered most recently (at most two pages' worth), for duplicates at seams.
  absl::flat_hash_set<std::string> recent_;
  std::deque<std::string> recent_order_;
};

}  // namespace contacts::gateway

#endif  // CONTACTS_GATEWAY_SERVER_STREAM_PAGER_H_
