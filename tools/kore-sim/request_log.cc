#include "tools/kore-sim/request_log.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "tools/kore-sim/text.h"

namespace contacts::kore_sim {
namespace {

void AppendOptional(std::string& out, const std::optional<int64_t>& value) {
  if (value) {
    absl::StrAppend(&out, *value);
  } else {
    out += "null";
  }
}

void AppendOptional(std::string& out, const std::optional<std::string>& value) {
  if (value) {
    AppendJsonString(out, *value);
  } else {
    out += "null";
  }
}

}  // namespace

void RequestLog::Add(Entry entry) {
  if (capacity_ == 0) {
    absl::MutexLock lock(&mu_);
    ++added_;  // reported as dropped
    return;
  }
  // Trace headers are printable ASCII by their specification; anything else is shown as '?', so
  // that the JSON stays valid whatever a caller sent.
  for (std::optional<std::string>* header : {&entry.traceparent, &entry.tracestate}) {
    if (!*header) continue;
    std::string& value = **header;
    if (value.size() > kMaxHeaderBytes) value.resize(kMaxHeaderBytes);
    for (char& c : value) {
      if (c < ' ' || c > '~') c = '?';
    }
  }
  absl::MutexLock lock(&mu_);
  const size_t slot = static_cast<size_t>(added_++) % capacity_;
  if (slot == ring_.size()) {
    ring_.push_back(std::move(entry));
  } else {
    ring_[slot] = std::move(entry);
  }
}

std::string RequestLog::ToJson(const std::string* list, const std::string* account) const {
  absl::MutexLock lock(&mu_);
  const int64_t held = static_cast<int64_t>(ring_.size());
  std::string out = absl::StrCat(R"({"capacity":)", capacity_, R"(,"dropped":)", added_ - held,
                                 R"(,"requests":[)");
  bool first = true;
  for (int64_t seq = added_ - held + 1; seq <= added_; ++seq) {
    const Entry& e = ring_[static_cast<size_t>(seq - 1) % capacity_];
    if ((list != nullptr && e.list != *list) || (account != nullptr && e.account != *account)) {
      continue;
    }
    if (!first) out += ',';
    first = false;
    absl::StrAppend(&out, R"({"seq":)", seq, R"(,"time":")",
                    absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", e.time, absl::UTCTimeZone()),
                    R"(","method":)");
    AppendJsonString(out, e.method);
    out += R"(,"list":)";
    AppendJsonString(out, e.list);
    out += R"(,"account":)";
    AppendJsonString(out, e.account);
    out += R"(,"skip":)";
    AppendOptional(out, e.skip);
    out += R"(,"limit":)";
    AppendOptional(out, e.limit);
    absl::StrAppend(&out, R"(,"status":)", e.status, R"(,"traceparent":)");
    AppendOptional(out, e.traceparent);
    out += R"(,"tracestate":)";
    AppendOptional(out, e.tracestate);
    out += '}';
  }
  out += "]}";
  return out;
}

void RequestLog::Clear() {
  absl::MutexLock lock(&mu_);
  ring_.clear();
  added_ = 0;
}

}  // namespace contacts::kore_sim
