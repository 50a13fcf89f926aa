#include "tools/kore-sim/fault.h"

#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "tools/kore-sim/text.h"

namespace contacts::kore_sim {
namespace {

struct KindName {
  FaultKind kind;
  std::string_view name;
};
constexpr KindName kKindNames[] = {
    {FaultKind::kStatus, "status"},        {FaultKind::kLatency, "latency"},
    {FaultKind::kReset, "reset"},          {FaultKind::kTruncate, "truncate"},
    {FaultKind::kMalformed, "malformed"},  {FaultKind::kIgnorePaging, "ignore-paging"},
    {FaultKind::kEmptyPage, "empty-page"}, {FaultKind::kMutate, "mutate"},
};

std::string_view KindToName(FaultKind kind) {
  for (const KindName& k : kKindNames) {
    if (k.kind == kind) return k.name;
  }
  return "?";
}

absl::Status Invalid(std::string_view spec, std::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat("invalid fault '",
                                                 absl::string_view(spec.data(), spec.size()),
                                                 "': ", absl::string_view(why.data(), why.size())));
}

}  // namespace

absl::StatusOr<FaultRule> ParseFaultSpec(std::string_view spec) {
  std::optional<QueryParams> params = ParseQuery(spec);
  if (!params) return Invalid(spec, "broken %-escape");
  FaultRule rule;
  rule.spec = std::string(spec);
  bool has_kind = false, has_op = false;
  for (const auto& param : *params) {
    const std::string& name = param.first;
    const std::string& value = param.second;
    // Integer parameters with their lower bounds.
    auto integer = [&](int64_t min, int64_t max) -> absl::StatusOr<int64_t> {
      std::optional<int64_t> v = ParseInt64(value);
      if (!v || *v < min || *v > max) {
        return Invalid(spec, absl::StrCat(name, " must be an integer in ", min, "..", max));
      }
      return *v;
    };
    absl::StatusOr<int64_t> number;
    if (name == "kind") {
      has_kind = false;
      for (const KindName& k : kKindNames) {
        if (k.name == value) {
          rule.kind = k.kind;
          has_kind = true;
        }
      }
      if (!has_kind) {
        return Invalid(spec,
                       "kind must be one of status, latency, reset, truncate, malformed, "
                       "ignore-paging, empty-page, mutate");
      }
    } else if (name == "count") {
      if (!(number = integer(-1, INT64_MAX)).ok()) return number.status();
      rule.count = *number;
    } else if (name == "after") {
      if (!(number = integer(0, INT64_MAX)).ok()) return number.status();
      rule.after = *number;
    } else if (name == "list") {
      rule.list = value;
    } else if (name == "skip") {
      if (!(number = integer(0, INT64_MAX)).ok()) return number.status();
      rule.skip = *number;
    } else if (name == "code") {
      if (!(number = integer(100, 599)).ok()) return number.status();
      rule.code = static_cast<int>(*number);
    } else if (name == "retry_after") {
      if (!(number = integer(0, 86400)).ok()) return number.status();
      rule.retry_after_seconds = *number;
    } else if (name == "retry_after_date") {
      if (value != "0" && value != "1") return Invalid(spec, "retry_after_date must be 0 or 1");
      rule.retry_after_date = value == "1";
    } else if (name == "ms") {
      if (!(number = integer(0, 600'000)).ok()) return number.status();
      rule.latency_ms = *number;
    } else if (name == "op") {
      if (value != "insert" && value != "delete") {
        return Invalid(spec, "op must be insert or delete");
      }
      rule.op = value == "insert" ? MutationOp::kInsert : MutationOp::kDelete;
      has_op = true;
    } else if (name == "at") {
      if (!(number = integer(0, ListStore::kMaxMutatedSize)).ok()) return number.status();
      rule.at = *number;
    } else if (name == "n") {
      if (!(number = integer(0, ListStore::kMaxMutatedSize)).ok()) return number.status();
      rule.n = *number;
    } else {
      return Invalid(spec, absl::StrCat("unknown parameter '", name, "'"));
    }
  }
  if (!has_kind) return Invalid(spec, "kind is required");
  if (rule.kind == FaultKind::kMutate && !has_op) {
    return Invalid(spec, "kind=mutate needs op=insert|delete");
  }
  if (rule.retry_after_date && !rule.retry_after_seconds) {
    return Invalid(spec, "retry_after_date=1 needs retry_after=SECONDS");
  }
  return rule;
}

void FaultBook::Add(FaultRule rule) {
  absl::MutexLock lock(&mu_);
  entries_.push_back(Entry{.rule = std::move(rule)});
}

void FaultBook::Clear() {
  absl::MutexLock lock(&mu_);
  entries_.clear();
}

std::optional<FaultRule> FaultBook::Match(std::string_view list_id, int64_t skip) {
  absl::MutexLock lock(&mu_);
  for (Entry& entry : entries_) {
    const FaultRule& rule = entry.rule;
    if (rule.list && *rule.list != list_id) continue;
    if (rule.skip && *rule.skip != skip) continue;
    ++entry.matched;
    if (entry.matched <= rule.after) continue;
    if (rule.count >= 0 && entry.hits >= rule.count) continue;
    ++entry.hits;
    return rule;
  }
  return std::nullopt;
}

std::string FaultBook::ToJson() const {
  absl::MutexLock lock(&mu_);
  std::string out = "[";
  for (const Entry& entry : entries_) {
    if (out.size() > 1) out += ',';
    out += R"({"spec":)";
    AppendJsonString(out, entry.rule.spec);
    out += R"(,"kind":)";
    AppendJsonString(out, KindToName(entry.rule.kind));
    const bool active = entry.rule.count < 0 || entry.hits < entry.rule.count;
    absl::StrAppend(&out, R"(,"matched":)", entry.matched, R"(,"hits":)", entry.hits,
                    R"(,"active":)", active ? "true" : "false", "}");
  }
  out += "]";
  return out;
}

}  // namespace contacts::kore_sim
