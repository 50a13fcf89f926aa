#include "server/stream/pager.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <deque>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"

namespace contacts::gateway {
namespace {

using ::testing::ElementsAre;
using ::testing::ElementsAreArray;
using ::testing::HasSubstr;

// A list of `size` contacts "c0", "c1", ... served with echoed paging facts.
Page ListPage(int64_t skip, int32_t limit, int64_t size) {
  Page page;
  for (int64_t i = skip; i < std::min<int64_t>(skip + limit, size); ++i) {
    page.contacts.Append({.id = absl::StrCat("c", i)});
  }
  page.skip = skip;
  page.limit = limit;
  page.total_results = size;
  page.has_more = skip + limit < size;
  return page;
}

struct Delivered {
  std::string id;
  int64_t next_offset;
};

std::vector<Delivered> Flat(const std::deque<ContactRun>& runs) {
  std::vector<Delivered> out;
  for (const ContactRun& run : runs) {
    for (size_t i = run.begin; i < run.end; ++i)
      out.push_back({std::string(run.contacts.id(i)), run.next_offset(i)});
  }
  return out;
}

std::vector<std::string> Ids(const std::deque<ContactRun>& runs) {
  std::vector<std::string> ids;
  for (const Delivered& d : Flat(runs)) ids.push_back(d.id);
  return ids;
}

std::vector<std::string> Range(int from, int to) {
  std::vector<std::string> ids;
  for (int i = from; i < to; ++i) ids.push_back(absl::StrCat("c", i));
  return ids;
}

// Pages through a list of `size` until done; returns the delivered ids.
std::vector<std::string> Drain(Pager& pager, int64_t size, int* pages = nullptr) {
  std::deque<ContactRun> out;
  int count = 0;
  while (auto next = pager.Next()) {
    EXPECT_TRUE(pager.Accept(*next, ListPage(next->skip, next->limit, size), &out).ok());
    if (++count > 1000) break;
  }
  if (pages) *pages = count;
  return Ids(out);
}

TEST(PagerTest, TwoPages) {
  Pager pager(PagerOptions{.page_size = 3}, ResumePoint{});
  int pages = 0;
  EXPECT_THAT(Drain(pager, 6, &pages), ElementsAreArray(Range(0, 6)));
  EXPECT_EQ(pages, 2);
  EXPECT_TRUE(pager.done());
  EXPECT_EQ(pager.total_results(), 6);
}

TEST(PagerTest, AsksOverlappingOffsetsToCheckEachSeam) {
  Pager pager(PagerOptions{.page_size = 50}, ResumePoint{});
  std::deque<ContactRun> out;
  ASSERT_EQ(pager.Next()->skip, 0);
  ASSERT_EQ(pager.Next()->limit, 50);
  ASSERT_TRUE(pager.Accept({0, 50}, ListPage(0, 50, 120), &out).ok());
  EXPECT_EQ(pager.Next()->skip, 49);  // the last contact again, then 50 new ones
  EXPECT_EQ(pager.Next()->limit, 51);
  ASSERT_TRUE(pager.Accept({49, 51}, ListPage(49, 51, 120), &out).ok());
  EXPECT_EQ(pager.Next()->skip, 99);
  ASSERT_TRUE(pager.Accept({99, 51}, ListPage(99, 51, 120), &out).ok());
  EXPECT_FALSE(pager.Next().has_value());
  EXPECT_THAT(Ids(out), ElementsAreArray(Range(0, 120)));
  EXPECT_EQ(Flat(out).back().next_offset, 120);
  EXPECT_EQ(Flat(out)[49].next_offset, 50);
  EXPECT_FALSE(pager.list_changed()) << pager.change();
}

TEST(PagerTest, WithoutOverlapAsksConsecutiveOffsets) {
  Pager pager(PagerOptions{.page_size = 50, .seam_overlap = 0}, ResumePoint{});
  std::deque<ContactRun> out;
  ASSERT_TRUE(pager.Accept({0, 50}, ListPage(0, 50, 120), &out).ok());
  EXPECT_EQ(pager.Next()->skip, 50);
  EXPECT_EQ(pager.Next()->limit, 50);
}

TEST(PagerTest, EmptyFirstPage) {
  Pager pager(PagerOptions{.page_size = 10}, ResumePoint{});
  EXPECT_THAT(Drain(pager, 0), ElementsAre());
  EXPECT_TRUE(pager.done());
}

TEST(PagerTest, StopsOnEmptyPageEvenWhenUpstreamSaysMore) {
  Pager pager(PagerOptions{.page_size = 10}, ResumePoint{});
  Page page;
  page.skip = 0;
  page.has_more = true;
  page.total_results = 100;
  std::deque<ContactRun> out;
  ASSERT_TRUE(pager.Accept(*pager.Next(), page, &out).ok());
  EXPECT_TRUE(pager.done());
}

TEST(PagerTest, StopsWhenSkipReachesTotalEvenIfHasMore) {
  Pager pager(PagerOptions{.page_size = 5}, ResumePoint{});
  Page page = ListPage(0, 5, 5);
  page.has_more = true;
  std::deque<ContactRun> out;
  ASSERT_TRUE(pager.Accept(*pager.Next(), page, &out).ok());
  EXPECT_TRUE(pager.done());
}

TEST(PagerTest, WithoutPagingFactsStopsOnShortPage) {
  Pager pager(PagerOptions{.page_size = 4}, ResumePoint{});
  std::deque<ContactRun> out;
  Page full = ListPage(0, 4, 6);
  full.has_more.reset();
  full.total_results.reset();
  full.skip.reset();
  ASSERT_TRUE(pager.Accept(*pager.Next(), full, &out).ok());
  EXPECT_FALSE(pager.done());
  Page rest = ListPage(3, 5, 6);
  rest.has_more.reset();
  rest.total_results.reset();
  ASSERT_TRUE(pager.Accept(*pager.Next(), rest, &out).ok());
  EXPECT_TRUE(pager.done());
  EXPECT_THAT(Ids(out), ElementsAreArray(Range(0, 6)));
}

TEST(PagerTest, FailsWhenUpstreamEchoesAnotherSkip) {
  Pager pager(PagerOptions{.page_size = 5}, ResumePoint{});
  std::deque<ContactRun> out;
  ASSERT_TRUE(pager.Accept(*pager.Next(), ListPage(0, 5, 20), &out).ok());
  absl::Status status = pager.Accept(*pager.Next(), ListPage(0, 6, 20), &out);
  EXPECT_EQ(status.code(), absl::StatusCode::kInternal);
  EXPECT_THAT(status.message(), HasSubstr("asked for skip=4, it answered skip=0"));
  EXPECT_TRUE(pager.done());
  EXPECT_EQ(Flat(out).size(), 5u);
}

TEST(PagerTest, FailsWhenTheSamePageComesBackWithoutEcho) {
  Pager pager(PagerOptions{.page_size = 5}, ResumePoint{});
  std::deque<ContactRun> out;
  Page first = ListPage(0, 5, 20);
  first.skip.reset();
  ASSERT_TRUE(pager.Accept(*pager.Next(), first, &out).ok());
  absl::Status status = pager.Accept(*pager.Next(), first, &out);
  EXPECT_EQ(status.code(), absl::StatusCode::kInternal);
  EXPECT_THAT(status.message(), HasSubstr("same page"));
}

TEST(PagerTest, StopsAtThePageCap) {
  Pager pager(PagerOptions{.page_size = 1, .max_pages = 3}, ResumePoint{});
  std::deque<ContactRun> out;
  absl::Status status;
  for (int i = 0; i < 4 && status.ok(); ++i) {
    auto next = pager.Next();
    ASSERT_TRUE(next.has_value());
    status = pager.Accept(*next, ListPage(next->skip, next->limit, 100), &out);
  }
  EXPECT_EQ(status.code(), absl::StatusCode::kInternal);
  EXPECT_THAT(status.message(), HasSubstr("page cap"));
  EXPECT_EQ(Flat(out).size(), 3u);
}

// A list whose contacts can be inserted and deleted between requests.
class ChangingList {
 public:
  explicit ChangingList(int size) : ids_(Range(0, size)) {}
  Page Serve(const Pager::Request& asked) const {
    Page page;
    page.skip = asked.skip;
    for (int64_t i = asked.skip; i < std::min<int64_t>(asked.skip + asked.limit, ids_.size());
         ++i) {
      page.contacts.Append({.id = ids_[i]});
    }
    page.total_results = ids_.size();
    page.has_more = asked.skip + asked.limit < static_cast<int64_t>(ids_.size());
    return page;
  }
  void Insert(int at, const std::string& id) { ids_.insert(ids_.begin() + at, id); }
  void Erase(int at, int n) { ids_.erase(ids_.begin() + at, ids_.begin() + at + n); }

 private:
  std::vector<std::string> ids_;
};

TEST(PagerTest, InsertionBeforeTheSeamRepeatsNothing) {
  ChangingList list(10);
  Pager pager(PagerOptions{.page_size = 3}, ResumePoint{});
  std::deque<ContactRun> out;
  ASSERT_TRUE(pager.Accept(*pager.Next(), list.Serve(*pager.Next()), &out).ok());  // c0 c1 c2
  list.Insert(0, "new");  // c2 moves from offset 2 to 3
  while (auto next = pager.Next()) ASSERT_TRUE(pager.Accept(*next, list.Serve(*next), &out).ok());
  EXPECT_THAT(Ids(out), ElementsAreArray(Range(0, 10)));
  EXPECT_TRUE(pager.list_changed());
  EXPECT_THAT(pager.change(), HasSubstr("totalResults went from 10 to 11"));
}

TEST(PagerTest, DeletionBeforeTheSeamIsRecoveredByRereading) {
  ChangingList list(20);
  Pager pager(PagerOptions{.page_size = 5}, ResumePoint{});
  std::deque<ContactRun> out;
  ASSERT_TRUE(pager.Accept(*pager.Next(), list.Serve(*pager.Next()), &out).ok());  // c0..c4
  list.Erase(1, 2);  // c1, c2 gone: c5 and c6 slide before the seam
  while (auto next = pager.Next()) ASSERT_TRUE(pager.Accept(*next, list.Serve(*next), &out).ok());
  EXPECT_THAT(Ids(out), ElementsAreArray(Range(0, 20)));  // c1 and c2 had been delivered already
  EXPECT_TRUE(pager.list_changed());
  EXPECT_EQ(pager.rereads(), 1);
}

TEST(PagerTest, DeletionOfTheAnchorItselfIsRecovered) {
  ChangingList list(20);
  Pager pager(PagerOptions{.page_size = 5}, ResumePoint{});
  std::deque<ContactRun> out;
  ASSERT_TRUE(pager.Accept(*pager.Next(), list.Serve(*pager.Next()), &out).ok());  // c0..c4
  list.Erase(4, 1);  // the last delivered contact goes
  while (auto next = pager.Next()) ASSERT_TRUE(pager.Accept(*next, list.Serve(*next), &out).ok());
  EXPECT_THAT(Ids(out), ElementsAreArray(Range(0, 20)));
}

TEST(PagerTest, DeletionAfterTheSeamLosesOnlyTheDeleted) {
  ChangingList list(20);
  Pager pager(PagerOptions{.page_size = 5}, ResumePoint{});
  std::deque<ContactRun> out;
  ASSERT_TRUE(pager.Accept(*pager.Next(), list.Serve(*pager.Next()), &out).ok());
  list.Erase(10, 2);
  while (auto next = pager.Next()) ASSERT_TRUE(pager.Accept(*next, list.Serve(*next), &out).ok());
  std::vector<std::string> expected = Range(0, 20);
  expected.erase(expected.begin() + 10, expected.begin() + 12);
  EXPECT_THAT(Ids(out), ElementsAreArray(expected));
}

TEST(PagerTest, WithoutOverlapDropsDuplicatesAtTheSeam) {
  ChangingList list(6);
  Pager pager(PagerOptions{.page_size = 3, .seam_overlap = 0}, ResumePoint{});
  std::deque<ContactRun> out;
  ASSERT_TRUE(pager.Accept(*pager.Next(), list.Serve(*pager.Next()), &out).ok());
  list.Insert(0, "new");  // c2 slides into the second page
  while (auto next = pager.Next()) ASSERT_TRUE(pager.Accept(*next, list.Serve(*next), &out).ok());
  EXPECT_THAT(Ids(out), ElementsAre("c0", "c1", "c2", "c3", "c4", "c5"));
  EXPECT_EQ(pager.duplicates_dropped(), 1);
}

// Ids are remembered for two to four pages (in two generations of two pages, here 6 ids each): a
// repeat within the last two pages is dropped wherever it comes, one further back may be dropped
// too, one older than four pages is delivered again (the guard's documented limit).
TEST(PagerTest, DropsRepeatsOfTheLastTwoPagesOfIds) {
  const std::vector<std::vector<std::string>> pages = {{"a", "b", "a"}, {"c", "b", "d"},
                                                       {"e", "f", "g"}, {"h", "i", "a"},
                                                       {"j", "k", "l"}, {"m", "a", "g"}};
  Pager pager(PagerOptions{.page_size = 3, .seam_overlap = 0}, ResumePoint{});
  std::deque<ContactRun> out;
  for (const std::vector<std::string>& ids : pages) {
    std::optional<Pager::Request> next = pager.Next();
    ASSERT_TRUE(next);
    Page page;
    for (const std::string& id : ids) page.contacts.Append({.id = id});
    page.skip = next->skip;
    page.total_results = 18;
    ASSERT_TRUE(pager.Accept(*next, page, &out).ok());
  }
  EXPECT_FALSE(pager.Next());
  EXPECT_THAT(Ids(out),
              ElementsAre("a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k", "l", "m", "a"));
  EXPECT_EQ(pager.duplicates_dropped(), 4);
  EXPECT_EQ(pager.delivered(), 14);
}

TEST(PagerTest, PageWithNothingAfterTheSeamEndsTheStream) {
  Pager pager(PagerOptions{.page_size = 2}, ResumePoint{});
  std::deque<ContactRun> out;
  Page first = ListPage(0, 2, 2);
  first.has_more = true;  // wrongly
  first.total_results.reset();
  ASSERT_TRUE(pager.Accept(*pager.Next(), first, &out).ok());
  Page again = ListPage(1, 3, 2);  // only the seam contact
  again.has_more = true;
  again.total_results.reset();
  ASSERT_TRUE(pager.Accept(*pager.Next(), again, &out).ok());
  EXPECT_TRUE(pager.done());
  EXPECT_THAT(Ids(out), ElementsAre("c0", "c1"));
}

TEST(PagerTest, StopsAtMaxContacts) {
  Pager pager(PagerOptions{.page_size = 4, .max_contacts = 6}, ResumePoint{});
  EXPECT_THAT(Drain(pager, 100), ElementsAreArray(Range(0, 6)));
  EXPECT_EQ(pager.delivered(), 6);
}

TEST(PagerTest, ResumesAfterLastDeliveredId) {
  Pager pager(PagerOptions{.page_size = 5},
              ResumePoint{.next_offset = 7, .delivered = 7, .last_ids = {"c5", "c6"}});
  ASSERT_EQ(pager.Next()->skip, 5);  // re-reads the last delivered ids
  EXPECT_THAT(Drain(pager, 12), ElementsAreArray(Range(7, 12)));
  EXPECT_EQ(pager.delivered(), 12);
}

TEST(PagerTest, ResumesAfterLastDeliveredIdWhenContactsWereRemovedBefore) {
  // Delivered c0..c6; then c1 was deleted upstream, so c7 now sits at offset 6.
  Pager pager(PagerOptions{.page_size = 5},
              ResumePoint{.next_offset = 7, .delivered = 7, .last_ids = {"c3", "c4", "c5", "c6"}});
  Page page;
  std::vector<std::string> now = {"c0", "c2", "c3", "c4", "c5", "c6", "c7", "c8"};
  auto next = pager.Next();
  ASSERT_EQ(next->skip, 3);
  page.skip = next->skip;
  for (int64_t i = next->skip; i < static_cast<int64_t>(now.size()); ++i) {
    page.contacts.Append({.id = now[i]});
  }
  page.has_more = false;
  std::deque<ContactRun> out;
  ASSERT_TRUE(pager.Accept(*next, page, &out).ok());
  EXPECT_THAT(Ids(out), ElementsAre("c7", "c8"));
}

TEST(PagerTest, PrefetchesThePagesAheadOnceTheSizeIsKnown) {
  Pager pager(PagerOptions{.page_size = 50}, ResumePoint{});
  EXPECT_FALSE(pager.Ahead(1).has_value());  // totalResults not known yet
  std::deque<ContactRun> out;
  ASSERT_TRUE(pager.Accept(*pager.Next(), ListPage(0, 50, 220), &out).ok());
  EXPECT_EQ(pager.Next(), (Pager::Request{49, 51}));
  EXPECT_EQ(pager.Ahead(1), (Pager::Request{99, 51}));
  EXPECT_EQ(pager.Ahead(3), (Pager::Request{199, 51}));
  EXPECT_FALSE(pager.Ahead(4).has_value());  // past the end
  // Each page prefetched is what Next() asks once the pages before it came in.
  std::vector<Pager::Request> ahead = {*pager.Ahead(1), *pager.Ahead(2), *pager.Ahead(3)};
  ASSERT_TRUE(pager.Accept(*pager.Next(), ListPage(49, 51, 220), &out).ok());
  for (const Pager::Request& request : ahead) {
    ASSERT_EQ(pager.Next(), request);
    ASSERT_TRUE(pager.Accept(request, ListPage(request.skip, request.limit, 220), &out).ok());
  }
  EXPECT_TRUE(pager.done());
  EXPECT_THAT(Ids(out), ElementsAreArray(Range(0, 220)));
}

TEST(PagerTest, PrefetchStopsAtMaxContactsAndThePageCap) {
  Pager pager(PagerOptions{.page_size = 10, .max_pages = 3, .max_contacts = 25}, ResumePoint{});
  std::deque<ContactRun> out;
  ASSERT_TRUE(pager.Accept(*pager.Next(), ListPage(0, 10, 1000), &out).ok());
  EXPECT_TRUE(pager.Ahead(1).has_value());
  EXPECT_FALSE(pager.Ahead(2).has_value());
}

TEST(PagerTest, LearnsTheUpstreamPageCapAndPrefetchesInStep) {
  Pager pager(PagerOptions{.page_size = 10}, ResumePoint{});
  std::deque<ContactRun> out;
  auto serve = [](const Pager::Request& r) {
    return ListPage(r.skip, std::min(r.limit, 10), 50);
  };  // caps at 10
  ASSERT_TRUE(pager.Accept(*pager.Next(), serve(*pager.Next()), &out).ok());
  ASSERT_EQ(pager.Next(), (Pager::Request{9, 11}));
  ASSERT_TRUE(pager.Accept(*pager.Next(), serve(*pager.Next()), &out).ok());  // 10 of 11: capped
  EXPECT_EQ(pager.Next(), (Pager::Request{18, 10}));
  while (pager.Next()) {
    std::optional<Pager::Request> ahead = pager.Ahead(1);
    ASSERT_TRUE(pager.Accept(*pager.Next(), serve(*pager.Next()), &out).ok());
    if (ahead) {
      ASSERT_EQ(pager.Next(), ahead);
    }
  }
  EXPECT_THAT(Ids(out), ElementsAreArray(Range(0, 50)));
}

TEST(PagerTest, ResumedStreamAsksForTheSamePagesAsAFreshOne) {
  Pager pager(PagerOptions{.page_size = 5},
              ResumePoint{.next_offset = 7, .delivered = 7, .last_ids = {"c5", "c6"}});
  EXPECT_EQ(pager.Next(), (Pager::Request{5, 5}));  // up to the page boundary at 10
  std::deque<ContactRun> out;
  ASSERT_TRUE(pager.Accept(*pager.Next(), ListPage(5, 5, 30), &out).ok());
  EXPECT_EQ(pager.Next(), (Pager::Request{9, 6}));  // a fresh stream's third page
}

TEST(PagerTest, ResumeAtMaxContactsIsDoneAtOnce) {
  Pager pager(PagerOptions{.page_size = 5, .max_contacts = 3},
              ResumePoint{.next_offset = 3, .delivered = 3, .last_ids = {"c2"}});
  EXPECT_FALSE(pager.Next().has_value());
}

// --- The largest page the upstream serves: a ceiling on every request, learned and remembered ---

// Pages through a list of `size` whose upstream serves at most `cap` contacts per page; fails the
// test on a request above `most`. Returns the delivered ids; `asked` gets every request.
std::vector<std::string> DrainCapped(Pager& pager, int64_t size, int32_t cap, int32_t most,
                                     std::vector<Pager::Request>* asked = nullptr) {
  std::deque<ContactRun> out;
  for (int count = 0; count < 1000; ++count) {
    std::optional<Pager::Request> next = pager.Next();
    if (!next) break;
    EXPECT_LE(next->limit, most) << "skip=" << next->skip;
    if (asked) asked->push_back(*next);
    Page page = ListPage(next->skip, std::min(next->limit, cap), size);
    EXPECT_TRUE(pager.Accept(*next, page, &out).ok());
  }
  return Ids(out);
}

TEST(PagerCeilingTest, AtTheCeilingEveryRequestAsksForExactlyItSeamIncluded) {
  Pager pager(PagerOptions{.page_size = 10, .max_limit = 10}, ResumePoint{});
  std::vector<Pager::Request> asked;
  EXPECT_THAT(DrainCapped(pager, 50, 10, 10, &asked), ElementsAreArray(Range(0, 50)));
  EXPECT_THAT(asked,
              ElementsAre(Pager::Request{0, 10}, Pager::Request{9, 10}, Pager::Request{18, 10},
                          Pager::Request{27, 10}, Pager::Request{36, 10}, Pager::Request{45, 10}));
  EXPECT_EQ(pager.page_size(), 9);
  EXPECT_FALSE(pager.learned_page_size().has_value());  // served in full: nothing new
  EXPECT_FALSE(pager.list_changed()) << pager.change();
}

TEST(PagerCeilingTest, LearnsTheCapFromAShortPageAndNeverAsksAboveItAgain) {
  Pager pager(PagerOptions{.page_size = 1000, .max_limit = 1000}, ResumePoint{});
  std::vector<Pager::Request> asked;
  EXPECT_THAT(DrainCapped(pager, 450, 100, 1000, &asked), ElementsAreArray(Range(0, 450)));
  ASSERT_GE(asked.size(), 2u);
  EXPECT_EQ(asked[0], (Pager::Request{0, 1000}));
  EXPECT_EQ(asked[1], (Pager::Request{99, 100}));  // 99 new contacts and the seam
  for (size_t i = 1; i < asked.size(); ++i) EXPECT_EQ(asked[i].limit, 100) << i;
  EXPECT_EQ(asked.size(), 5u);  // 100 + 4 x 99 >= 450: no page wasted
  EXPECT_EQ(pager.learned_page_size(), 100);
  EXPECT_THAT(pager.learned_why(), HasSubstr("a page of 1000 came back with 100 contacts"));
}

TEST(PagerCeilingTest, ARememberedSizeIsAskedAtOnceWithTheSeamWithinIt) {
  Pager pager(PagerOptions{.page_size = 1000, .max_limit = 1000, .upstream_serves = 100},
              ResumePoint{});
  std::vector<Pager::Request> asked;
  EXPECT_THAT(DrainCapped(pager, 400, 100, 100, &asked), ElementsAreArray(Range(0, 400)));
  EXPECT_THAT(asked,
              ElementsAre(Pager::Request{0, 100}, Pager::Request{99, 100}, Pager::Request{198, 100},
                          Pager::Request{297, 100}, Pager::Request{396, 100}));
  EXPECT_FALSE(pager.learned_page_size().has_value());
}

TEST(PagerCeilingTest, ACallersSmallerPageSizeKeepsItsPagesAndALargerOneIsCut) {
  Pager smaller(PagerOptions{.page_size = 50, .max_limit = 1000, .upstream_serves = 100},
                ResumePoint{});
  std::vector<Pager::Request> asked;
  EXPECT_THAT(DrainCapped(smaller, 120, 100, 100, &asked), ElementsAreArray(Range(0, 120)));
  EXPECT_THAT(asked,
              ElementsAre(Pager::Request{0, 50}, Pager::Request{49, 51}, Pager::Request{99, 51}));
  Pager larger(PagerOptions{.page_size = 500, .max_limit = 1000, .upstream_serves = 100},
               ResumePoint{});
  EXPECT_EQ(larger.Next(), (Pager::Request{0, 100}));
  EXPECT_EQ(larger.page_size(), 99);
}

// A token of a stream that paged by 50 resumes under a cap of 100: its first request re-reads the
// token's ids up to the next page end, then the stream asks for the pages a fresh one asks for.
TEST(PagerCeilingTest, ResumesATokenOfAnotherPageSizeIntoTheSharedPages) {
  PagerOptions options{.page_size = 1000, .max_limit = 1000, .upstream_serves = 100};
  Pager pager(options,
              ResumePoint{.next_offset = 137, .delivered = 137, .last_ids = Range(133, 137)});
  std::vector<Pager::Request> asked;
  EXPECT_THAT(DrainCapped(pager, 400, 100, 100, &asked), ElementsAreArray(Range(137, 400)));
  EXPECT_THAT(asked, ElementsAre(Pager::Request{133, 66}, Pager::Request{198, 100},
                                 Pager::Request{297, 100}, Pager::Request{396, 100}));
  EXPECT_EQ(pager.delivered(), 400);
}

TEST(PagerCeilingTest, AResumeRightAfterAPageEndRereadsFewerIdsToStayWithinTheCap) {
  PagerOptions options{.page_size = 1000, .max_limit = 1000, .upstream_serves = 100};
  Pager pager(options,
              ResumePoint{.next_offset = 100, .delivered = 100, .last_ids = Range(96, 100)});
  EXPECT_EQ(pager.Next(), (Pager::Request{99, 100}));  // not {96, 103}: the seam still checked
  EXPECT_THAT(DrainCapped(pager, 300, 100, 100), ElementsAreArray(Range(100, 300)));
}

TEST(PagerCeilingTest, RereadsFurtherBackStayWithinTheCap) {
  ChangingList list(50);
  Pager pager(PagerOptions{.page_size = 10, .max_limit = 10}, ResumePoint{});
  std::deque<ContactRun> out;
  ASSERT_TRUE(pager.Accept(*pager.Next(), list.Serve(*pager.Next()), &out).ok());  // c0..c9
  list.Erase(3, 6);  // c3..c8 go: c9, the anchor, slides back out of the next page
  while (auto next = pager.Next()) {
    ASSERT_LE(next->limit, 10) << "skip=" << next->skip;
    ASSERT_TRUE(pager.Accept(*next, list.Serve(*next), &out).ok());
  }
  EXPECT_THAT(Ids(out), ElementsAreArray(Range(0, 50)));  // c3..c8 had been delivered
  EXPECT_EQ(pager.rereads(), 1);
}

TEST(PagerCeilingTest, ARefusalNamingTheLimitGoesOnWithTheSizeItNames) {
  Pager pager(PagerOptions{.page_size = 1000, .max_limit = 1000}, ResumePoint{});
  ASSERT_EQ(pager.Next(), (Pager::Request{0, 1000}));
  ASSERT_TRUE(pager.Refused(*pager.Next(), LimitRefusal{.names_limit = true, .allowed = 100}));
  EXPECT_EQ(pager.Next(), (Pager::Request{0, 100}));
  EXPECT_FALSE(pager.learned_page_size().has_value());  // not until a page is served at it
  std::deque<ContactRun> out;
  ASSERT_TRUE(pager.Accept(*pager.Next(), ListPage(0, 100, 250), &out).ok());
  EXPECT_EQ(pager.learned_page_size(), 100);
  EXPECT_THAT(pager.learned_why(), HasSubstr("a page of 1000 was refused (HTTP 400)"));
  EXPECT_THAT(DrainCapped(pager, 250, 100, 100), ElementsAreArray(Range(100, 250)));
}

TEST(PagerCeilingTest, ARefusalOfASizeAlreadyServedEndsTheStream) {
  Pager pager(PagerOptions{.page_size = 1000, .max_limit = 100}, ResumePoint{});
  std::deque<ContactRun> out;
  ASSERT_TRUE(pager.Accept(*pager.Next(), ListPage(0, 100, 250), &out).ok());
  EXPECT_FALSE(pager.Refused(*pager.Next(), LimitRefusal{.names_limit = true, .allowed = 50}));
  EXPECT_EQ(pager.Next(), (Pager::Request{99, 100}));
}

TEST(SmallerPageSizeTest, ANamedLimitGoesToTheNumberGivenElseDownTheLadder) {
  const LimitRefusal named{.names_limit = true};
  EXPECT_EQ(SmallerPageSize(1000, LimitRefusal{.names_limit = true, .allowed = 250}, 0, 0), 250);
  EXPECT_EQ(SmallerPageSize(1000, named, 0, 0), 100);
  EXPECT_EQ(SmallerPageSize(100, named, 0, 0), 50);
  EXPECT_EQ(SmallerPageSize(50, named, 0, 0), std::nullopt);  // nothing smaller to try
  EXPECT_EQ(SmallerPageSize(30, named, 0, 0), std::nullopt);  // a caller's small page
  // A number that is not below the refused size is no guide.
  EXPECT_EQ(SmallerPageSize(80, LimitRefusal{.names_limit = true, .allowed = std::nullopt}, 0, 0),
            50);
  // A remembered size does not keep a stream from stepping below it: the upstream may have
  // lowered its cap since.
  EXPECT_EQ(SmallerPageSize(100, named, 0, 100), 50);
  // What this stream was served is never refused.
  EXPECT_EQ(SmallerPageSize(100, named, 100, 0), std::nullopt);
  EXPECT_EQ(SmallerPageSize(1000, named, 200, 0), 200);
}

TEST(SmallerPageSizeTest, AnotherBadRequestIsTriedOnceAtASizeKnownToWork) {
  const LimitRefusal other{};
  EXPECT_EQ(SmallerPageSize(1000, other, 0, 0), 50);  // the documented sample
  EXPECT_EQ(SmallerPageSize(50, other, 0, 0), std::nullopt);
  EXPECT_EQ(SmallerPageSize(1000, other, 0, 300), 300);
  EXPECT_EQ(SmallerPageSize(100, other, 0, 100), std::nullopt);  // the remembered size: not it
  EXPECT_EQ(SmallerPageSize(1000, other, 400, 0), 400);
}

}  // namespace
}  // namespace contacts::gateway
