// oip_native, milestone 1 (docs/native-data-plane.md): proves the toolchain end to end. The protocol's C++
// classes come from our .proto files, gRPC C++ and protobuf from Debian, the bindings from nanobind. The one
// function here parses a ModelInferRequest in C++ so that a test can compare it with protobuf's Python parser;
// the request path itself arrives in later milestones.
#include <nanobind/nanobind.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/tuple.h>

#include <grpcpp/grpcpp.h>

#include <string>
#include <tuple>

#include "oip/v1/grpc_service.pb.h"

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
}
