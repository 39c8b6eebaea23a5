// What the native server tells Python about the calls it delegates (docs/native-data-plane.md): a queue of
// events that Python's event loop takes in batches when an eventfd says there are some. The I/O thread never
// touches Python: it only appends here, and Python never waits on it.
#pragma once

#include <cstdint>
#include <deque>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "fast_path.h"

namespace oip {

using Metadata = std::vector<std::pair<std::string, std::string>>;

struct CallEvent {
  enum class Kind { kStarted, kMessage, kHalfClosed, kDone, kWritten, kBatch, kTicket, kDropped };
  Kind kind;
  std::uint64_t call;
  // kStarted: the method path; kMessage: the serialized message. kWritten: one write() has gone out (or failed).
  std::string payload;
  // kStarted only.
  Metadata metadata;
  double deadline_remaining = -1.0;  // seconds; negative: the client set no deadline
  // A ModelInfer the native path drew for the access log, tracing or a shadow copy (fast_path.h).
  Drawn drawn;
  std::string peer;
  Metadata auth_properties;
  // kDone only: the call ended without an OK status reaching the client (cancelled, deadline, broken).
  bool cancelled = false;
  // kBatch: `call` is the batch's id (NativeServer::batch).
  // kDropped: a native-path request that never reached an execution: `call` is its version's key, `outcome` and
  // `waited_ns` as for kTicket, `payload` its request id (Python records the failure as for its own requests).
  // kTicket: `call` is a Python-path request's ticket that never reached an execution; `outcome` says why
  // (VersionBatcher::Outcome), `waited_ns` how long it was queued.
  int outcome = 0;
  std::int64_t waited_ns = 0;
};

class EventQueue {
 public:
  EventQueue();
  ~EventQueue();
  EventQueue(const EventQueue&) = delete;
  EventQueue& operator=(const EventQueue&) = delete;

  // Readable while events wait; Python's loop watches it (loop.add_reader).
  int fd() const { return fd_; }
  void post(CallEvent event);
  // Every waiting event, oldest first; resets the fd.
  std::deque<CallEvent> take();

 private:
  std::mutex mutex_;
  std::deque<CallEvent> events_;
  int fd_;
};

}  // namespace oip
