// The one scripted PageSource of the unit tests. It keeps the interface's rules: every fetch is
// answered exactly once, on a thread of its own (never inside Fetch), in the order asked.
#ifndef CONTACTS_GATEWAY_TESTS_UNIT_FAKE_PAGE_SOURCE_H_
#define CONTACTS_GATEWAY_TESTS_UNIT_FAKE_PAGE_SOURCE_H_

#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "server/core/page_source.h"

namespace contacts::gateway {

// Serves a list of `list_size` contacts "c0".."c<list_size-1>", page by page as asked, unless
// told otherwise: scripted answers go first, in order; a failure can be set per offset; fetches
// can be held (from an offset on) until Release(); in manual mode each fetch waits for Answer().
// Destroying it drops the fetches still waiting, without their callbacks.
// ThreadSanitizer sees std::mutex and condition_variable (pthread), not the uninstrumented
// libabsl's Mutex::Await: hence the std:: types.
class FakePageSource final : public PageSource {
 public:
  explicit FakePageSource(int64_t list_size = 0, size_t phone_bytes = 12)
      : list_size_(list_size), phone_(phone_bytes, '5'), worker_([this] { Run(); }) {}
  ~FakePageSource() override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    wake_.notify_all();
    worker_.join();
  }

  void Fetch(PageRequest request, std::shared_ptr<Cancellation> cancel, Callback done) override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      requests_.push_back(request);
      cancels_.push_back(cancel);
      jobs_.push_back({std::move(request), std::move(cancel), std::move(done)});
    }
    wake_.notify_all();
  }

  // Answers for the next fetches, in order, before any page of the list.
  void Script(std::deque<PageResult> answers) {
    std::lock_guard<std::mutex> lock(mu_);
    for (PageResult& answer : answers) script_.push_back(std::move(answer));
  }
  void FailAt(int64_t skip, absl::Status status) {
    std::lock_guard<std::mutex> lock(mu_);
    failures_[skip] = std::move(status);
  }
  // Fetches from offset `skip` on wait until Release().
  void HoldFrom(int64_t skip) {
    std::lock_guard<std::mutex> lock(mu_);
    hold_from_ = skip;
  }
  void Release() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      hold_from_.reset();
    }
    wake_.notify_all();
  }
  // From now on every fetch waits for an Answer(), which answers the oldest waiting one.
  void Manual() {
    std::lock_guard<std::mutex> lock(mu_);
    manual_ = true;
  }
  void Answer(absl::StatusOr<Page> page) { Answer(PageResult{std::move(page), {}}); }
  void Answer(PageResult result) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      answers_.push_back(std::move(result));
    }
    wake_.notify_all();
  }

  std::vector<PageRequest> requests() {
    std::lock_guard<std::mutex> lock(mu_);
    return requests_;
  }
  size_t calls() { return requests().size(); }
  // Whether fetch number `i` (0-based, in the order asked) was cancelled by now.
  bool cancelled(size_t i) {
    std::lock_guard<std::mutex> lock(mu_);
    return cancels_.at(i)->cancelled();
  }
  // Waits (up to 10 s) until `n` fetches were answered; false on timeout.
  bool WaitAnswered(size_t n) {
    std::unique_lock<std::mutex> lock(mu_);
    return wake_.wait_for(lock, std::chrono::seconds(10), [&] { return answered_ >= n; });
  }

  // A page of contacts with these ids (phone numbers left empty).
  static Page PageOf(const std::vector<std::string>& ids) {
    Page page;
    for (const std::string& id : ids) page.contacts.Append({.id = id});
    page.total_results = static_cast<int64_t>(ids.size());
    return page;
  }

 private:
  struct Job {
    PageRequest request;
    std::shared_ptr<Cancellation> cancel;
    Callback done;
  };

  void Run() {
    for (;;) {
      Job job;
      PageResult result;
      {
        std::unique_lock<std::mutex> lock(mu_);
        wake_.wait(lock, [this] { return stop_ || !jobs_.empty(); });
        if (jobs_.empty()) return;
        job = std::move(jobs_.front());
        jobs_.pop_front();
        wake_.wait(lock, [&] {
          return stop_ ||
                 (manual_ ? !answers_.empty() : !hold_from_ || job.request.skip < *hold_from_);
        });
        if (stop_) return;  // fetches still waiting are dropped, as a destroyed source's are
        if (manual_) {
          result = std::move(answers_.front());
          answers_.pop_front();
        } else if (!script_.empty()) {
          result = std::move(script_.front());
          script_.pop_front();
        } else if (auto it = failures_.find(job.request.skip); it != failures_.end()) {
          result.page = it->second;
        } else {
          result.page = Serve(job.request);
        }
      }
      if (job.cancel->cancelled() && result.page.ok()) {
        result = PageResult{absl::CancelledError("the call was cancelled"), {}};
      }
      std::move(job.done)(std::move(result));
      {
        std::lock_guard<std::mutex> lock(mu_);
        ++answered_;
      }
      wake_.notify_all();
    }
  }

  Page Serve(const PageRequest& request) const {
    Page page;
    page.skip = request.skip;
    page.limit = request.limit;
    page.total_results = list_size_;
    for (int64_t i = request.skip; i < std::min(list_size_, request.skip + request.limit); ++i) {
      page.contacts.Append({.id = absl::StrCat("c", i), .phone_number = phone_});
    }
    page.has_more = request.skip + request.limit < list_size_;
    return page;
  }

  const int64_t list_size_;
  const std::string phone_;
  std::mutex mu_;
  std::condition_variable wake_;
  std::deque<Job> jobs_;
  std::deque<PageResult> script_;
  std::deque<PageResult> answers_;
  std::map<int64_t, absl::Status> failures_;
  std::optional<int64_t> hold_from_;
  bool manual_ = false;
  bool stop_ = false;
  size_t answered_ = 0;
  std::vector<PageRequest> requests_;
  std::vector<std::shared_ptr<Cancellation>> cancels_;
  std::thread worker_;  // last: starts after every member above is ready
};

}  // namespace contacts::gateway

#endif  // CONTACTS_GATEWAY_TESTS_UNIT_FAKE_PAGE_SOURCE_H_
