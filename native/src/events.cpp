#include "events.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <stdexcept>
#include <system_error>

namespace oip {

EventQueue::EventQueue() : fd_(eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) {
  if (fd_ < 0) {
    throw std::system_error(errno, std::generic_category(), "eventfd");
  }
}

EventQueue::~EventQueue() { close(fd_); }

void EventQueue::post(CallEvent event) {
  std::lock_guard<std::mutex> lock(mutex_);
  // Only the first event of a batch wakes the loop: one write per take, however many events arrive between.
  bool wake = events_.empty();
  events_.push_back(std::move(event));
  if (wake) {
    std::uint64_t one = 1;
    // A full counter (2^64 - 2 unread wakes) cannot happen: take() resets it every time.
    [[maybe_unused]] auto written = write(fd_, &one, sizeof(one));
  }
}

std::deque<CallEvent> EventQueue::take() {
  std::lock_guard<std::mutex> lock(mutex_);
  std::uint64_t count = 0;
  [[maybe_unused]] auto read_bytes = read(fd_, &count, sizeof(count));  // EAGAIN when already reset: fine
  std::deque<CallEvent> taken;
  taken.swap(events_);
  return taken;
}

}  // namespace oip
