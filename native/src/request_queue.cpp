#include "request_queue.h"

#include <algorithm>

namespace oip {

RequestQueue::RequestQueue(std::size_t max_size, int priority_levels)
    : levels_(static_cast<std::size_t>(std::max(priority_levels, 1))), max_size_(max_size) {}

bool RequestQueue::put(std::uint64_t id, int priority, int rows, std::uint64_t merge_key) {
  if (max_size_ != 0 && size_ >= max_size_) {
    return false;
  }
  levels_.at(static_cast<std::size_t>(priority - 1)).push_back({id, merge_key, rows});
  ++size_;
  return true;
}

bool RequestQueue::discard(std::uint64_t id, int priority) {
  auto& level = levels_.at(static_cast<std::size_t>(priority - 1));
  auto found = std::find_if(level.begin(), level.end(), [id](const Pending& pending) { return pending.id == id; });
  if (found == level.end()) {
    return false;
  }
  level.erase(found);
  --size_;
  return true;
}

const RequestQueue::Pending* RequestQueue::head() const {
  for (const auto& level : levels_) {
    if (!level.empty()) {
      return &level.front();
    }
  }
  return nullptr;
}

int RequestQueue::queued_batch_size() const {
  const Pending* first = head();
  if (first == nullptr) {
    return 0;
  }
  int rows = 0;
  for (const auto& level : levels_) {
    for (const auto& pending : level) {
      if (pending.merge_key == first->merge_key) {
        rows += pending.rows;
      }
    }
  }
  return rows;
}

std::vector<std::uint64_t> RequestQueue::take_batch(int max_rows, bool merge) {
  std::vector<std::uint64_t> batch;
  const Pending* first = head();
  if (first == nullptr) {
    return batch;
  }
  const std::uint64_t key = first->merge_key;
  int rows = 0;
  for (auto& level : levels_) {
    std::deque<Pending> kept;  // other keys passed over, put back in front in their order
    while (!level.empty() && rows < max_rows && (merge || batch.empty())) {
      Pending pending = level.front();
      level.pop_front();
      const bool fits = rows + pending.rows <= max_rows || batch.empty();
      const bool wanted = pending.merge_key == key && (merge || batch.empty());
      if (wanted && fits) {
        batch.push_back(pending.id);
        rows += pending.rows;
      } else if (wanted) {
        level.push_front(pending);  // the next compatible request does not fit: it heads the next batch
        break;
      } else {
        kept.push_back(pending);
      }
    }
    level.insert(level.begin(), kept.begin(), kept.end());
    if (rows >= max_rows || (!batch.empty() && !merge)) {
      break;
    }
  }
  size_ -= batch.size();
  return batch;
}

}  // namespace oip
