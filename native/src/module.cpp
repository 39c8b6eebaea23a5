// oip_native (docs/native-data-plane.md): the native gRPC server and the batcher's queue, bound with nanobind.
// The protocol's C++ classes come from our .proto files, gRPC C++ and protobuf from Debian. summarize_request
// parses a ModelInferRequest in C++ so that a test can compare it with protobuf's Python parser.
#include <nanobind/nanobind.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/pair.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/tuple.h>
#include <nanobind/stl/vector.h>

#include <grpcpp/grpcpp.h>

#include <deque>
#include <memory>
#include <string>
#include <tuple>

#include "oip/v1/grpc_service.pb.h"
#include "request_queue.h"
#include "server.h"

namespace nb = nanobind;

namespace {

// (model_name, model_version, id, input names joined by ',', raw blob sizes joined by ',').
using RequestSummary = std::tuple<std::string, std::string, std::string, std::string, std::string>;

RequestSummary summarize_request(nb::bytes raw) {
  inference::ModelInferRequest request;
  if (!request.ParseFromArray(raw.c_str(), static_cast<int>(raw.size()))) {
    throw nb::value_error("not a valid ModelInferRequest");
  }
  std::string names;
  for (const auto& input : request.inputs()) {
    names += (names.empty() ? "" : ",") + input.name();
  }
  std::string sizes;
  for (const auto& blob : request.raw_input_contents()) {
    sizes += (sizes.empty() ? "" : ",") + std::to_string(blob.size());
  }
  return {request.model_name(), request.model_version(), request.id(), names, sizes};
}

nb::list pairs(const oip::Metadata& metadata) {
  nb::list listed;
  for (const auto& [key, value] : metadata) {
    listed.append(nb::make_tuple(nb::str(key.data(), key.size()), nb::bytes(value.data(), value.size())));
  }
  return listed;
}

// The waiting events as tuples (docs/native-data-plane.md): (0, call, method, metadata, deadline_remaining or None,
// peer, auth_properties), (1, call, message bytes), (2, call) half-closed, (3, call, cancelled),
// (4, call) a write has gone out.
nb::list take_events(oip::NativeServer& server) {
  std::deque<oip::CallEvent> events;
  {
    nb::gil_scoped_release unlocked;  // the queue's lock is brief, but never wait for it holding the GIL
    events = server.events().take();
  }
  nb::list taken;
  for (auto& event : events) {
    auto kind = static_cast<int>(event.kind);
    switch (event.kind) {
      case oip::CallEvent::Kind::kStarted:
        taken.append(nb::make_tuple(
            kind, event.call, nb::str(event.payload.data(), event.payload.size()), pairs(event.metadata),
            event.deadline_remaining < 0 ? nb::none() : nb::cast(event.deadline_remaining),
            nb::str(event.peer.data(), event.peer.size()), pairs(event.auth_properties)));
        break;
      case oip::CallEvent::Kind::kMessage:
        taken.append(nb::make_tuple(kind, event.call, nb::bytes(event.payload.data(), event.payload.size())));
        break;
      case oip::CallEvent::Kind::kHalfClosed:
      case oip::CallEvent::Kind::kWritten:
        taken.append(nb::make_tuple(kind, event.call));
        break;
      case oip::CallEvent::Kind::kDone:
        taken.append(nb::make_tuple(kind, event.call, event.cancelled));
        break;
    }
  }
  return taken;
}

}  // namespace

NB_MODULE(oip_native, module) {
  module.doc() = "The native data plane (docs/native-data-plane.md): the gRPC server and the batcher's queue.";
  module.def("grpc_version", []() { return std::string(grpc::Version()); },
             "The gRPC C++ library this module was built against.");
  module.def("summarize_request", &summarize_request, nb::arg("raw"),
             "Parse a serialized ModelInferRequest in C++: (model_name, model_version, id, input names, raw sizes).");
  nb::class_<oip::NativeServer>(
      module, "NativeServer",
      "gRPC C++ on one port; every call is delegated to Python through take_events(), write() and finish().")
      .def("__init__",
           [](oip::NativeServer* self, const std::string& address, int max_message_bytes, bool reuse_port,
              const std::string& tls_private_key, const std::string& tls_certificate,
              const std::string& tls_client_ca) {
             oip::ServerOptions options{address, max_message_bytes, reuse_port, tls_private_key, tls_certificate,
                                        tls_client_ca};
             nb::gil_scoped_release unlocked;  // binding starts gRPC's threads
             new (self) oip::NativeServer(options);
           },
           nb::arg("address"), nb::arg("max_message_bytes") = 4 << 20, nb::arg("reuse_port") = false,
           nb::arg("tls_private_key") = "", nb::arg("tls_certificate") = "", nb::arg("tls_client_ca") = "")
      .def_prop_ro("port", &oip::NativeServer::port)
      .def_prop_ro("running", &oip::NativeServer::running)
      .def_prop_ro("event_fd", [](oip::NativeServer& server) { return server.events().fd(); },
                   "Readable while events wait for take_events().")
      .def("take_events", &take_events)
      .def("read_next", &oip::NativeServer::read_next, nb::arg("call"), nb::call_guard<nb::gil_scoped_release>(),
           "Reads the call's next message (the first is read when it starts).")
      .def("write",
           [](oip::NativeServer& server, std::uint64_t call, nb::bytes message) {
             std::string copied(message.c_str(), message.size());
             nb::gil_scoped_release unlocked;
             return server.write(call, std::move(copied));
           },
           nb::arg("call"), nb::arg("message"))
      .def("finish",
           [](oip::NativeServer& server, std::uint64_t call, int code, nb::bytes details, std::optional<nb::bytes> last,
              const std::vector<std::pair<std::string, nb::bytes>>& trailing) {
             std::string message(details.c_str(), details.size());
             std::optional<std::string> copied;
             if (last) {
               copied.emplace(last->c_str(), last->size());
             }
             oip::Metadata metadata;
             for (const auto& [key, value] : trailing) {
               metadata.emplace_back(key, std::string(value.c_str(), value.size()));
             }
             nb::gil_scoped_release unlocked;
             return server.finish(call, code, message, std::move(copied), metadata);
           },
           nb::arg("call"), nb::arg("code"), nb::arg("details"), nb::arg("last").none(), nb::arg("trailing"),
           "Ends a call: status code (gRPC's number), UTF-8 details, an optional last message, trailing metadata.")
      .def("calls_in_progress", &oip::NativeServer::calls_in_progress, nb::call_guard<nb::gil_scoped_release>())
      .def("stop", &oip::NativeServer::stop, nb::arg("grace_seconds") = 0.0,
           nb::call_guard<nb::gil_scoped_release>());
  nb::class_<oip::RequestQueue>(module, "RequestQueue",
                                "The batcher's queue (server/batching/queue.py's specification), ids and keys only.")
      .def(nb::init<std::size_t, int>(), nb::arg("max_size"), nb::arg("priority_levels"))
      .def("put", &oip::RequestQueue::put, nb::arg("id"), nb::arg("priority"), nb::arg("rows"), nb::arg("merge_key"))
      .def("discard", &oip::RequestQueue::discard, nb::arg("id"), nb::arg("priority"))
      .def("take_batch", &oip::RequestQueue::take_batch, nb::arg("max_rows"), nb::arg("merge"))
      .def("queued_batch_size", &oip::RequestQueue::queued_batch_size)
      .def("__len__", &oip::RequestQueue::size);
}
