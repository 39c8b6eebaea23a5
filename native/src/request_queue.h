// The batcher's queue in C++ (docs/native-data-plane.md; batcher.h uses it): the same specification as
// server/batching/queue.py, kept identical by a property test that runs both on the same operations.
//
// Bounded, FIFO within a priority level (1 first); the oldest request of the best level heads the next batch, and
// only requests with its merge key join it, up to max_rows (a request larger than a batch goes alone).
#pragma once

#include <cstdint>
#include <deque>
#include <vector>

namespace oip {

class RequestQueue {
 public:
  struct Pending {
    std::uint64_t id;
    std::uint64_t merge_key;
    int rows;
  };

  RequestQueue(std::size_t max_size, int priority_levels);

  // Queues a request; false when the queue is full (max_size > 0 and reached): refuse it RESOURCE_EXHAUSTED.
  bool put(std::uint64_t id, int priority, int rows, std::uint64_t merge_key);
  // Forgets a queued request (cancelled or expired); false when it is no longer queued.
  bool discard(std::uint64_t id, int priority);
  // Removes and returns the next batch: the head and compatible requests, in priority order, up to max_rows rows.
  // With merge false every batch is one request.
  std::vector<std::uint64_t> take_batch(int max_rows, bool merge);
  // Rows waiting that could join a batch with the current head.
  int queued_batch_size() const;
  std::size_t size() const { return size_; }
  // The request that heads the next batch; nullptr when empty.
  const Pending* head() const;

 private:
  std::vector<std::deque<Pending>> levels_;
  std::size_t max_size_;
  std::size_t size_ = 0;
};

}  // namespace oip
