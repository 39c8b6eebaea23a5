// The native gRPC server's lifecycle (docs/native-data-plane.md, milestone 2 groundwork): bind, serve on a
// completion queue from one I/O thread, stop. It answers ServerLive itself; every other RPC is UNIMPLEMENTED until
// later milestones route them (ModelInfer natively, the rest to Python as bytes).
#pragma once

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>
#include <thread>

#include "oip/v1/grpc_service.grpc.pb.h"

namespace oip {

// ServerLive on the completion queue; the other RPCs keep grpc::Service's default, which answers UNIMPLEMENTED
// (a fully asynchronous service would leave unrequested methods hanging until the client's deadline).
using InferenceService =
    inference::GRPCInferenceService::WithAsyncMethod_ServerLive<inference::GRPCInferenceService::Service>;

class NativeServer {
 public:
  // Binds `address` ("host:port", port 0 = any free one) without SO_REUSEPORT, so a port another server holds is
  // an error rather than silently shared; throws std::runtime_error when it cannot bind.
  explicit NativeServer(const std::string& address);
  ~NativeServer();
  NativeServer(const NativeServer&) = delete;
  NativeServer& operator=(const NativeServer&) = delete;

  int port() const { return port_; }
  bool running() const { return running_; }
  // Stops taking calls, gives those in progress `grace_seconds`, then joins the I/O thread. Idempotent.
  void stop(double grace_seconds);

 private:
  void serve();

  InferenceService service_;
  std::unique_ptr<grpc::ServerCompletionQueue> queue_;
  std::unique_ptr<grpc::Server> server_;
  std::thread io_thread_;
  int port_ = 0;
  bool running_ = false;
};

}  // namespace oip
