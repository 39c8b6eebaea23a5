#include "server.h"

#include "response_wire.h"

#include <pthread.h>

#include <grpcpp/impl/codegen/proto_utils.h>
#include <grpcpp/support/proto_buffer_reader.h>

#include <chrono>
#include <cstdio>
#include <csignal>
#include <algorithm>
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
    std::optional<grpc::ByteBuffer> last;
  };

  // A message waiting to be written: Python's (it hears when it has gone out), or the answer to a streamed
  // request the native path served (`held`: what it counted against the stream's native budget).
  struct PendingWrite {
    std::string bytes;
    bool native = false;
    std::size_t held = 0;
  };

  std::uint64_t id = 0;
  grpc::GenericServerContext context;
  grpc::GenericServerAsyncReaderWriter stream;
  grpc::ByteBuffer read_buffer;
  grpc::ByteBuffer write_buffer;
  std::deque<PendingWrite> pending_writes;
  bool writing_native = false;     // the write going out is a native answer...
  std::size_t writing_held = 0;    // ...holding this much of the stream's budget
  std::optional<Ending> ending;
  bool reading = false;
  bool half_closed = false;
  bool writing = false;
  bool finishing = false;  // Finish (or WriteAndFinish) issued
  bool finished = false;   // ...and completed
  bool done = false;       // gRPC's done tag arrived
  // A ModelInfer call's started event waits for its message: posted only if Python is to serve it.
  bool deferred = false;
  Drawn drawn;  // what the native path drew it for (told to Python when it starts)
  // ModelStreamInfer: messages the native path can serve are taken in C++ as they are read (Python never sees
  // them) and answered on the stream; the rest go to the stream's Python handler as ever. The stream's ending
  // (Python's finish) waits until every native message has been answered and written.
  bool native_stream = false;
  std::size_t native_in_flight = 0;  // native messages not yet answered and written
  std::size_t native_held = 0;       // their request bytes, and their answers' once answered
  bool read_held = false;            // the next read waits for the native budget to free (flow control)
  Drawn message_drawn;               // what the native path drew the message it hands to Python for
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

const std::string kModelInfer = "/inference.GRPCInferenceService/ModelInfer";
const std::string kModelStreamInfer = "/inference.GRPCInferenceService/ModelStreamInfer";
// server/grpc/streaming.py's per-stream bounds (MAX_IN_FLIGHT_PER_STREAM, MAX_STREAM_BYTES), applied to the
// messages the native path serves; the Python handler bounds the stream's other messages by the same numbers.
constexpr std::size_t kStreamMaxRequests = 1024;
constexpr std::size_t kStreamMaxBytes = std::size_t{64} << 20;
// server/grpc/draining.py's SHUTTING_DOWN.
const std::string kShuttingDown = "server is shutting down; retry on another replica";

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

NativeServer::NativeServer(const ServerOptions& options)
    : max_calls_(options.max_calls), max_bytes_(options.max_bytes) {
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
  responder_thread_ = std::thread([this] { respond(); });
  // Named for top -H, perf and py-spy (at most 15 characters).
  pthread_setname_np(io_thread_.native_handle(), "oip-grpc-io");
  pthread_setname_np(responder_thread_.native_handle(), "oip-responder");
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
  const bool served = admitting_ && current_table() != nullptr;
  call->deferred = served && call->context.method() == kModelInfer;
  call->native_stream = served && call->context.method() == kModelStreamInfer;
  if (!call->deferred) {
    post_started(call, call->context.method());
  }
  call->reading = true;
  call->stream.Read(&call->read_buffer, &call->read_tag);
}

void NativeServer::post_started(Call* call, std::string method) {
  CallEvent started{CallEvent::Kind::kStarted, call->id, std::move(method)};
  started.drawn = call->drawn;
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
}

void NativeServer::on_read(Call* call, bool ok) {
  // Only this thread touches a deferred call until its started event is posted: no lock needed to decide.
  if (call->deferred && ok && serve_natively(call)) {
    return;
  }
  if (call->native_stream && ok && serve_streamed(call)) {
    return;
  }
  std::lock_guard<std::mutex> lock(mutex_);
  if (call->deferred) {  // Python serves it after all: it hears of the call now, then of its message
    call->deferred = false;
    post_started(call, call->context.method());
  }
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
  CallEvent message{CallEvent::Kind::kMessage, call->id, contents(call->read_buffer)};
  message.drawn = call->message_drawn;
  call->message_drawn = Drawn{};
  events_.post(std::move(message));
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
  if (call->read_held) {
    return true;  // the read Python asks for starts once the stream's native answers have gone out
  }
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
  std::size_t settled = 0;  // Python's writes that have gone out (or never will)
  if (call->writing_native) {
    call->writing_native = false;
    settle_native(call, call->writing_held);
  } else {
    settled = 1;
  }
  if (!ok) {  // the stream is broken: nothing more reaches the client, and Python must not wait for it
    for (const auto& pending : call->pending_writes) {
      if (pending.native) {
        settle_native(call, pending.held);
      } else {
        ++settled;
      }
    }
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
    auto& next = call->pending_writes.front();
    call->write_buffer = buffer_of(std::move(next.bytes));
    call->writing_native = next.native;
    call->writing_held = next.held;
    call->pending_writes.pop_front();
    call->writing = true;
    call->stream.Write(call->write_buffer, &call->written_tag);
    return;
  }
  if (!call->ending || call->native_in_flight > 0) {
    return;  // a stream ends once its native messages' answers have gone out too
  }
  call->finishing = true;
  if (call->ending->last) {
    call->write_buffer = std::move(*call->ending->last);
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
  found->second->pending_writes.push_back(Call::PendingWrite{std::move(message)});
  pump(found->second);
  return true;
}

bool NativeServer::finish(std::uint64_t id, int code, const std::string& details, std::optional<std::string> last,
                          const Metadata& trailing) {
  std::optional<grpc::ByteBuffer> buffer;
  if (last) {
    buffer = buffer_of(std::move(*last));
  }
  return finish_call(id, grpc::Status(static_cast<grpc::StatusCode>(code), details), std::move(buffer), trailing);
}

bool NativeServer::finish_call(std::uint64_t id, const grpc::Status& status, std::optional<grpc::ByteBuffer> last,
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
  call->ending = Call::Ending{status, std::move(last)};
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
  set_fast_table(nullptr);
  std::unordered_map<int, std::unique_ptr<VersionBatcher>> batchers;
  {
    std::lock_guard<std::mutex> lock(batchers_mutex_);
    batchers.swap(batchers_);
  }
  batchers.clear();  // each stops its scheduler, answering what is still queued UNAVAILABLE
  {
    std::lock_guard<std::mutex> lock(responder_mutex_);
    responder_stopping_ = true;  // it sends what it holds, then ends
  }
  answers_ready_.notify_one();
  responder_thread_.join();
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

// ------------------------------------------------------------------ the native ModelInfer path

std::shared_ptr<const FastTable> NativeServer::current_table() {
  std::lock_guard<std::mutex> lock(table_mutex_);
  return table_;
}

void NativeServer::set_fast_table(std::shared_ptr<const FastTable> table) {
  {
    std::lock_guard<std::mutex> lock(table_mutex_);
    table_ = table;
  }
  std::lock_guard<std::mutex> lock(batchers_mutex_);
  for (auto it = batchers_.begin(); it != batchers_.end();) {
    bool kept = table != nullptr && table->versions.count(it->first) > 0;
    if (!kept) {
      it->second->retire();  // its queued requests still run; then it ends
    }
    if (!kept && it->second->finished()) {
      it = batchers_.erase(it);
    } else {
      ++it;
    }
  }
}

VersionBatcher* NativeServer::batcher_for(const VersionSpec& spec) {
  std::lock_guard<std::mutex> lock(batchers_mutex_);
  auto found = batchers_.find(spec.key);
  if (found == batchers_.end()) {
    // Read under batchers_mutex_: set_fast_table publishes a table before it retires batchers under this lock, so
    // a batcher created here is either in the table this sees or retired right after.
    auto table = current_table();
    if (table == nullptr || table->versions.count(spec.key) == 0) {
      return nullptr;  // a spec from an older table, of a version no longer served natively
    }
    found = batchers_
                .emplace(spec.key, std::make_unique<VersionBatcher>(
                                       spec, [this](std::shared_ptr<Batch> batch) { deliver(std::move(batch)); },
                                       [this](std::uint64_t call) { return alive(call); },
                                       [this](const FastRequest& request, VersionBatcher::Outcome outcome,
                                              std::int64_t waited_ns) { dropped(request, outcome, waited_ns); }))
                .first;
  }
  return found->second.get();
}

void NativeServer::dropped(const FastRequest& request, VersionBatcher::Outcome outcome, std::int64_t waited_ns) {
  if (request.ticket != 0) {  // Python answers its own requests
    CallEvent event{CallEvent::Kind::kTicket, request.ticket};
    event.outcome = static_cast<int>(outcome);
    event.waited_ns = waited_ns;
    events_.post(std::move(event));
    return;
  }
  // Python records the failure (statistics, the failure log) as it does for its own requests.
  CallEvent event{CallEvent::Kind::kDropped, static_cast<std::uint64_t>(request.spec->key)};
  event.outcome = static_cast<int>(outcome);
  event.waited_ns = waited_ns;
  event.payload = request.message.id();
  events_.post(std::move(event));
  grpc::Status status(grpc::StatusCode::CANCELLED, "cancelled while queued");
  if (outcome == VersionBatcher::Outcome::kStopping) {
    status = grpc::Status(grpc::StatusCode::UNAVAILABLE, kShuttingDown);
  } else if (outcome == VersionBatcher::Outcome::kExpired) {
    // server/native/shared_queue.py's words for the Python path's requests.
    char waited[32];
    std::snprintf(waited, sizeof(waited), "%.1f", static_cast<double>(waited_ns) / 1e6);
    status = grpc::Status(grpc::StatusCode::DEADLINE_EXCEEDED,
                          "request to model " + request.spec->model_name + ":" + request.spec->version_text +
                              " timed out after waiting " + waited + " ms in the queue; it was not executed");
  }
  finish_native(request, status, std::nullopt);
}

int NativeServer::submit(int key, std::unique_ptr<FastRequest> request, std::string& refusal) {
  auto table = current_table();
  if (table == nullptr) {
    return 2;
  }
  auto found = table->versions.find(key);
  if (found == table->versions.end() || found->second.inputs.size() != request->owned.size()) {
    return 2;
  }
  request->spec = &found->second;
  request->table = table;
  request->layout = layout_of(found->second, *request);
  VersionBatcher* batcher = batcher_for(found->second);
  if (batcher == nullptr) {
    return 2;
  }
  if (batcher->enqueue(std::move(request))) {
    return 0;
  }
  if (batcher->retired()) {
    return 2;
  }
  refusal = batcher->full_message();
  return 1;
}

int NativeServer::submit_named(int key, std::unique_ptr<FastRequest> request,
                               std::vector<std::tuple<std::string, std::vector<std::int64_t>, std::string>>& inputs,
                               std::string& refusal) {
  auto table = current_table();
  if (table == nullptr) {
    return 2;
  }
  auto found = table->versions.find(key);
  if (found == table->versions.end() || found->second.inputs.size() != inputs.size()) {
    return 2;
  }
  for (const auto& spec : found->second.inputs) {
    auto given = std::find_if(inputs.begin(), inputs.end(),
                              [&](const auto& input) { return std::get<0>(input) == spec.name; });
    if (given == inputs.end()) {
      return 2;
    }
    request->shapes.push_back(std::get<1>(*given));
    request->owned.push_back(std::move(std::get<2>(*given)));
  }
  return submit(key, std::move(request), refusal);
}

bool NativeServer::discard(int key, std::uint64_t ticket) {
  std::lock_guard<std::mutex> lock(batchers_mutex_);
  auto found = batchers_.find(key);
  return found != batchers_.end() && found->second->discard(ticket);
}

std::unique_ptr<FastRequest> NativeServer::parse_admitted(Call* call, bool streamed) {
  auto table = current_table();
  auto request = std::make_unique<FastRequest>();
  grpc::ProtoBufferReader reader(&call->read_buffer);
  const auto& client_metadata = call->context.client_metadata();
  auto metadata = [&client_metadata](const std::string& key, std::string& value) {
    auto first = client_metadata.lower_bound(grpc::string_ref(key));  // the first entry, as the Python router
    if (first == client_metadata.end() || first->first != grpc::string_ref(key)) {
      return false;
    }
    value.assign(first->second.data(), first->second.size());
    return true;
  };
  // gRPC's deadline on the monotonic clock. A stream's deadline is the stream's, not its requests' (the Python
  // path gives streamed requests none either).
  std::int64_t transport_deadline_ns = -1;
  const auto deadline = call->context.deadline();
  if (!streamed && deadline != std::chrono::system_clock::time_point::max()) {
    transport_deadline_ns = monotonic_ns() + std::chrono::duration_cast<std::chrono::nanoseconds>(
                                                 deadline - std::chrono::system_clock::now()).count();
  }
  if (!request->message.ParseFromZeroCopyStream(&reader) ||
      !admit(table, *request, metadata, transport_deadline_ns)) {
    (streamed ? call->message_drawn : call->drawn) = request->drawn;
    return nullptr;  // Python decodes it again and says what is wrong, or serves what the native path does not
  }
  request->call = call->id;
  request->streamed = streamed;
  request->bytes = call->read_buffer.Length();
  return request;
}

bool NativeServer::serve_natively(Call* call) {
  auto request = parse_admitted(call, false);
  if (request == nullptr) {
    return false;
  }
  const std::size_t size = request->bytes;
  const std::uint64_t call_id = request->call;
  // From here the call is the native path's, unless its version turns out to be leaving the table (then Python
  // routes it anew). Its state changes only at the end: an answer sent meanwhile completes on this (the I/O)
  // thread, after this returns, so nothing can free the call before then.
  auto taken = [this, call] {
    std::lock_guard<std::mutex> lock(mutex_);
    call->reading = false;
    call->deferred = false;
    call->read_buffer.Clear();
    return true;
  };
  // CallLimits' bounds and words, over both paths' calls.
  std::size_t calls = 0, held = 0;
  int refused = admit_call(size, calls, held);
  if (refused != 0) {
    std::string message =
        refused == 1
            ? "server is handling " + std::to_string(calls) +
                  " inference calls, its limit (--max-concurrent-rpcs, SERVER_GRPC_MAX_CONCURRENT_RPCS); retry with "
                  "backoff"
            : too_many_bytes(held, size);
    finish_call(call_id, grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED, message), std::nullopt, {});
    return taken();
  }
  VersionBatcher* batcher = batcher_for(*request->spec);
  native_calls_.fetch_add(1);
  if (batcher == nullptr || !batcher->enqueue(std::move(request))) {
    if (batcher == nullptr || batcher->retired()) {
      // Admitted against a table that no longer serves its version (a reload or unload raced it): Python takes
      // it, with the current state, and draws its shares itself (nothing was drawn for it here).
      native_calls_.fetch_sub(1);
      release_call(size);
      call->drawn = Drawn{};
      return false;
    }
    // enqueue keeps the request only when it succeeds; a refused one is still ours.
    FastRequest refused;
    refused.call = call_id;
    refused.bytes = size;
    finish_native(refused, grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED, batcher->full_message()),
                  std::nullopt);
  }
  return taken();
}

bool NativeServer::serve_streamed(Call* call) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (call->ending || call->finishing || !admitting_) {
      return false;  // Python ends the stream, or refuses what it reads while draining
    }
  }
  auto request = parse_admitted(call, true);
  if (request == nullptr) {
    return false;
  }
  VersionBatcher* batcher = batcher_for(*request->spec);
  if (batcher == nullptr || batcher->retired()) {
    call->message_drawn = Drawn{};  // its version is leaving the table: Python routes it anew, and draws
    return false;
  }
  const std::size_t size = request->bytes;
  std::size_t held = 0;
  // Past the server's byte bound, the request alone is refused (in CallLimits' words) and the stream goes on.
  const bool admitted = admit_bytes(size, held) == 0;
  native_calls_.fetch_add(1);
  FastRequest echo;  // what a refusal answers with
  echo.call = request->call;
  echo.streamed = true;
  echo.bytes = admitted ? size : 0;  // a refused request holds no bytes
  echo.message.set_model_name(request->message.model_name());
  echo.message.set_model_version(request->message.model_version());
  echo.message.set_id(request->message.id());
  {
    // Counted before the batcher has it: its answer may come back at once.
    std::lock_guard<std::mutex> lock(mutex_);
    call->read_buffer.Clear();
    call->native_in_flight += 1;
    call->native_held += echo.bytes;
    read_on(call);
  }
  if (!admitted) {
    finish_native(echo, grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED, too_many_bytes(held, size)), std::nullopt);
    return true;
  }
  if (!batcher->enqueue(std::move(request))) {
    // The stream has read on already, so this message can no longer go to Python. Retired since the check above
    // (a reload within these microseconds): the client may retry it; else the queue is full.
    finish_native(echo,
                  batcher->retired()
                      ? grpc::Status(grpc::StatusCode::UNAVAILABLE,
                                     "model " + echo.message.model_name() +
                                         " changed while this request was being queued; retry")
                      : grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED, batcher->full_message()),
                  std::nullopt);
  }
  return true;
}

void NativeServer::read_on(Call* call) {
  // The message Python asked for has not reached it yet: read the next one, unless the native messages
  // in flight fill the stream's budget (then reading resumes as their answers go out: settle_native).
  if (call->half_closed || call->finishing || call->ending || queue_closed_) {
    call->reading = false;
    return;
  }
  if (call->native_in_flight >= kStreamMaxRequests || call->native_held >= kStreamMaxBytes) {
    call->reading = false;
    call->read_held = true;
    return;
  }
  call->reading = true;
  call->stream.Read(&call->read_buffer, &call->read_tag);
}

void NativeServer::settle_native(Call* call, std::size_t held) {
  call->native_in_flight -= 1;
  call->native_held -= held;
  if (call->read_held && call->native_in_flight < kStreamMaxRequests && call->native_held < kStreamMaxBytes) {
    call->read_held = false;
    read_on(call);
  }
}

void NativeServer::answer_streamed(const FastRequest& request, const grpc::Status& status,
                                   std::optional<std::string> wire) {
  std::string message =
      status.ok() && wire ? encode_stream_response(*wire)
                          : encode_stream_error(static_cast<int>(status.error_code()), status.error_message(),
                                                request.message.model_name(), request.message.model_version(),
                                                request.message.id());
  native_calls_.fetch_sub(1);
  release_bytes(request.bytes);  // the server's bound counts a request until it is answered, as Python's
  std::lock_guard<std::mutex> lock(mutex_);
  auto found = calls_.find(request.call);
  if (found == calls_.end()) {
    return;  // cannot happen: a stream is not freed while native messages are in flight
  }
  Call* call = found->second;
  const std::size_t held = request.bytes + message.size();
  call->native_held += message.size();
  if (call->done || queue_closed_) {  // the client has gone: nothing to write
    settle_native(call, held);
    pump(call);
    free_if_idle(call);
    return;
  }
  call->pending_writes.push_back(Call::PendingWrite{std::move(message), true, held});
  pump(call);
}

bool NativeServer::alive(std::uint64_t id) {
  std::lock_guard<std::mutex> lock(mutex_);
  auto found = calls_.find(id);
  return found != calls_.end() && !found->second->done;
}

void NativeServer::finish_native(const FastRequest& request, const grpc::Status& status,
                                 std::optional<std::string> wire) {
  if (request.streamed) {
    answer_streamed(request, status, std::move(wire));
    return;
  }
  std::optional<grpc::ByteBuffer> last;
  if (wire) {
    last = buffer_of(std::move(*wire));
  }
  finish_call(request.call, status, std::move(last), {});
  native_calls_.fetch_sub(1);
  release_call(request.bytes);
}

std::string NativeServer::too_many_bytes(std::size_t held, std::size_t size) const {
  // server.grpc.overload.CallLimits' words.
  return "server is holding " + std::to_string(held) + " bytes of requests and this " + std::to_string(size) +
         "-byte request would pass its limit of " + std::to_string(max_bytes_) +
         " (--max-inflight-bytes, SERVER_GRPC_MAX_INFLIGHT_BYTES); retry";
}

int NativeServer::admit_call(std::size_t size, std::size_t& calls, std::size_t& held) {
  // Optimistic: count in, then back out if that passed a limit (two paths admit concurrently, without a lock).
  calls = limited_calls_.fetch_add(1);
  if (calls >= max_calls_) {
    limited_calls_.fetch_sub(1);
    return 1;
  }
  held = held_bytes_.fetch_add(size);
  if (held + size > max_bytes_) {
    held_bytes_.fetch_sub(size);
    limited_calls_.fetch_sub(1);
    return 2;
  }
  return 0;
}

void NativeServer::release_call(std::size_t size) {
  limited_calls_.fetch_sub(1);
  held_bytes_.fetch_sub(size);
}

int NativeServer::admit_bytes(std::size_t size, std::size_t& held) {
  held = held_bytes_.fetch_add(size);
  if (held + size > max_bytes_) {
    held_bytes_.fetch_sub(size);
    return 2;
  }
  return 0;
}

void NativeServer::deliver(std::shared_ptr<Batch> batch) {
  {
    std::lock_guard<std::mutex> lock(batches_mutex_);
    batch->id = next_batch_++;
    batch->answered.assign(batch->requests.size(), false);
    batch->delivered_ns = monotonic_ns();
    batches_[batch->id] = batch;
  }
  events_.post(CallEvent{CallEvent::Kind::kBatch, batch->id});
}

std::shared_ptr<Batch> NativeServer::batch(std::uint64_t id) {
  std::lock_guard<std::mutex> lock(batches_mutex_);
  auto found = batches_.find(id);
  return found == batches_.end() ? nullptr : found->second;
}

namespace {

std::int64_t rows_of(const std::vector<std::int64_t>& shape) { return shape.empty() ? 1 : shape[0]; }

}  // namespace

void NativeServer::answer(std::uint64_t id, std::size_t first, std::size_t count,
                          const std::vector<Output>& outputs) {
  auto found = batch(id);
  if (!found || first + count > found->requests.size()) {
    return;
  }
  // Copied (the arrays are Python's, and Python moves on at once); the responder thread encodes and sends, so the
  // event loop is free to start the next batch while these answers go out.
  auto job = std::make_unique<AnswerJob>();
  job->batch = found;
  job->first = first;
  job->count = count;
  for (const auto& output : outputs) {
    job->outputs.push_back(OwnedOutput{output.name, output.datatype, output.shape, std::string(output.data, output.bytes)});
  }
  for (std::size_t index = first; index < first + count; ++index) {
    found->answered[index] = true;
  }
  {
    std::lock_guard<std::mutex> lock(responder_mutex_);
    answers_.push_back(std::move(job));
  }
  answers_ready_.notify_one();
}

void NativeServer::respond() {
  std::unique_lock<std::mutex> lock(responder_mutex_);
  while (true) {
    answers_ready_.wait(lock, [this] { return !answers_.empty() || responder_stopping_; });
    if (answers_.empty()) {
      return;  // stopping, and nothing left to send
    }
    auto job = std::move(answers_.front());
    answers_.pop_front();
    lock.unlock();
    send(*job);
    lock.lock();
  }
}

void NativeServer::send(const AnswerJob& job) {
  const Batch& answered = *job.batch;
  const auto& outputs = job.outputs;
  const bool split = job.count > 1;
  std::vector<std::size_t> offsets(outputs.size(), 0);
  for (std::size_t index = job.first; index < job.first + job.count; ++index) {
    const FastRequest& request = *answered.requests[index];
    if (request.ticket != 0) {  // Python's own request: it took its share of the outputs itself
      for (std::size_t output = 0; output < outputs.size(); ++output) {
        offsets[output] += outputs[output].data.size() / static_cast<std::size_t>(rows_of(outputs[output].shape)) *
                           static_cast<std::size_t>(request.rows);
      }
      continue;
    }
    std::vector<WireTensor> tensors;
    tensors.reserve(outputs.size());
    for (std::size_t output = 0; output < outputs.size(); ++output) {
      const OwnedOutput& whole = outputs[output];
      WireTensor tensor{&whole.name, &whole.datatype, whole.shape, whole.data.data() + offsets[output],
                        whole.data.size()};
      if (split) {
        tensor.shape[0] = request.rows;
        tensor.bytes = whole.data.size() / static_cast<std::size_t>(rows_of(whole.shape)) *
                       static_cast<std::size_t>(request.rows);
      }
      offsets[output] += tensor.bytes;
      tensors.push_back(std::move(tensor));
    }
    std::string wire = encode_response(request.spec->model_name, request.spec->version_text, request.message.id(),
                                       tensors);
    finish_native(request, grpc::Status::OK, std::move(wire));
  }
}

void NativeServer::fail(std::uint64_t id, std::size_t first, std::size_t count, int code,
                        const std::string& details) {
  auto found = batch(id);
  if (!found || first + count > found->requests.size()) {
    return;
  }
  for (std::size_t index = first; index < first + count; ++index) {
    if (!found->answered[index]) {
      found->answered[index] = true;
      if (found->requests[index]->ticket != 0) {
        continue;  // Python fails its own requests
      }
      finish_native(*found->requests[index], grpc::Status(static_cast<grpc::StatusCode>(code), details),
                    std::nullopt);
    }
  }
}

void NativeServer::release(std::uint64_t id) {
  std::shared_ptr<Batch> released;
  {
    std::lock_guard<std::mutex> lock(batches_mutex_);
    auto found = batches_.find(id);
    if (found == batches_.end()) {
      return;
    }
    released = std::move(found->second);
    batches_.erase(found);
  }
  for (std::size_t index = 0; index < released->requests.size(); ++index) {
    if (!released->answered[index] && released->requests[index]->ticket == 0) {
      finish_native(*released->requests[index],
                    grpc::Status(grpc::StatusCode::INTERNAL, "the batch ended without an answer for this request"),
                    std::nullopt);
    }
  }
  std::lock_guard<std::mutex> lock(batchers_mutex_);
  auto batcher = batchers_.find(released->key);
  if (batcher != batchers_.end()) {
    if (!released->executed) {
      batcher->second->executed();
    }
    batcher->second->released(released->requests.size());
  }
}

void NativeServer::executed(std::uint64_t id) {
  auto found = batch(id);
  if (!found || found->executed) {
    return;
  }
  found->executed = true;
  std::lock_guard<std::mutex> lock(batchers_mutex_);
  auto batcher = batchers_.find(found->key);
  if (batcher != batchers_.end()) {
    batcher->second->executed();
  }
}

std::size_t NativeServer::version_pending(int key) {
  std::lock_guard<std::mutex> lock(batchers_mutex_);
  auto found = batchers_.find(key);
  return found == batchers_.end() ? 0 : found->second->pending();
}

}  // namespace oip
