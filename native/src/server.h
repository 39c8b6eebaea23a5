// The native gRPC server (docs/native-data-plane.md): one port, every RPC taken by gRPC C++ on a
// completion queue served by one I/O thread. Each call is delegated to Python as bytes: Python takes CallEvents
// (started, message, half-closed, done) from an EventQueue, asks for further messages with read_next(), and
// answers with write() and finish(). The I/O
// thread never takes the GIL. Plain ModelInfer calls are answered in C++ instead (fast_path.h, batcher.h): Python
// runs their batches, once per batch, and a responder thread sends the answers.
#pragma once

#include <grpcpp/generic/async_generic_service.h>
#include <grpcpp/grpcpp.h>

#include <atomic>
#include <condition_variable>
#include <deque>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <tuple>
#include <unordered_map>

#include "batcher.h"
#include "events.h"
#include "fast_path.h"

namespace oip {

struct ServerOptions {
  std::string address;             // "host:port"; port 0 picks a free one
  int max_message_bytes = 4 << 20; // both directions, like grpc.max_{receive,send}_message_length
  bool reuse_port = false;         // SO_REUSEPORT only when several processes share the port on purpose
  // PEM; TLS when both are set, mutual TLS (client certificates required) when tls_client_ca is set too.
  std::string tls_private_key;
  std::string tls_certificate;
  std::string tls_client_ca;
  // The native path's own bounds (CallLimits' numbers; each path counts its own calls).
  std::size_t max_calls = 4096;
  std::size_t max_bytes = std::size_t{1} << 30;
};

struct Call;

struct OwnedOutput {
  std::string name;
  std::string datatype;
  std::vector<std::int64_t> shape;
  std::string data;
};

// A batch's outputs for its requests [first, first + count), waiting for the responder thread.
struct AnswerJob {
  std::shared_ptr<Batch> batch;
  std::size_t first = 0;
  std::size_t count = 0;
  std::vector<OwnedOutput> outputs;
};

class NativeServer {
 public:
  // Binds and starts serving; throws std::runtime_error when it cannot bind (a port in use is an error: no
  // SO_REUSEPORT unless asked).
  explicit NativeServer(const ServerOptions& options);
  ~NativeServer();
  NativeServer(const NativeServer&) = delete;
  NativeServer& operator=(const NativeServer&) = delete;

  int port() const { return port_; }
  bool running() const { return running_; }
  EventQueue& events() { return events_; }

  // Reads the call's next message (a kMessage event, or kHalfClosed at the end). The first is read when the call
  // starts; each further one only when Python asks, so a handler that stops reading holds the client back
  // through HTTP/2 flow control. False when the call is gone, finishing, or already reading.
  bool read_next(std::uint64_t call);
  // Sends one message on a call (queued behind earlier ones). False when the call is gone or finishing.
  bool write(std::uint64_t call, std::string message);
  // Ends a call with a status, after the messages written so far and then `last` if given. False when the call
  // is gone or already finishing. Status codes are gRPC's numbers.
  bool finish(std::uint64_t call, int code, const std::string& details, std::optional<std::string> last,
              const Metadata& trailing);
  // Stops taking calls, gives those in progress `grace_seconds` to be finished, cancels the rest, joins the I/O
  // thread and frees every call. Idempotent. Python must keep answering while this waits (call it without the
  // GIL, off the event loop's thread).
  void stop(double grace_seconds);

  std::size_t calls_in_progress();

  // ModelInfer on the native path (fast_path.h): Python publishes the table (nullptr: every call to Python).
  void set_fast_table(std::shared_ptr<const FastTable> table);
  // A delivered batch's requests [first, first + count) answered with `outputs` (split by rows when count > 1),
  // or failed with a status. Each request is answered once; release() frees the batch and its instance, failing
  // any request left unanswered.
  struct Output {
    std::string name;
    std::string datatype;
    std::vector<std::int64_t> shape;
    const char* data;
    std::size_t bytes;
  };
  void answer(std::uint64_t batch, std::size_t first, std::size_t count, const std::vector<Output>& outputs);
  void fail(std::uint64_t batch, std::size_t first, std::size_t count, int code, const std::string& details);
  void release(std::uint64_t batch);
  // The batch's execution is over (answers may still be on their way): its instance takes the next batch.
  void executed(std::uint64_t batch);
  std::shared_ptr<Batch> batch(std::uint64_t id);
  std::size_t version_pending(int key);
  // A request the Python path routed and validated, queued in the version's native batcher so that both paths
  // share one queue and its instances. 0: queued; 1: the queue is full (`refusal` says so); 2: the version is not
  // served natively (use the Python batcher).
  int submit(int key, std::unique_ptr<FastRequest> request, std::string& refusal);
  // submit() with the inputs by name, in any order: (name, shape, bytes).
  int submit_named(int key, std::unique_ptr<FastRequest> request,
                   std::vector<std::tuple<std::string, std::vector<std::int64_t>, std::string>>& inputs,
                   std::string& refusal);
  bool discard(int key, std::uint64_t ticket);
  // Whether ModelInfer calls may take the native path (false while draining: Python refuses them).
  void set_admitting(bool admitting) { admitting_ = admitting; }
  std::size_t native_calls() const { return native_calls_.load(); }
  // The inference calls and request bytes of both paths, against one pair of limits (CallLimits' numbers): the
  // native path counts its calls here, and Python's CallLimits counts the calls it serves here too. Returns 0 when
  // admitted, 1 past max_calls, 2 past max_bytes; `calls` and `held` are the counts it saw.
  int admit_call(std::size_t size, std::size_t& calls, std::size_t& held);
  void release_call(std::size_t size);
  std::string too_many_bytes(std::size_t held, std::size_t size) const;  // the refusal past max_bytes
  int admit_bytes(std::size_t size, std::size_t& held);  // a streamed request: bytes only
  void release_bytes(std::size_t size) { held_bytes_.fetch_sub(size); }

 private:
  friend struct Call;
  void serve();
  void request_next_call();
  void on_started(Call* call, bool ok);
  void on_read(Call* call, bool ok);
  void on_written(Call* call, bool ok);
  void on_finished(Call* call);
  void on_done(Call* call);
  void pump(Call* call);  // with mutex_ held: start the next write, or the finish once writes are out
  void free_if_idle(Call* call);
  bool serve_natively(Call* call);
  // A ModelInfer(/ModelStreamInfer message)'s request when the native path takes it (nullptr: Python's).
  std::unique_ptr<FastRequest> parse_admitted(Call* call, bool streamed);
  // A ModelStreamInfer message just read: true when the native path took it (it answers on the stream).
  bool serve_streamed(Call* call);
  void read_on(Call* call);  // with mutex_ held: the stream's next read, unless its native budget is full
  void settle_native(Call* call, std::size_t held);  // with mutex_ held: a native answer has gone out (or never will)
  void answer_streamed(const FastRequest& request, const grpc::Status& status, std::optional<std::string> wire);
  void dropped(const FastRequest& request, VersionBatcher::Outcome outcome, std::int64_t waited_ns);  // a ModelInfer call's first message: true when the native path took it
  void post_started(Call* call, std::string method);
  bool finish_call(std::uint64_t call, const grpc::Status& status, std::optional<grpc::ByteBuffer> last,
                   const Metadata& trailing);
  // Answers a native-path request: finishes its call, or writes its answer on its stream (wire: the served
  // ModelInferResponse; nothing for a failure).
  void finish_native(const FastRequest& request, const grpc::Status& status, std::optional<std::string> wire);
  void deliver(std::shared_ptr<Batch> batch);
  void respond();  // the responder thread: encodes and sends the answers of executed batches
  void send(const AnswerJob& job);
  bool alive(std::uint64_t call);
  // The version's batcher (created on first use); nullptr when the current table no longer serves it.
  VersionBatcher* batcher_for(const VersionSpec& spec);
  std::shared_ptr<const FastTable> current_table();

  grpc::AsyncGenericService service_;
  std::unique_ptr<grpc::ServerCompletionQueue> queue_;
  std::unique_ptr<grpc::Server> server_;
  std::thread io_thread_;
  EventQueue events_;
  std::mutex mutex_;  // guards calls_ and every Call's state
  std::unordered_map<std::uint64_t, Call*> calls_;
  std::uint64_t next_id_ = 1;
  int port_ = 0;
  bool running_ = false;
  bool queue_closed_ = false;

  std::size_t max_calls_;
  std::size_t max_bytes_;
  std::atomic<bool> admitting_{true};
  std::atomic<std::size_t> native_calls_{0};  // the native path's calls (the drain waits for them)
  std::atomic<std::size_t> limited_calls_{0};  // both paths' calls and bytes, for the limits
  std::atomic<std::size_t> held_bytes_{0};
  std::mutex table_mutex_;
  std::shared_ptr<const FastTable> table_;
  std::mutex batchers_mutex_;
  std::unordered_map<int, std::unique_ptr<VersionBatcher>> batchers_;
  std::mutex responder_mutex_;
  std::condition_variable answers_ready_;
  std::deque<std::unique_ptr<AnswerJob>> answers_;
  bool responder_stopping_ = false;
  std::thread responder_thread_;
  std::mutex batches_mutex_;
  std::unordered_map<std::uint64_t, std::shared_ptr<Batch>> batches_;
  std::uint64_t next_batch_ = 1;
};

}  // namespace oip
