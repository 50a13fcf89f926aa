// LocalPageSizeMemory: the largest page the upstream serves, per account, bounded.
#include "server/stream/local_page_size_memory.h"

#include <gtest/gtest.h>

#include <optional>

namespace contacts::gateway {
namespace {

// What Recall answers; it must answer inside the call.
std::optional<int32_t> Recalled(LocalPageSizeMemory& memory, std::string_view account) {
  std::optional<int32_t> out = -1;
  bool answered = false;
  memory.Recall(account, [&](std::optional<int32_t> size) {
    out = size;
    answered = true;
  });
  EXPECT_TRUE(answered);
  return out;
}

TEST(LocalPageSizeMemoryTest, RemembersTheLatestSizePerAccount) {
  LocalPageSizeMemory memory;
  EXPECT_EQ(Recalled(memory, "acct-1"), std::nullopt);
  EXPECT_TRUE(memory.Learn("acct-1", 100));
  EXPECT_FALSE(memory.Learn("acct-1", 100));  // nothing new: not logged again
  EXPECT_EQ(Recalled(memory, "acct-1"), 100);
  EXPECT_EQ(Recalled(memory, "acct-2"), std::nullopt);
  EXPECT_TRUE(memory.Learn("acct-1", 50));  // the upstream lowered its cap
  EXPECT_EQ(Recalled(memory, "acct-1"), 50);
}

TEST(LocalPageSizeMemoryTest, ForgetsTheLeastRecentlyUsedAccountBeyondItsCapacity) {
  LocalPageSizeMemory memory(2);
  memory.Learn("acct-a", 100);
  memory.Learn("acct-b", 200);
  EXPECT_EQ(Recalled(memory, "acct-a"), 100);  // acct-a is now the most recent
  memory.Learn("acct-c", 300);
  EXPECT_EQ(memory.size(), 2u);
  EXPECT_EQ(memory.Peek("acct-b"), std::nullopt);
  EXPECT_EQ(memory.Peek("acct-a"), 100);
  EXPECT_EQ(memory.Peek("acct-c"), 300);
}

}  // namespace
}  // namespace contacts::gateway
