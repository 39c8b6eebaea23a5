// oip_native (docs/native-data-plane.md). Milestone 1 proves the toolchain end to end; NativeServer is the
// lifecycle the request path will live in. The protocol's C++
// classes come from our .proto files, gRPC C++ and protobuf from Debian, the bindings from nanobind. The one
// function here parses a ModelInferRequest in C++ so that a test can compare it with protobuf's Python parser;
// the request path itself arrives in later milestones.
#include <nanobind/nanobind.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/tuple.h>
#include <nanobind/stl/vector.h>

#include <grpcpp/grpcpp.h>

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

}  // namespace

NB_MODULE(oip_native, module) {
  module.doc() = "The native data plane (docs/native-data-plane.md); milestone 1: the toolchain.";
  module.def("grpc_version", []() { return std::string(grpc::Version()); },
             "The gRPC C++ library this module was built against.");
  module.def("summarize_request", &summarize_request, nb::arg("raw"),
             "Parse a serialized ModelInferRequest in C++: (model_name, model_version, id, input names, raw sizes).");
  // Nothing here holds the GIL while it waits: binding starts gRPC's threads, stopping joins the I/O thread.
  nb::class_<oip::NativeServer>(module, "NativeServer",
                                "The native gRPC server's lifecycle; answers ServerLive (milestone 2 groundwork).")
      .def(nb::init<const std::string&>(), nb::arg("address"), nb::call_guard<nb::gil_scoped_release>())
      .def_prop_ro("port", &oip::NativeServer::port)
      .def_prop_ro("running", &oip::NativeServer::running)
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
