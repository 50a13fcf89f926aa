// W3C Trace Context: what is a valid traceparent, and the spans the gateway makes of it.
#include "server/core/trace.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <set>

namespace contacts::gateway {
namespace {

constexpr char kTraceparent[] = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

TEST(TraceContextTest, ReadsTheCallersTraceparentAndTracestate) {
  std::optional<TraceContext> trace = TraceContext::Parse(kTraceparent, "rojo=00f067aa0ba902b7");
  ASSERT_TRUE(trace.has_value());
  EXPECT_EQ(trace->trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
  EXPECT_EQ(trace->span_id, "00f067aa0ba902b7");
  EXPECT_EQ(trace->flags, 1);
  EXPECT_EQ(trace->tracestate, "rojo=00f067aa0ba902b7");
  EXPECT_EQ(trace->Traceparent(), kTraceparent);
}

TEST(TraceContextTest, RefusesMalformedTraceparents) {
  for (const char* bad : {
           "",
           "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",       // no flags
           "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",    // upper case
           "00-00000000000000000000000000000000-00f067aa0ba902b7-01",    // all-zero trace
           "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",    // all-zero span
           "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",    // version ff
           "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x",  // 00 has no more
           "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",    // not hex
       }) {
    EXPECT_FALSE(TraceContext::Parse(bad, "").has_value()) << bad;
  }
  // A later version may add fields after a dash.
  EXPECT_TRUE(
      TraceContext::Parse("cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what", "")
          .has_value());
}

TEST(TraceContextTest, DropsAnInvalidTracestateButKeepsTheTrace) {
  std::optional<TraceContext> trace = TraceContext::Parse(kTraceparent, "a=b\nc=d");
  ASSERT_TRUE(trace.has_value());
  EXPECT_EQ(trace->tracestate, "");
  EXPECT_EQ(TraceContext::Parse(kTraceparent, std::string(513, 'x'))->tracestate, "");
}

TEST(TraceContextTest, ChildrenShareTheTraceWithSpansOfTheirOwn) {
  TraceContext parent = *TraceContext::Parse(kTraceparent, "k=v");
  std::set<std::string> spans = {parent.span_id};
  for (int i = 0; i < 100; ++i) {
    TraceContext child = parent.Child();
    EXPECT_EQ(child.trace_id, parent.trace_id);
    EXPECT_EQ(child.tracestate, "k=v");
    EXPECT_TRUE(TraceContext::Parse(child.Traceparent(), "").has_value());
    spans.insert(child.span_id);
  }
  EXPECT_EQ(spans.size(), 101u);
}

TEST(TraceContextTest, ANewTraceIsValidAndSampled) {
  TraceContext a = TraceContext::New();
  TraceContext b = TraceContext::New();
  EXPECT_NE(a.trace_id, b.trace_id);
  std::optional<TraceContext> parsed = TraceContext::Parse(a.Traceparent(), "");
  ASSERT_TRUE(parsed.has_value());
  EXPECT_EQ(parsed->trace_id, a.trace_id);
  EXPECT_EQ(parsed->flags, 1);
}

}  // namespace
}  // namespace contacts::gateway
