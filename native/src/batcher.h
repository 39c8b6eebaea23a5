// The native batcher of one model version (docs/native-data-plane.md): server/batching/batcher.py's semantics
// for the requests on the native path. Requests queue in C++ (RequestQueue: priorities, merge keys, max rows,
// bounded size); a scheduler thread forms a batch whenever one of the version's instances is free, waiting up to
// max_queue_delay_us for a full or preferred batch, and hands it over (deliver) with its inputs merged. Python
// runs it, answers its requests, and releases it, which frees the instance. No thread here takes the GIL.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "fast_path.h"
#include "request_queue.h"

namespace oip {

struct Batch {
  std::uint64_t id = 0;
  int key = 0;
  std::shared_ptr<const FastTable> table;  // keeps `spec` alive
  const VersionSpec* spec = nullptr;
  std::vector<std::unique_ptr<FastRequest>> requests;
  std::vector<std::string> merged;                  // per spec input; empty for a batch of one (its own bytes)
  std::vector<std::vector<std::int64_t>> shapes;    // per spec input, the merged shape
  int rows = 0;
  std::int64_t delivered_ns = 0;  // monotonic: when it was handed to Python
  bool executed = false;  // its instance has been given back
  std::vector<bool> answered;  // per request; set by NativeServer::answer and fail, which Python calls on one thread

  const std::string& input_bytes(std::size_t input) const {
    return requests.size() == 1 ? requests.front()->raw(input) : merged[input];
  }
};

class VersionBatcher {
 public:
  using Deliver = std::function<void(std::shared_ptr<Batch>)>;
  // Whether the call is still waiting for its answer (not cancelled, deadline not passed).
  using Alive = std::function<bool(std::uint64_t call)>;
  // Answers a request that never reached an execution: cancelled while queued, past its deadline (`waited_ns` in
  // the queue), or the server stopping.
  enum class Outcome { kCancelled, kExpired, kStopping };
  using Drop = std::function<void(const FastRequest& request, Outcome outcome, std::int64_t waited_ns)>;

  VersionBatcher(const VersionSpec& spec, Deliver deliver, Alive alive, Drop drop);
  ~VersionBatcher();
  VersionBatcher(const VersionBatcher&) = delete;
  VersionBatcher& operator=(const VersionBatcher&) = delete;

  // Queues a request; false when the queue is full (the caller refuses it RESOURCE_EXHAUSTED) or the batcher is
  // retired (`retired()` says which).
  bool enqueue(std::unique_ptr<FastRequest> request);
  // Forgets a queued ticket whose caller went away; false when it is no longer queued.
  bool discard(std::uint64_t ticket);
  bool retired();
  // A batch it delivered has run: its instance is free for the next batch (which may start while this one's
  // responses are still being written).
  void executed();
  // A batch it delivered has been answered.
  void released(std::size_t requests);
  // Requests accepted and not yet released (queued or in a batch): the version's in-flight count.
  std::size_t pending();
  // Takes no new requests; the scheduler ends once the queue is empty.
  void retire();
  bool finished();  // retired, empty, no batch out
  // Stops the scheduler; requests still queued are dropped (stopping = true).
  void stop();
  std::string full_message() const;

 private:
  void schedule();
  bool filled() const;
  std::shared_ptr<Batch> take_batch(std::unique_lock<std::mutex>& lock);
  // Takes the queued requests whose deadline has passed out of the queue (enforced ones only, or all).
  std::vector<std::unique_ptr<FastRequest>> take_expired(std::int64_t now, bool all);
  void drop_all(std::vector<std::unique_ptr<FastRequest>>& requests, Outcome outcome, std::int64_t now,
                std::unique_lock<std::mutex>& lock);
  std::unique_ptr<FastRequest> remove(std::uint64_t id);

  VersionSpec spec_;
  Deliver deliver_;
  Alive alive_;
  Drop drop_;
  std::mutex mutex_;
  std::condition_variable changed_;
  RequestQueue queue_;
  std::unordered_map<std::uint64_t, std::unique_ptr<FastRequest>> waiting_;  // by queue id
  std::unordered_map<std::string, std::uint64_t> layouts_;                   // layout -> merge key
  std::unordered_map<std::uint64_t, std::uint64_t> tickets_;                 // ticket -> queue id
  std::multimap<std::int64_t, std::uint64_t> deadlines_;                     // enforced deadline -> queue id
  std::uint64_t next_id_ = 1;
  int batches_out_ = 0;
  std::size_t requests_out_ = 0;
  bool retired_ = false;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace oip
