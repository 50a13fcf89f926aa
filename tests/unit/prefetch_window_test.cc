// PrefetchWindow: which pages a stream asks for, the answers put back in order, what is ready to
// send and where the stream resumes. Pure logic: pages are built here, no I/O.
#include "server/stream/prefetch_window.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "absl/strings/str_cat.h"

namespace contacts::gateway {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;
using ::testing::SizeIs;

constexpr int64_t kListSize = 100;

// The page of a list of kListSize contacts "c0".."c99", less its first `deleted` ones, as the
// upstream would answer `request`.
PageResult Answer(const Pager::Request& request, int64_t deleted = 0) {
  const int64_t size = kListSize - deleted;
  Page page;
  page.skip = request.skip;
  page.total_results = size;
  for (int64_t i = request.skip; i < std::min(size, request.skip + request.limit); ++i) {
    page.contacts.Append({.id = absl::StrCat("c", i + deleted)});
  }
  page.has_more = request.skip + request.limit < size;
  return PageResult{page, {}};
}

std::vector<std::string> Ids(const PrefetchWindow::Runs& runs) {
  std::vector<std::string> ids;
  for (const ContactRun& run : runs) {
    for (size_t i = run.begin; i < run.end; ++i) ids.emplace_back(run.contacts.id(i));
  }
  return ids;
}

PrefetchWindow::Options Options(int window, int64_t max_contacts = 0) {
  return {.pager = {.page_size = 10,
                    .max_pages = 1000,
                    .max_contacts = max_contacts,
                    .seam_overlap = 1},
          .window = window};
}

TEST(PrefetchWindowTest, AsksForOnePageUntilTheListsSizeIsKnownThenFillsTheWindow) {
  PrefetchWindow window(Options(4), {});
  std::vector<PrefetchWindow::Fetch> first = window.Refill();
  ASSERT_THAT(first, SizeIs(1));
  EXPECT_TRUE(first[0].first_page);
  EXPECT_EQ(first[0].page, (Pager::Request{0, 10}));
  EXPECT_THAT(window.Refill(), IsEmpty());  // one in flight, size unknown: nothing more
  window.Accept(first[0].slot, Answer(first[0].page));
  EXPECT_EQ(window.ready(), 10u);
  // Ten contacts ready count as one page of the window: three more pages in parallel, each
  // re-reading the contact before its seam.
  std::vector<PrefetchWindow::Fetch> more = window.Refill();
  ASSERT_THAT(more, SizeIs(3));
  EXPECT_EQ(more[0].page, (Pager::Request{9, 11}));
  EXPECT_EQ(more[1].page, (Pager::Request{19, 11}));
  EXPECT_EQ(more[2].page, (Pager::Request{29, 11}));
  EXPECT_FALSE(more[0].first_page);
}

TEST(PrefetchWindowTest, PutsAnswersBackInOrder) {
  PrefetchWindow window(Options(4), {});
  PrefetchWindow::Fetch first = window.Refill()[0];
  window.Accept(first.slot, Answer(first.page));
  EXPECT_THAT(Ids(window.Take(10, 1 << 20)), SizeIs(10));
  std::vector<PrefetchWindow::Fetch> more = window.Refill();  // nothing ready: four pages
  ASSERT_THAT(more, SizeIs(4));
  window.Accept(more[3].slot, Answer(more[3].page));
  window.Accept(more[1].slot, Answer(more[1].page));
  window.Accept(more[2].slot, Answer(more[2].page));
  EXPECT_EQ(window.ready(), 0u);  // waiting for the earliest
  window.Accept(more[0].slot, Answer(more[0].page));
  std::vector<std::string> ids = Ids(window.Take(100, 1 << 20));
  ASSERT_THAT(ids, SizeIs(40));
  EXPECT_EQ(ids.front(), "c10");
  EXPECT_EQ(ids.back(), "c49");
}

TEST(PrefetchWindowTest, ContactsWaitingForTheCallerHoldBackTheFetching) {
  PrefetchWindow window(Options(2), {});
  PrefetchWindow::Fetch first = window.Refill()[0];
  window.Accept(first.slot, Answer(first.page));
  std::vector<PrefetchWindow::Fetch> second = window.Refill();
  ASSERT_THAT(second, SizeIs(1));
  window.Accept(second[0].slot, Answer(second[0].page));
  EXPECT_EQ(window.ready(), 20u);
  EXPECT_THAT(window.Refill(), IsEmpty());  // two pages' worth waiting: the window is full
  window.Take(15, 1 << 20);
  EXPECT_THAT(window.Refill(), SizeIs(1));  // one page's worth left
}

TEST(PrefetchWindowTest, TakesWholeContactsAndResumesAfterTheLastOneTaken) {
  PrefetchWindow window(Options(1), {});
  PrefetchWindow::Fetch first = window.Refill()[0];
  window.Accept(first.slot, Answer(first.page));
  EXPECT_THAT(Ids(window.Take(3, 1 << 20)), ElementsAre("c0", "c1", "c2"));
  ResumePoint point = window.resume_point();
  EXPECT_EQ(point.next_offset, 3);
  EXPECT_EQ(point.delivered, 3);
  EXPECT_THAT(point.last_ids, ElementsAre("c0", "c1", "c2"));
  // A byte budget smaller than a contact still takes one.
  EXPECT_THAT(Ids(window.Take(100, 1)), ElementsAre("c3"));
  EXPECT_THAT(window.resume_point().last_ids, ElementsAre("c0", "c1", "c2", "c3"));
  window.Take(100, 1 << 20);
  EXPECT_THAT(window.resume_point().last_ids, ElementsAre("c6", "c7", "c8", "c9"));
  EXPECT_EQ(window.delivered(), 10);
}

TEST(PrefetchWindowTest, AFailedPageEndsTheStreamWithItsFacts) {
  PrefetchWindow window(Options(4), {});
  PrefetchWindow::Fetch first = window.Refill()[0];
  window.Accept(first.slot, PageResult{absl::ResourceExhaustedError("HTTP 429"),
                                       {.throttled = true, .retry_after = absl::Seconds(3)}});
  ASSERT_TRUE(window.end().has_value());
  EXPECT_EQ(window.end()->code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(window.end_facts().retry_after, absl::Seconds(3));
  EXPECT_THAT(window.Refill(), IsEmpty());
}

TEST(PrefetchWindowTest, DropsPagesPrefetchedForAListThatShifted) {
  PrefetchWindow window(Options(3), {});
  PrefetchWindow::Fetch first = window.Refill()[0];
  window.Accept(first.slot, Answer(first.page));
  std::vector<PrefetchWindow::Fetch> more = window.Refill();
  ASSERT_THAT(more, SizeIs(2));
  // The first five contacts were deleted meanwhile: the page at the seam no longer holds any
  // contact delivered, so the stream re-reads from further back, and the page prefetched after
  // the seam is of no use.
  window.Accept(more[1].slot, Answer(more[1].page, 5));
  window.Accept(more[0].slot, Answer(more[0].page, 5));
  EXPECT_TRUE(window.list_changed());
  EXPECT_EQ(window.ready(), 10u);  // c0..c9 only
  std::vector<PrefetchWindow::Fetch> again = window.Refill();
  ASSERT_FALSE(again.empty());
  EXPECT_EQ(again[0].page.skip, 0);  // the re-read
  window.Accept(again[0].slot, Answer(again[0].page, 5));
  std::vector<std::string> ids = Ids(window.Take(100, 1 << 20));
  // c0..c9, then from after c9, found again, to the end of the re-read page (offset 19 = c24):
  // nothing lost, nothing twice.
  ASSERT_THAT(ids, SizeIs(25));
  EXPECT_EQ(ids[10], "c10");
  EXPECT_EQ(ids.back(), "c24");
}

TEST(PrefetchWindowTest, StopDropsWhatIsReadyAndKeepsTheResumePoint) {
  PrefetchWindow window(Options(4), {});
  PrefetchWindow::Fetch first = window.Refill()[0];
  window.Accept(first.slot, Answer(first.page));
  window.Take(2, 1 << 20);
  window.Stop(absl::UnavailableError("draining"));
  EXPECT_EQ(window.ready(), 0u);
  EXPECT_EQ(window.end()->code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(window.resume_point().next_offset, 2);
  EXPECT_THAT(window.Refill(), IsEmpty());
}

TEST(PrefetchWindowTest, AResumeThatAlreadyReachedMaxContactsEndsAtOnce) {
  PrefetchWindow window(Options(4, 5),
                        ResumePoint{.next_offset = 5, .delivered = 5, .last_ids = {}});
  ASSERT_TRUE(window.end().has_value());
  EXPECT_TRUE(window.end()->ok());
  EXPECT_THAT(window.Refill(), IsEmpty());
}

// The ceiling (PagerOptions::max_limit) at 1000, nothing known of the upstream.
PrefetchWindow::Options Probing(int window, int32_t upstream_serves = 0) {
  return {.pager = {.page_size = 1000,
                    .max_pages = 1000,
                    .seam_overlap = 1,
                    .max_limit = 1000,
                    .upstream_serves = upstream_serves},
          .window = window};
}

PageResult Refusal(const std::string& message, LimitRefusal refusal) {
  return PageResult{absl::InvalidArgumentError(message), {}, refusal};
}

TEST(PrefetchWindowTest, ARefusedFirstPageIsAskedAgainSmallerAndStillFirst) {
  PrefetchWindow window(Probing(4), {});
  std::vector<PrefetchWindow::Fetch> first = window.Refill();
  ASSERT_THAT(first, SizeIs(1));
  EXPECT_EQ(first[0].page, (Pager::Request{0, 1000}));
  window.Accept(first[0].slot, Refusal("upstream answered HTTP 400: limit must be between 1 and 10",
                                       {.names_limit = true, .allowed = 10}));
  EXPECT_FALSE(window.end().has_value());  // not the caller's error
  std::vector<PrefetchWindow::Fetch> again = window.Refill();
  ASSERT_THAT(again, SizeIs(1));
  EXPECT_EQ(again[0].page, (Pager::Request{0, 10}));
  EXPECT_TRUE(again[0].first_page);
  window.Accept(again[0].slot, Answer(again[0].page));
  EXPECT_EQ(window.learned_page_size(), 10);
  // Then every page within the size, the seam contact included, to the end of the list.
  std::vector<std::string> ids = Ids(window.Take(1000, 1 << 20));
  while (!window.end()) {
    std::vector<PrefetchWindow::Fetch> more = window.Refill();
    ASSERT_FALSE(more.empty());
    for (const PrefetchWindow::Fetch& fetch : more) {
      EXPECT_LE(fetch.page.limit, 10);
      EXPECT_FALSE(fetch.first_page);
      window.Accept(fetch.slot, Answer(fetch.page));
    }
    for (std::string& id : Ids(window.Take(1000, 1 << 20))) ids.push_back(std::move(id));
  }
  EXPECT_TRUE(window.end()->ok());
  ASSERT_THAT(ids, SizeIs(kListSize));
  EXPECT_EQ(ids.back(), "c99");
}

TEST(PrefetchWindowTest, ABadRequestNotAboutThePageSizeEndsTheStream) {
  PrefetchWindow window(Probing(4, /*upstream_serves=*/20), {});
  PrefetchWindow::Fetch first = window.Refill()[0];
  EXPECT_EQ(first.page, (Pager::Request{0, 20}));
  window.Accept(first.slot, Refusal("upstream answered HTTP 400: accountId header and query "
                                    "parameter differ",
                                    {}));
  ASSERT_TRUE(window.end().has_value());
  EXPECT_EQ(window.end()->code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(window.Refill(), IsEmpty());
}

TEST(PrefetchWindowTest, PrefetchedPagesOfACapLearnedMidStreamAreAskedAgainWithinIt) {
  // A remembered 20 that the upstream lowered to 10 since: the first page comes back capped
  // while the next pages were already asked at 20.
  PrefetchWindow window(Probing(4, /*upstream_serves=*/20), {});
  auto capped = [](const Pager::Request& request) {
    return Answer(Pager::Request{request.skip, std::min(request.limit, 10)});
  };
  PrefetchWindow::Fetch first = window.Refill()[0];
  window.Accept(first.slot, Answer(first.page));  // 20 served in full
  std::vector<PrefetchWindow::Fetch> ahead = window.Refill();
  ASSERT_THAT(ahead, SizeIs(2));  // 20 ready count as one page: two more
  for (const PrefetchWindow::Fetch& fetch : ahead) window.Accept(fetch.slot, capped(fetch.page));
  EXPECT_EQ(window.learned_page_size(), 10);
  std::vector<std::string> ids = Ids(window.Take(1000, 1 << 20));
  while (!window.end()) {
    std::vector<PrefetchWindow::Fetch> more = window.Refill();
    ASSERT_FALSE(more.empty());
    for (const PrefetchWindow::Fetch& fetch : more) {
      EXPECT_LE(fetch.page.limit, 10);
      window.Accept(fetch.slot, capped(fetch.page));
    }
    for (std::string& id : Ids(window.Take(1000, 1 << 20))) ids.push_back(std::move(id));
  }
  ASSERT_THAT(ids, SizeIs(kListSize));
  for (int64_t i = 0; i < kListSize; ++i) ASSERT_EQ(ids[i], absl::StrCat("c", i));
}

}  // namespace
}  // namespace contacts::gateway
