// Picks the JSON parser for upstream pages by measurement (results and decision: REPORT.md).
//
// Every contender turns the same in-memory getAllContacts page (50 or 1000 realistic contacts)
// into the same Page (contacts encoded for the wire, see page.h); the counter `time_per_contact` is
// the time per contact (printed with an SI prefix: "120n" = 120 ns). Contenders:
//   OnDemand   our ParsePage (simdjson on-demand, tolerant reader, the production code)
//   SimdjsonDom  simdjson's DOM parser, then a walk of the DOM
//   RapidJson  RapidJSON DOM (UTF-8 validated), then a walk      [if rapidjson-dev is installed]
//   Nlohmann   nlohmann::json DOM, then a walk                   [if nlohmann-json3-dev is
//   installed] ProtobufMirror  protobuf util::JsonStringToMessage into a generated mirror message
//   ProtobufStruct  protobuf util::JsonStringToMessage into google.protobuf.Struct
// The walks (not the production reader) handle only the documented shape plus nulls; all use
// ParseTimestamp except ProtobufMirror, where protobuf parses the timestamps itself.
// Timestamps alone: ParseTimestamp vs google::protobuf::util::TimeUtil::FromString.
// KoreSimPages: our ParsePage over the pages kore-sim serves for cl-sim-1000000 (the pages of the
// end-to-end benchmarks, bench/run.sh b1: its parse-only reference).

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "benchmark/benchmark.h"
#include "contacts/v1/contacts.pb.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/timestamp.pb.h"
#include "google/protobuf/util/json_util.h"
#include "google/protobuf/util/time_util.h"
#include "page_mirror.pb.h"
#include "server/core/page.h"
#include "server/upstream/page_parser.h"
#include "server/upstream/timestamp.h"
#include "simdjson.h"
#include "tools/kore-sim/contact_render.h"

#if CONTACTS_BENCH_RAPIDJSON
#include "rapidjson/document.h"
#endif
#if CONTACTS_BENCH_NLOHMANN
#include "nlohmann/json.hpp"
#endif

namespace contacts::gateway {
namespace {

// ---------------------------------------------------------------------------------------------
// Input: a realistic page. Documented field order; ~4% without phoneNumber, ~2% with null
// updatedAt, ~5% carrying unknown extra fields, ids shaped like Kore.ai's "cl-" + uuid.

std::string Hex(std::mt19937_64& rng, int digits) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (int i = 0; i < digits; ++i) out.push_back(kHex[rng() % 16]);
  return out;
}

std::string IsoTime(std::mt19937_64& rng) {
  char buf[40];
  std::snprintf(buf, sizeof(buf), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ",
                2022 + static_cast<int>(rng() % 3), 1 + static_cast<int>(rng() % 12),
                1 + static_cast<int>(rng() % 28), static_cast<int>(rng() % 24),
                static_cast<int>(rng() % 60), static_cast<int>(rng() % 60),
                static_cast<int>(rng() % 1000));
  return buf;
}

std::string MakePage(int contacts) {
  std::mt19937_64 rng(42 + static_cast<uint64_t>(contacts));
  std::string out =
      R"({"status":"success","message":"Contacts retrieved successfully","data":{"results":[)";
  for (int i = 0; i < contacts; ++i) {
    if (i) out += ',';
    out += R"({"_id":"cl-)" + Hex(rng, 8) + "-" + Hex(rng, 4) + "-" + Hex(rng, 4) + "-" +
           Hex(rng, 4) + "-" + Hex(rng, 12) + R"(","createdAt":")" + IsoTime(rng) + '"';
    out += i % 50 == 7 ? R"(,"updatedAt":null)" : R"(,"updatedAt":")" + IsoTime(rng) + '"';
    if (i % 25 != 3) {
      out += R"(,"phoneNumber":"+1)" + std::to_string(2000000000 + rng() % 7999999999) + '"';
    }
    if (i % 20 == 11) out += R"(,"source":"upload","tags":["vip"],"meta":{"retries":0})";
    out += '}';
  }
  out += R"(],"skip":0,"limit":)" + std::to_string(contacts) +
         R"(,"hasMore":true,"totalPages":20,"totalResults":)" + std::to_string(20 * contacts) +
         "}}";
  return out;
}

void ReportPerContact(benchmark::State& state, size_t contacts_per_page) {
  const auto contacts =
      static_cast<double>(state.iterations()) * static_cast<double>(contacts_per_page);
  state.SetItemsProcessed(static_cast<int64_t>(contacts));
  state.counters["time_per_contact"] =
      benchmark::Counter(contacts, benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}

// Sanity check shared by all contenders, outside the timed loop.
bool SamePage(const Page& page, int contacts, benchmark::State& state) {
  if (page.contacts.size() != static_cast<size_t>(contacts) || page.contacts[0].id().empty() ||
      !page.contacts[0].has_create_time() || page.total_results != 20 * contacts) {
    state.SkipWithError("contender produced a different page");
    return false;
  }
  return true;
}

EncodedContacts::Time TimeOf(const google::protobuf::Timestamp& time) {
  return {time.seconds(), time.nanos()};
}

EncodedContacts::Time TimeOf(std::string_view text) {
  google::protobuf::Timestamp time;
  if (!ParseTimestamp(text, &time)) std::abort();
  return TimeOf(time);
}

// ---------------------------------------------------------------------------------------------

void BM_OnDemand(benchmark::State& state) {
  const int n = static_cast<int>(state.range(0));
  std::string body = MakePage(n);
  {
    absl::StatusOr<Page> page = ParsePage(body);
    if (!page.ok() || !SamePage(*page, n, state)) return;
  }
  for (auto _ : state) {
    absl::StatusOr<Page> page = ParsePage(body);
    benchmark::DoNotOptimize(page);
  }
  ReportPerContact(state, static_cast<size_t>(n));
}

// The first 16 pages of size `page_size` kore-sim renders for the untouched list cl-sim-1000000.
std::vector<std::string> KoreSimPages(int page_size) {
  constexpr int64_t kListSize = 1'000'000;
  std::vector<std::string> bodies;
  for (int64_t skip = 0; bodies.size() < 16; skip += page_size) {
    std::vector<kore_sim::ContactKey> keys;
    for (int64_t i = skip; i < skip + page_size; ++i)
      keys.push_back(kore_sim::ContactKey::Generated(i));
    bodies.push_back(kore_sim::RenderPage({.list_hash = kore_sim::ListHash("cl-sim-1000000"),
                                           .contacts = keys,
                                           .skip = skip,
                                           .limit = page_size,
                                           .total = kListSize,
                                           .has_more = true}));
  }
  return bodies;
}

void BM_KoreSimPages(benchmark::State& state) {
  const int n = static_cast<int>(state.range(0));
  std::vector<std::string> bodies = KoreSimPages(n);
  for (std::string& body : bodies) {
    absl::StatusOr<Page> page = ParsePage(body);
    if (!page.ok() || page->contacts.size() != static_cast<size_t>(n)) {
      state.SkipWithError("kore-sim page did not parse");
      return;
    }
  }
  size_t next = 0;
  for (auto _ : state) {
    absl::StatusOr<Page> page = ParsePage(bodies[next]);
    benchmark::DoNotOptimize(page);
    next = (next + 1) % bodies.size();
  }
  ReportPerContact(state, static_cast<size_t>(n));
}

// ---------------------------------------------------------------------------------------------

bool DomPage(simdjson::dom::parser& parser, const std::string& body, Page* page) {
  namespace dom = simdjson::dom;
  dom::element root;
  if (parser.parse(reinterpret_cast<const uint8_t*>(body.data()), body.size(), false).get(root)) {
    return false;
  }
  dom::object data;
  dom::array results;
  if (root["data"].get(data) || data["results"].get(results)) return false;
  page->contacts.Reserve(results.size(), 0);
  for (dom::element element : results) {
    dom::object object;
    if (element.get(object)) return false;
    EncodedContacts::Fields contact;
    for (dom::key_value_pair field : object) {
      std::string_view text;
      if (field.key == "_id") {
        if (field.value.get(text)) return false;
        contact.id = text;
      } else if (field.key == "phoneNumber") {
        if (field.value.get(text) == simdjson::SUCCESS) {
          contact.phone_number = text;
        }
      } else if (field.key == "createdAt") {
        if (field.value.get(text) == simdjson::SUCCESS) {
          contact.create_time = TimeOf(text);
        }
      } else if (field.key == "updatedAt") {
        if (field.value.get(text) == simdjson::SUCCESS) {
          contact.update_time = TimeOf(text);
        }
      }
    }
    page->contacts.Append(contact);
  }
  int64_t number = 0;
  bool flag = false;
  if (data["skip"].get(number) == simdjson::SUCCESS) page->skip = number;
  if (data["limit"].get(number) == simdjson::SUCCESS) page->limit = number;
  if (data["totalPages"].get(number) == simdjson::SUCCESS) page->total_pages = number;
  if (data["totalResults"].get(number) == simdjson::SUCCESS) page->total_results = number;
  if (data["hasMore"].get(flag) == simdjson::SUCCESS) page->has_more = flag;
  return true;
}

void BM_SimdjsonDom(benchmark::State& state) {
  const int n = static_cast<int>(state.range(0));
  std::string body = MakePage(n);
  body.reserve(body.size() + simdjson::SIMDJSON_PADDING);
  simdjson::dom::parser parser;
  {
    Page page;
    if (!DomPage(parser, body, &page) || !SamePage(page, n, state)) return;
  }
  for (auto _ : state) {
    Page page;
    benchmark::DoNotOptimize(DomPage(parser, body, &page));
    benchmark::DoNotOptimize(page);
  }
  ReportPerContact(state, static_cast<size_t>(n));
}

// ---------------------------------------------------------------------------------------------

#if CONTACTS_BENCH_RAPIDJSON
bool RapidPage(const std::string& body, Page* page) {
  rapidjson::Document doc;
  doc.Parse<rapidjson::kParseValidateEncodingFlag>(body.data(), body.size());
  if (doc.HasParseError() || !doc.IsObject()) return false;
  auto data = doc.FindMember("data");
  if (data == doc.MemberEnd() || !data->value.IsObject()) return false;
  auto results = data->value.FindMember("results");
  if (results == data->value.MemberEnd() || !results->value.IsArray()) return false;
  page->contacts.Reserve(results->value.Size(), 0);
  for (const auto& element : results->value.GetArray()) {
    if (!element.IsObject()) return false;
    EncodedContacts::Fields contact;
    for (const auto& field : element.GetObject()) {
      const std::string_view key(field.name.GetString(), field.name.GetStringLength());
      if (!field.value.IsString()) continue;
      const std::string_view text(field.value.GetString(), field.value.GetStringLength());
      if (key == "_id") {
        contact.id = text;
      } else if (key == "phoneNumber") {
        contact.phone_number = text;
      } else if (key == "createdAt") {
        contact.create_time = TimeOf(text);
      } else if (key == "updatedAt") {
        contact.update_time = TimeOf(text);
      }
    }
    page->contacts.Append(contact);
  }
  const auto& d = data->value;
  auto integer = [&d](const char* name, std::optional<int64_t>* out) {
    auto it = d.FindMember(name);
    if (it != d.MemberEnd() && it->value.IsInt64()) *out = it->value.GetInt64();
  };
  integer("skip", &page->skip);
  integer("limit", &page->limit);
  integer("totalPages", &page->total_pages);
  integer("totalResults", &page->total_results);
  auto more = d.FindMember("hasMore");
  if (more != d.MemberEnd() && more->value.IsBool()) page->has_more = more->value.GetBool();
  return true;
}

void BM_RapidJson(benchmark::State& state) {
  const int n = static_cast<int>(state.range(0));
  const std::string body = MakePage(n);
  {
    Page page;
    if (!RapidPage(body, &page) || !SamePage(page, n, state)) return;
  }
  for (auto _ : state) {
    Page page;
    benchmark::DoNotOptimize(RapidPage(body, &page));
    benchmark::DoNotOptimize(page);
  }
  ReportPerContact(state, static_cast<size_t>(n));
}
#endif  // CONTACTS_BENCH_RAPIDJSON

// ---------------------------------------------------------------------------------------------

#if CONTACTS_BENCH_NLOHMANN
bool NlohmannPage(const std::string& body, Page* page) {
  const nlohmann::json doc = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (!doc.is_object()) return false;
  auto data = doc.find("data");
  if (data == doc.end() || !data->is_object()) return false;
  auto results = data->find("results");
  if (results == data->end() || !results->is_array()) return false;
  page->contacts.Reserve(results->size(), 0);
  for (const nlohmann::json& element : *results) {
    if (!element.is_object()) return false;
    EncodedContacts::Fields contact;
    for (auto field = element.begin(); field != element.end(); ++field) {
      if (!field->is_string()) continue;
      const std::string& key = field.key();
      const std::string& text = field->get_ref<const std::string&>();
      if (key == "_id") {
        contact.id = text;
      } else if (key == "phoneNumber") {
        contact.phone_number = text;
      } else if (key == "createdAt") {
        contact.create_time = TimeOf(text);
      } else if (key == "updatedAt") {
        contact.update_time = TimeOf(text);
      }
    }
    page->contacts.Append(contact);
  }
  auto integer = [&data](const char* name, std::optional<int64_t>* out) {
    auto it = data->find(name);
    if (it != data->end() && it->is_number_integer()) *out = it->get<int64_t>();
  };
  integer("skip", &page->skip);
  integer("limit", &page->limit);
  integer("totalPages", &page->total_pages);
  integer("totalResults", &page->total_results);
  auto more = data->find("hasMore");
  if (more != data->end() && more->is_boolean()) page->has_more = more->get<bool>();
  return true;
}

void BM_Nlohmann(benchmark::State& state) {
  const int n = static_cast<int>(state.range(0));
  const std::string body = MakePage(n);
  {
    Page page;
    if (!NlohmannPage(body, &page) || !SamePage(page, n, state)) return;
  }
  for (auto _ : state) {
    Page page;
    benchmark::DoNotOptimize(NlohmannPage(body, &page));
    benchmark::DoNotOptimize(page);
  }
  ReportPerContact(state, static_cast<size_t>(n));
}
#endif  // CONTACTS_BENCH_NLOHMANN

// ---------------------------------------------------------------------------------------------

bool MirrorPage(const std::string& body, Page* page) {
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = true;
  contacts::bench::MirrorPage mirror;
  if (!google::protobuf::util::JsonStringToMessage(body, &mirror, options).ok()) return false;
  contacts::bench::MirrorData* data = mirror.mutable_data();
  page->contacts.Reserve(static_cast<size_t>(data->results_size()), 0);
  for (contacts::bench::MirrorContact& result : *data->mutable_results()) {
    EncodedContacts::Fields contact;
    contact.id = result.id();
    contact.phone_number = result.phone_number();
    if (result.has_created_at()) contact.create_time = TimeOf(result.created_at());
    if (result.has_updated_at()) contact.update_time = TimeOf(result.updated_at());
    page->contacts.Append(contact);
  }
  page->skip = data->skip();
  page->limit = data->limit();
  page->has_more = data->has_more();
  page->total_pages = data->total_pages();
  page->total_results = data->total_results();
  return true;
}

void BM_ProtobufMirror(benchmark::State& state) {
  const int n = static_cast<int>(state.range(0));
  const std::string body = MakePage(n);
  {
    Page page;
    if (!MirrorPage(body, &page) || !SamePage(page, n, state)) return;
  }
  for (auto _ : state) {
    Page page;
    benchmark::DoNotOptimize(MirrorPage(body, &page));
    benchmark::DoNotOptimize(page);
  }
  ReportPerContact(state, static_cast<size_t>(n));
}

bool StructPage(const std::string& body, Page* page) {
  using google::protobuf::Value;
  google::protobuf::Struct root;
  if (!google::protobuf::util::JsonStringToMessage(body, &root).ok()) return false;
  auto data = root.fields().find("data");
  if (data == root.fields().end() || !data->second.has_struct_value()) return false;
  const auto& fields = data->second.struct_value().fields();
  auto results = fields.find("results");
  if (results == fields.end() || !results->second.has_list_value()) return false;
  const auto& list = results->second.list_value().values();
  page->contacts.Reserve(static_cast<size_t>(list.size()), 0);
  for (const Value& element : list) {
    if (!element.has_struct_value()) return false;
    EncodedContacts::Fields contact;
    for (const auto& [key, value] : element.struct_value().fields()) {
      if (value.kind_case() != Value::kStringValue) continue;
      if (key == "_id") {
        contact.id = value.string_value();
      } else if (key == "phoneNumber") {
        contact.phone_number = value.string_value();
      } else if (key == "createdAt") {
        contact.create_time = TimeOf(value.string_value());
      } else if (key == "updatedAt") {
        contact.update_time = TimeOf(value.string_value());
      }
    }
    page->contacts.Append(contact);
  }
  auto integer = [&fields](const char* name, std::optional<int64_t>* out) {
    auto it = fields.find(name);
    if (it != fields.end() && it->second.kind_case() == Value::kNumberValue) {
      *out = static_cast<int64_t>(it->second.number_value());
    }
  };
  integer("skip", &page->skip);
  integer("limit", &page->limit);
  integer("totalPages", &page->total_pages);
  integer("totalResults", &page->total_results);
  auto more = fields.find("hasMore");
  if (more != fields.end() && more->second.kind_case() == Value::kBoolValue) {
    page->has_more = more->second.bool_value();
  }
  return true;
}

void BM_ProtobufStruct(benchmark::State& state) {
  const int n = static_cast<int>(state.range(0));
  const std::string body = MakePage(n);
  {
    Page page;
    if (!StructPage(body, &page) || !SamePage(page, n, state)) return;
  }
  for (auto _ : state) {
    Page page;
    benchmark::DoNotOptimize(StructPage(body, &page));
    benchmark::DoNotOptimize(page);
  }
  ReportPerContact(state, static_cast<size_t>(n));
}

// ---------------------------------------------------------------------------------------------
// Timestamps alone.

std::vector<std::string> MakeTimestamps() {
  std::mt19937_64 rng(7);
  std::vector<std::string> out;
  for (int i = 0; i < 1000; ++i) out.push_back(IsoTime(rng));
  return out;
}

void BM_ParseTimestamp(benchmark::State& state) {
  const std::vector<std::string> texts = MakeTimestamps();
  google::protobuf::Timestamp out;
  for (auto _ : state) {
    for (const std::string& text : texts) {
      benchmark::DoNotOptimize(ParseTimestamp(text, &out));
      benchmark::ClobberMemory();
    }
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * texts.size()));
  state.counters["time_per_timestamp"] =
      benchmark::Counter(static_cast<double>(state.iterations() * texts.size()),
                         benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}

void BM_TimeUtilFromString(benchmark::State& state) {
  const std::vector<std::string> texts = MakeTimestamps();
  google::protobuf::Timestamp out;
  for (auto _ : state) {
    for (const std::string& text : texts) {
      benchmark::DoNotOptimize(google::protobuf::util::TimeUtil::FromString(text, &out));
      benchmark::ClobberMemory();
    }
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * texts.size()));
  state.counters["time_per_timestamp"] =
      benchmark::Counter(static_cast<double>(state.iterations() * texts.size()),
                         benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}

BENCHMARK(BM_OnDemand)->Arg(1000)->Arg(50);
BENCHMARK(BM_SimdjsonDom)->Arg(1000)->Arg(50);
#if CONTACTS_BENCH_RAPIDJSON
BENCHMARK(BM_RapidJson)->Arg(1000)->Arg(50);
#endif
#if CONTACTS_BENCH_NLOHMANN
BENCHMARK(BM_Nlohmann)->Arg(1000)->Arg(50);
#endif
BENCHMARK(BM_ProtobufMirror)->Arg(1000)->Arg(50);
BENCHMARK(BM_ProtobufStruct)->Arg(1000)->Arg(50);
BENCHMARK(BM_KoreSimPages)->Arg(1000)->Arg(100);
BENCHMARK(BM_ParseTimestamp);
BENCHMARK(BM_TimeUtilFromString);

}  // namespace
}  // namespace contacts::gateway

BENCHMARK_MAIN();
