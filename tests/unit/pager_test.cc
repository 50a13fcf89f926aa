#include "server/stream/pager.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

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
    page.contacts.emplace_back().set_id(absl::StrCat("c", i));
  }
  page.skip = skip;
  page.limit = limit;
  page.total_results = size;
  page.has_more = skip + limit < size;
  return page;
}

std::vector<std::string> Ids(const std::vector<PagedContact>& contacts) {
  std::vector<std::string> ids;
  for (const PagedContact& c : contacts) ids.push_back(c.contact.id());
  return ids;
}

std::vector<std::string> Range(int from, int to) {
  std::vector<std::string> ids;
  for (int i = from; i < to; ++i) ids.push_back(absl::StrCat("c", i));
  return ids;
}

// Pages through a list of `size` until done; returns the delivered ids.
std::vector<std::string> Drain(Pager& pager, int64_t size, int* pages = nullptr) {
  std::vector<PagedContact> out;
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

TEST(PagerTest, AsksConsecutiveOffsets) {
  Pager pager(PagerOptions{.page_size = 50}, ResumePoint{});
  std::vector<PagedContact> out;
  ASSERT_EQ(pager.Next()->skip, 0);
  ASSERT_TRUE(pager.Accept({0, 50}, ListPage(0, 50, 120), &out).ok());
  EXPECT_EQ(pager.Next()->skip, 50);
  ASSERT_TRUE(pager.Accept({50, 50}, ListPage(50, 50, 120), &out).ok());
  EXPECT_EQ(pager.Next()->skip, 100);
  ASSERT_TRUE(pager.Accept({100, 50}, ListPage(100, 50, 120), &out).ok());
  EXPECT_FALSE(pager.Next().has_value());
  EXPECT_EQ(out.size(), 120u);
  EXPECT_EQ(out.back().next_offset, 120);
  EXPECT_EQ(out[49].next_offset, 50);
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
  std::vector<PagedContact> out;
  ASSERT_TRUE(pager.Accept(*pager.Next(), page, &out).ok());
  EXPECT_TRUE(pager.done());
}

TEST(PagerTest, StopsWhenSkipReachesTotalEvenIfHasMore) {
  Pager pager(PagerOptions{.page_size = 5}, ResumePoint{});
  Page page = ListPage(0, 5, 5);
  page.has_more = true;
  std::vector<PagedContact> out;
  ASSERT_TRUE(pager.Accept(*pager.Next(), page, &out).ok());
  EXPECT_TRUE(pager.done());
}

TEST(PagerTest, WithoutPagingFactsStopsOnShortPage) {
  Pager pager(PagerOptions{.page_size = 4}, ResumePoint{});
  std::vector<PagedContact> out;
  Page full = ListPage(0, 4, 6);
  full.has_more.reset();
  full.total_results.reset();
  full.skip.reset();
  ASSERT_TRUE(pager.Accept(*pager.Next(), full, &out).ok());
  EXPECT_FALSE(pager.done());
  Page rest = ListPage(4, 4, 6);
  rest.has_more.reset();
  rest.total_results.reset();
  ASSERT_TRUE(pager.Accept(*pager.Next(), rest, &out).ok());
  EXPECT_TRUE(pager.done());
  EXPECT_THAT(Ids(out), ElementsAreArray(Range(0, 6)));
}

TEST(PagerTest, FailsWhenUpstreamEchoesAnotherSkip) {
  Pager pager(PagerOptions{.page_size = 5}, ResumePoint{});
  std::vector<PagedContact> out;
  ASSERT_TRUE(pager.Accept(*pager.Next(), ListPage(0, 5, 20), &out).ok());
  absl::Status status = pager.Accept(*pager.Next(), ListPage(0, 5, 20), &out);
  EXPECT_EQ(status.code(), absl::StatusCode::kInternal);
  EXPECT_THAT(status.message(), HasSubstr("asked for skip=5, it answered skip=0"));
  EXPECT_TRUE(pager.done());
  EXPECT_EQ(out.size(), 5u);
}

TEST(PagerTest, FailsWhenTheSamePageComesBackWithoutEcho) {
  Pager pager(PagerOptions{.page_size = 5}, ResumePoint{});
  std::vector<PagedContact> out;
  Page first = ListPage(0, 5, 20);
  first.skip.reset();
  ASSERT_TRUE(pager.Accept(*pager.Next(), first, &out).ok());
  absl::Status status = pager.Accept(*pager.Next(), first, &out);
  EXPECT_EQ(status.code(), absl::StatusCode::kInternal);
  EXPECT_THAT(status.message(), HasSubstr("same page"));
}

TEST(PagerTest, StopsAtThePageCap) {
  Pager pager(PagerOptions{.page_size = 1, .max_pages = 3}, ResumePoint{});
  std::vector<PagedContact> out;
  absl::Status status;
  for (int i = 0; i < 4 && status.ok(); ++i) {
    auto next = pager.Next();
    ASSERT_TRUE(next.has_value());
    status = pager.Accept(*next, ListPage(next->skip, 1, 100), &out);
  }
  EXPECT_EQ(status.code(), absl::StatusCode::kInternal);
  EXPECT_THAT(status.message(), HasSubstr("page cap"));
  EXPECT_EQ(out.size(), 3u);
}

TEST(PagerTest, DropsDuplicatesAtTheSeam) {
  // A contact inserted at the front between the two requests shifts c2 into the second page.
  Pager pager(PagerOptions{.page_size = 3}, ResumePoint{});
  std::vector<PagedContact> out;
  ASSERT_TRUE(pager.Accept(*pager.Next(), ListPage(0, 3, 6), &out).ok());
  Page shifted;
  shifted.skip = 3;
  for (const char* id : {"c2", "c3", "c4"}) shifted.contacts.emplace_back().set_id(id);
  shifted.has_more = true;
  ASSERT_TRUE(pager.Accept(*pager.Next(), shifted, &out).ok());
  EXPECT_THAT(Ids(out), ElementsAre("c0", "c1", "c2", "c3", "c4"));
  EXPECT_EQ(pager.duplicates_dropped(), 1);
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
    page.contacts.emplace_back().set_id(now[i]);
  }
  page.has_more = false;
  std::vector<PagedContact> out;
  ASSERT_TRUE(pager.Accept(*next, page, &out).ok());
  EXPECT_THAT(Ids(out), ElementsAre("c7", "c8"));
}

TEST(PagerTest, ResumeAtMaxContactsIsDoneAtOnce) {
  Pager pager(PagerOptions{.page_size = 5, .max_contacts = 3},
              ResumePoint{.next_offset = 3, .delivered = 3, .last_ids = {"c2"}});
  EXPECT_FALSE(pager.Next().has_value());
}

}  // namespace
}  // namespace contacts::gateway
