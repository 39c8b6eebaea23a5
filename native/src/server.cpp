#include "server.h"

#include <pthread.h>

#include <chrono>
#include <csignal>
#include <stdexcept>

namespace oip {
namespace {

// One ServerLive call: requested, then answered, then freed. Its address is its completion-queue tag.
struct LiveCall {
  explicit LiveCall(InferenceService& service, grpc::ServerCompletionQueue& queue)
      : responder(&context) {
    service.RequestServerLive(&context, &request, &responder, &queue, &queue, this);
  }
  grpc::ServerContext context;
  inference::ServerLiveRequest request;
  grpc::ServerAsyncResponseWriter<inference::ServerLiveResponse> responder;
  bool answered = false;
};

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

}  // namespace

NativeServer::NativeServer(const std::string& address) {
  SignalsBlocked during_start;
  grpc::ServerBuilder builder;
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);  // gRPC turns it on by default
  builder.AddListeningPort(address, grpc::InsecureServerCredentials(), &port_);
  builder.RegisterService(&service_);
  queue_ = builder.AddCompletionQueue();
  server_ = builder.BuildAndStart();
  if (!server_ || port_ == 0) {
    throw std::runtime_error("could not bind gRPC to " + address);
  }
  running_ = true;
  new LiveCall(service_, *queue_);
  io_thread_ = std::thread([this] { serve(); });
}

NativeServer::~NativeServer() { stop(0.0); }

void NativeServer::serve() {
  void* tag = nullptr;
  bool ok = false;
  while (queue_->Next(&tag, &ok)) {
    auto* call = static_cast<LiveCall*>(tag);
    if (call->answered || !ok) {  // finished, or never started because the server is shutting down
      delete call;
      continue;
    }
    new LiveCall(service_, *queue_);  // the next ServerLive, before this one is answered
    inference::ServerLiveResponse response;
    response.set_live(true);
    call->answered = true;
    call->responder.Finish(response, grpc::Status::OK, call);
  }
}

void NativeServer::stop(double grace_seconds) {
  if (!running_) {
    return;
  }
  running_ = false;
  auto deadline = std::chrono::system_clock::now() +
                  std::chrono::milliseconds(static_cast<long long>(grace_seconds * 1000));
  server_->Shutdown(deadline);
  queue_->Shutdown();  // after the server: no new call can be requested on a shut-down queue
  io_thread_.join();   // drains the queue, freeing every call left
}

}  // namespace oip
