#include "batcher.h"

#include <pthread.h>

#include <algorithm>
#include <chrono>

namespace oip {

namespace {

// Bounded: past this many distinct layouts the table is cleared when the queue is empty (ids restart).
constexpr std::size_t kMaxLayouts = 4096;

}  // namespace

VersionBatcher::VersionBatcher(const VersionSpec& spec, Deliver deliver, Alive alive, Drop drop)
    : spec_(spec),
      deliver_(std::move(deliver)),
      alive_(std::move(alive)),
      drop_(std::move(drop)),
      queue_(spec.max_queue_size, std::max(1, spec.priority_levels)) {
  thread_ = std::thread([this] { schedule(); });
  pthread_setname_np(thread_.native_handle(), "oip-batcher");
}

VersionBatcher::~VersionBatcher() { stop(); }

std::string VersionBatcher::full_message() const {
  // server/batching/queue.py's words.
  return "the queue of model " + spec_.model_name + ":" + spec_.version_text + " is full (" +
         std::to_string(spec_.max_queue_size) +
         " requests waiting; max_queue_size in config.toml [batching]); retry later or add instances";
}

static int level(const VersionSpec& spec, const FastRequest& request) {
  int levels = std::max(1, spec.priority_levels);
  return std::clamp(request.priority > 0 ? request.priority : spec.default_priority, 1, levels);
}

bool VersionBatcher::enqueue(std::unique_ptr<FastRequest> request) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (retired_ || stopping_) {
    return false;
  }
  if (waiting_.empty() && layouts_.size() > kMaxLayouts) {
    layouts_.clear();
  }
  auto [layout, added] = layouts_.try_emplace(request->layout, layouts_.size() + 1);
  std::uint64_t id = next_id_++;
  const bool was_empty = queue_.size() == 0;
  if (!queue_.put(id, level(spec_, *request), request->rows, layout->second)) {
    return false;
  }
  request->enqueued_ns = monotonic_ns();
  if (request->ticket != 0) {
    tickets_[request->ticket] = id;
  }
  const bool new_deadline = request->enforce_deadline && request->deadline_ns >= 0;
  if (new_deadline) {
    deadlines_.emplace(request->deadline_ns, id);
  }
  waiting_.emplace(id, std::move(request));
  // Wake the scheduler only when this request can change what it does: it was idle (empty queue, an instance
  // free), it waits for a batch to fill, or there is a new deadline to watch. While every instance is busy it waits for released(), and
  // a wake-up per request would cost a context switch each (measured: most of the server's CPU on the tiny model).
  const bool instance_free = batches_out_ < spec_.instances;
  const bool delaying = spec_.max_queue_delay_us > 0 && instance_free;
  if ((was_empty && instance_free) || delaying || new_deadline) {
    changed_.notify_one();
  }
  return true;
}

bool VersionBatcher::retired() {
  std::lock_guard<std::mutex> lock(mutex_);
  return retired_ || stopping_;
}

std::unique_ptr<FastRequest> VersionBatcher::remove(std::uint64_t id) {
  auto found = waiting_.find(id);
  if (found == waiting_.end()) {
    return nullptr;
  }
  std::unique_ptr<FastRequest> request = std::move(found->second);
  waiting_.erase(found);
  if (request->ticket != 0) {
    tickets_.erase(request->ticket);
  }
  if (request->enforce_deadline && request->deadline_ns >= 0) {
    auto [first, last] = deadlines_.equal_range(request->deadline_ns);
    for (auto it = first; it != last; ++it) {
      if (it->second == id) {
        deadlines_.erase(it);
        break;
      }
    }
  }
  return request;
}

bool VersionBatcher::discard(std::uint64_t ticket) {
  std::lock_guard<std::mutex> lock(mutex_);
  auto found = tickets_.find(ticket);
  if (found == tickets_.end()) {
    return false;
  }
  std::uint64_t id = found->second;
  const FastRequest& request = *waiting_.at(id);
  if (!queue_.discard(id, level(spec_, request))) {
    return false;
  }
  remove(id);
  changed_.notify_one();
  return true;
}

std::vector<std::unique_ptr<FastRequest>> VersionBatcher::take_expired(std::int64_t now, bool all) {
  std::vector<std::uint64_t> due;
  if (all) {
    for (const auto& [id, request] : waiting_) {
      if (request->deadline_ns >= 0 && request->deadline_ns <= now) {
        due.push_back(id);
      }
    }
  } else {
    for (auto it = deadlines_.begin(); it != deadlines_.end() && it->first <= now; ++it) {
      due.push_back(it->second);
    }
  }
  std::vector<std::unique_ptr<FastRequest>> expired;
  for (auto id : due) {
    const FastRequest& request = *waiting_.at(id);
    if (queue_.discard(id, level(spec_, request))) {
      expired.push_back(remove(id));
    }
  }
  return expired;
}

void VersionBatcher::drop_all(std::vector<std::unique_ptr<FastRequest>>& requests, Outcome outcome,
                              std::int64_t now, std::unique_lock<std::mutex>& lock) {
  if (requests.empty()) {
    return;
  }
  lock.unlock();
  for (const auto& request : requests) {
    drop_(*request, outcome, now - request->enqueued_ns);
  }
  lock.lock();
  requests.clear();
}

void VersionBatcher::executed() {
  std::lock_guard<std::mutex> lock(mutex_);
  batches_out_ -= 1;
  changed_.notify_one();
}

void VersionBatcher::released(std::size_t requests) {
  std::lock_guard<std::mutex> lock(mutex_);
  requests_out_ -= requests;  // the pending count only: nothing the scheduler waits for
}

std::size_t VersionBatcher::pending() {
  std::lock_guard<std::mutex> lock(mutex_);
  return waiting_.size() + requests_out_;
}

void VersionBatcher::retire() {
  std::lock_guard<std::mutex> lock(mutex_);
  retired_ = true;
  changed_.notify_one();
}

bool VersionBatcher::finished() {
  std::lock_guard<std::mutex> lock(mutex_);
  return retired_ && waiting_.empty() && batches_out_ == 0 && requests_out_ == 0;
}

void VersionBatcher::stop() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
    changed_.notify_one();
  }
  if (thread_.joinable()) {
    thread_.join();
  }
}

bool VersionBatcher::filled() const {
  // server/batching/batcher.py's _filled: the rows that could join the head's batch reach the maximum or a
  // preferred size (a request of several rows can step past a preferred size: past the largest, go too).
  int queued = queue_.queued_batch_size();
  int max_rows = std::max(1, spec_.max_batch_size);
  const auto& preferred = spec_.preferred_batch_sizes;
  return queued >= max_rows || std::find(preferred.begin(), preferred.end(), queued) != preferred.end() ||
         (!preferred.empty() && queued > *std::max_element(preferred.begin(), preferred.end()));
}

void VersionBatcher::schedule() {
  std::unique_lock<std::mutex> lock(mutex_);
  const bool merge = spec_.merge && spec_.max_batch_size > 0;
  const std::int64_t delay_ns = merge ? spec_.max_queue_delay_us * 1000 : 0;
  using Clock = std::chrono::steady_clock;  // CLOCK_MONOTONIC, like monotonic_ns()
  auto at = [](std::int64_t ns) { return Clock::time_point(std::chrono::nanoseconds(ns)); };
  while (!stopping_ && !(retired_ && queue_.size() == 0)) {
    std::int64_t now = monotonic_ns();
    auto expired = take_expired(now, false);  // enforced deadlines expire while they wait, batch or not
    drop_all(expired, Outcome::kExpired, now, lock);
    std::int64_t wake = deadlines_.empty() ? -1 : deadlines_.begin()->first;
    auto sleep_until = [&](std::int64_t until) {
      if (wake >= 0 && (until < 0 || wake < until)) {
        until = wake;
      }
      if (until < 0) {
        changed_.wait(lock);
      } else {
        changed_.wait_until(lock, at(until));
      }
    };
    if (queue_.size() == 0 || batches_out_ >= spec_.instances) {
      sleep_until(-1);
      continue;
    }
    if (delay_ns > 0 && !filled()) {
      // Give the batch until the oldest request's delay runs out to fill up (or reach a preferred size).
      std::int64_t due = waiting_.at(queue_.head()->id)->enqueued_ns + delay_ns;
      if (now < due) {
        sleep_until(due);
        continue;
      }
    }
    auto batch = take_batch(lock);
    if (batch) {
      lock.unlock();
      deliver_(std::move(batch));
      lock.lock();
    }
  }
  // Stopping: what is still queued never runs.
  std::vector<std::unique_ptr<FastRequest>> dropped;
  for (auto& [id, request] : waiting_) {
    dropped.push_back(std::move(request));
  }
  waiting_.clear();
  tickets_.clear();
  deadlines_.clear();
  drop_all(dropped, Outcome::kStopping, monotonic_ns(), lock);
}

std::shared_ptr<Batch> VersionBatcher::take_batch(std::unique_lock<std::mutex>& lock) {
  const bool merge = spec_.merge && spec_.max_batch_size > 0;
  auto ids = queue_.take_batch(std::max(1, spec_.max_batch_size), merge);
  auto batch = std::make_shared<Batch>();
  std::vector<std::unique_ptr<FastRequest>> gone, expired;
  const std::int64_t now = monotonic_ns();
  for (auto id : ids) {
    std::unique_ptr<FastRequest> request = remove(id);
    if (request->deadline_ns >= 0 && request->deadline_ns <= now) {
      expired.push_back(std::move(request));  // past its deadline while queued: never executed
    } else if (request->ticket == 0 && !alive_(request->call)) {
      gone.push_back(std::move(request));  // its client went away (cancelled, gRPC deadline) while queued
    } else {
      batch->requests.push_back(std::move(request));
    }
  }
  drop_all(expired, Outcome::kExpired, now, lock);
  drop_all(gone, Outcome::kCancelled, now, lock);
  if (batch->requests.empty()) {
    return nullptr;
  }
  batches_out_ += 1;
  requests_out_ += batch->requests.size();
  lock.unlock();
  // Merging copies the inputs: outside the lock, so that requests keep queueing meanwhile.
  const FastRequest& first = *batch->requests.front();
  batch->key = first.spec->key;
  batch->table = first.table;
  batch->spec = first.spec;
  for (const auto& request : batch->requests) {
    batch->rows += request->rows;
  }
  const auto inputs = first.spec->inputs.size();
  batch->shapes = first.shapes;
  if (batch->requests.size() > 1) {
    batch->merged.resize(inputs);
    for (std::size_t input = 0; input < inputs; ++input) {
      batch->shapes[input][0] = batch->rows;
      std::size_t total = 0;
      for (const auto& request : batch->requests) {
        total += request->raw(input).size();
      }
      std::string& merged = batch->merged[input];
      merged.reserve(total);
      for (const auto& request : batch->requests) {
        merged += request->raw(input);
      }
    }
  }
  lock.lock();
  return batch;
}

}  // namespace oip
