#include "server.h"

#include <pthread.h>

#include <chrono>
#include <csignal>
#include <deque>
#include <stdexcept>
#include <vector>

namespace oip {

// A completion-queue tag: which call, and which of its operations completed.
struct Tag {
  enum class Op { kStarted, kRead, kWritten, kFinished, kDone };
  Call* call;
  Op op;
};

// One delegated call, from RequestCall to the last of its operations. The I/O thread and Python's write()/finish()
// change it only under NativeServer::mutex_. It is freed once gRPC is done with it (the done tag), its finish has
// completed, and no read or write is outstanding: until then a late completion could still name it.
struct Call {
  Call()
      : stream(&context),
        started_tag{this, Tag::Op::kStarted},
        read_tag{this, Tag::Op::kRead},
        written_tag{this, Tag::Op::kWritten},
        finished_tag{this, Tag::Op::kFinished},
        done_tag{this, Tag::Op::kDone} {}

  struct Ending {
    grpc::Status status;
    std::optional<std::string> last;
  };

  std::uint64_t id = 0;
  grpc::GenericServerContext context;
  grpc::GenericServerAsyncReaderWriter stream;
  grpc::ByteBuffer read_buffer;
  grpc::ByteBuffer write_buffer;
  std::deque<std::string> pending_writes;
  std::optional<Ending> ending;
  bool reading = false;
  bool half_closed = false;
  bool writing = false;
  bool finishing = false;  // Finish (or WriteAndFinish) issued
  bool finished = false;   // ...and completed
  bool done = false;       // gRPC's done tag arrived
  Tag started_tag, read_tag, written_tag, finished_tag, done_tag;
};

namespace {

// Threads started while this lives (gRPC's and ours) inherit a mask without SIGINT and SIGTERM, so the
// signals keep reaching Python's main thread, which runs the shutdown sequence.
class SignalsBlocked {
 public:
  SignalsBlocked() {
    sigset_t blocked;
    sigemptyset(&blocked);
    sigaddset(&blocked, SIGINT);
    sigaddset(&blocked, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &blocked, &previous_);
  }
  ~SignalsBlocked() { pthread_sigmask(SIG_SETMASK, &previous_, nullptr); }

 private:
  sigset_t previous_;
};

std::string contents(const grpc::ByteBuffer& buffer) {
  std::vector<grpc::Slice> slices;
  std::string joined;
  if (!buffer.Dump(&slices).ok()) {
    return joined;
  }
  joined.reserve(buffer.Length());
  for (const auto& slice : slices) {
    joined.append(reinterpret_cast<const char*>(slice.begin()), slice.size());
  }
  return joined;
}

// The buffer takes the string's bytes without copying them: the slice owns a moved-from heap string.
grpc::ByteBuffer buffer_of(std::string message) {
  auto* owned = new std::string(std::move(message));
  grpc::Slice slice(owned->data(), owned->size(), [](void* text) { delete static_cast<std::string*>(text); },
                    owned);
  return grpc::ByteBuffer(&slice, 1);
}

std::string text(grpc::string_ref ref) { return std::string(ref.data(), ref.size()); }

std::shared_ptr<grpc::ServerCredentials> credentials(const ServerOptions& options) {
  if (options.tls_certificate.empty() || options.tls_private_key.empty()) {
    return grpc::InsecureServerCredentials();
  }
  grpc::SslServerCredentialsOptions tls(options.tls_client_ca.empty()
                                            ? GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE
                                            : GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
  tls.pem_root_certs = options.tls_client_ca;
  tls.pem_key_cert_pairs.push_back({options.tls_private_key, options.tls_certificate});
  return grpc::SslServerCredentials(tls);
}

}  // namespace

NativeServer::NativeServer(const ServerOptions& options) {
  SignalsBlocked during_start;
  grpc::ServerBuilder builder;
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, options.reuse_port ? 1 : 0);  // gRPC's default is on
  builder.AddChannelArgument(GRPC_ARG_MAX_CONCURRENT_STREAMS, 10000);
  builder.SetMaxReceiveMessageSize(options.max_message_bytes);
  builder.SetMaxSendMessageSize(options.max_message_bytes);
  builder.AddListeningPort(options.address, credentials(options), &port_);
  builder.RegisterAsyncGenericService(&service_);
  queue_ = builder.AddCompletionQueue();
  server_ = builder.BuildAndStart();
  if (!server_ || port_ == 0) {
    throw std::runtime_error("could not bind gRPC to " + options.address);
  }
  running_ = true;
  request_next_call();
  io_thread_ = std::thread([this] { serve(); });
}

NativeServer::~NativeServer() { stop(0.0); }

void NativeServer::request_next_call() {
  auto* call = new Call();
  call->context.AsyncNotifyWhenDone(&call->done_tag);  // never delivered if the call never starts
  service_.RequestCall(&call->context, &call->stream, queue_.get(), queue_.get(), &call->started_tag);
}

void NativeServer::serve() {
  void* raw = nullptr;
  bool ok = false;
  while (queue_->Next(&raw, &ok)) {
    auto* tag = static_cast<Tag*>(raw);
    switch (tag->op) {
      case Tag::Op::kStarted:
        on_started(tag->call, ok);
        break;
      case Tag::Op::kRead:
        on_read(tag->call, ok);
        break;
      case Tag::Op::kWritten:
        on_written(tag->call, ok);
        break;
      case Tag::Op::kFinished:
        on_finished(tag->call);
        break;
      case Tag::Op::kDone:
        on_done(tag->call);
        break;
    }
  }
}

void NativeServer::on_started(Call* call, bool ok) {
  if (!ok) {  // the server is shutting down: this call never started, and gRPC holds nothing of it
    delete call;
    return;
  }
  std::lock_guard<std::mutex> lock(mutex_);
  call->id = next_id_++;
  calls_[call->id] = call;
  if (running_) {
    request_next_call();  // the next call, before this one is served
  }
  CallEvent started{CallEvent::Kind::kStarted, call->id, call->context.method()};
  for (const auto& [key, value] : call->context.client_metadata()) {
    started.metadata.emplace_back(text(key), text(value));
  }
  auto deadline = call->context.deadline();
  if (deadline != std::chrono::system_clock::time_point::max()) {
    started.deadline_remaining =
        std::chrono::duration<double>(deadline - std::chrono::system_clock::now()).count();
    if (started.deadline_remaining < 0) {
      started.deadline_remaining = 0;
    }
  }
  started.peer = call->context.peer();
  if (auto auth = call->context.auth_context(); auth != nullptr) {
    for (const auto& [name, value] : *auth) {
      started.auth_properties.emplace_back(text(name), text(value));
    }
  }
  events_.post(std::move(started));
  call->reading = true;
  call->stream.Read(&call->read_buffer, &call->read_tag);
}

void NativeServer::on_read(Call* call, bool ok) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (!ok) {  // the client half-closed, or the call ended
    call->reading = false;
    call->half_closed = true;
    events_.post(CallEvent{CallEvent::Kind::kHalfClosed, call->id});
    free_if_idle(call);
    return;
  }
  if (call->finishing) {  // answered already: no more reads on a finished call
    call->reading = false;
    call->read_buffer.Clear();
    free_if_idle(call);
    return;
  }
  events_.post(CallEvent{CallEvent::Kind::kMessage, call->id, contents(call->read_buffer)});
  call->read_buffer.Clear();
  call->reading = false;  // the next read waits for Python's read_next(): flow control reaches the client
  free_if_idle(call);
}

bool NativeServer::read_next(std::uint64_t id) {
  std::lock_guard<std::mutex> lock(mutex_);
  auto found = calls_.find(id);
  if (found == calls_.end() || queue_closed_) {
    return false;
  }
  Call* call = found->second;
  if (call->reading || call->finishing || call->half_closed) {
    return false;
  }
  call->reading = true;
  call->stream.Read(&call->read_buffer, &call->read_tag);
  return true;
}

void NativeServer::on_written(Call* call, bool ok) {
  std::lock_guard<std::mutex> lock(mutex_);
  call->writing = false;
  std::size_t settled = 1;
  if (!ok) {  // the stream is broken: nothing more reaches the client, and Python must not wait for it
    settled += call->pending_writes.size();
    call->pending_writes.clear();
  }
  for (std::size_t i = 0; i < settled; ++i) {
    events_.post(CallEvent{CallEvent::Kind::kWritten, call->id});
  }
  pump(call);
  free_if_idle(call);
}

void NativeServer::on_finished(Call* call) {
  std::lock_guard<std::mutex> lock(mutex_);
  call->finished = true;
  free_if_idle(call);
}

void NativeServer::on_done(Call* call) {
  std::lock_guard<std::mutex> lock(mutex_);
  call->done = true;
  CallEvent done{CallEvent::Kind::kDone, call->id};
  done.cancelled = call->context.IsCancelled();
  events_.post(std::move(done));
  free_if_idle(call);
}

void NativeServer::pump(Call* call) {
  if (call->writing || call->finishing) {
    return;
  }
  if (!call->pending_writes.empty()) {
    call->write_buffer = buffer_of(std::move(call->pending_writes.front()));
    call->pending_writes.pop_front();
    call->writing = true;
    call->stream.Write(call->write_buffer, &call->written_tag);
    return;
  }
  if (!call->ending) {
    return;
  }
  call->finishing = true;
  if (call->ending->last) {
    call->write_buffer = buffer_of(std::move(*call->ending->last));
    call->stream.WriteAndFinish(call->write_buffer, grpc::WriteOptions(), call->ending->status,
                                &call->finished_tag);
  } else {
    call->stream.Finish(call->ending->status, &call->finished_tag);
  }
}

void NativeServer::free_if_idle(Call* call) {
  if (call->done && call->finished && !call->reading && !call->writing) {
    calls_.erase(call->id);
    delete call;
  }
}

bool NativeServer::write(std::uint64_t id, std::string message) {
  std::lock_guard<std::mutex> lock(mutex_);
  auto found = calls_.find(id);
  if (found == calls_.end() || found->second->ending || queue_closed_) {
    return false;
  }
  found->second->pending_writes.push_back(std::move(message));
  pump(found->second);
  return true;
}

bool NativeServer::finish(std::uint64_t id, int code, const std::string& details, std::optional<std::string> last,
                          const Metadata& trailing) {
  std::lock_guard<std::mutex> lock(mutex_);
  auto found = calls_.find(id);
  if (found == calls_.end() || found->second->ending || queue_closed_) {
    return false;
  }
  Call* call = found->second;
  for (const auto& [key, value] : trailing) {
    call->context.AddTrailingMetadata(key, value);
  }
  call->ending = Call::Ending{grpc::Status(static_cast<grpc::StatusCode>(code), details), std::move(last)};
  pump(call);
  return true;
}

std::size_t NativeServer::calls_in_progress() {
  std::lock_guard<std::mutex> lock(mutex_);
  return calls_.size();
}

void NativeServer::stop(double grace_seconds) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (!running_) {
      return;
    }
    running_ = false;  // no new RequestCall, no new writes; finishes still go out during the grace period
  }
  auto deadline = std::chrono::system_clock::now() +
                  std::chrono::milliseconds(static_cast<long long>(grace_seconds * 1000));
  server_->Shutdown(deadline);  // waits for calls in progress until the deadline, then cancels them
  {
    std::lock_guard<std::mutex> lock(mutex_);
    queue_closed_ = true;  // no operation may start on a shut-down queue
  }
  queue_->Shutdown();
  io_thread_.join();  // drains the queue: every outstanding operation has completed after this
  std::lock_guard<std::mutex> lock(mutex_);
  for (auto& [id, call] : calls_) {
    delete call;
  }
  calls_.clear();
}

}  // namespace oip
