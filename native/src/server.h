// The native gRPC server (docs/native-data-plane.md, milestone 2): one port, every RPC taken by gRPC C++ on a
// completion queue served by one I/O thread. Each call is delegated to Python as bytes: Python takes CallEvents
// (started, message, half-closed, done) from an EventQueue, asks for further messages with read_next(), and
// answers with write() and finish(). The I/O
// thread never takes the GIL. Later milestones answer ModelInfer in C++ and cross into Python once per batch.
#pragma once

#include <grpcpp/generic/async_generic_service.h>
#include <grpcpp/grpcpp.h>

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>

#include "events.h"

namespace oip {

struct ServerOptions {
  std::string address;             // "host:port"; port 0 picks a free one
  int max_message_bytes = 4 << 20; // both directions, like grpc.max_{receive,send}_message_length
  bool reuse_port = false;         // SO_REUSEPORT only when several processes share the port on purpose
  // PEM; TLS when both are set, mutual TLS (client certificates required) when tls_client_ca is set too.
  std::string tls_private_key;
  std::string tls_certificate;
  std::string tls_client_ca;
};

struct Call;

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
};

}  // namespace oip
