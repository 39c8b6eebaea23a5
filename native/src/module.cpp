// oip_native (docs/native-data-plane.md): the native gRPC server and the batcher's queue, bound with nanobind.
// The protocol's C++ classes come from our .proto files, gRPC C++ and protobuf from Debian. summarize_request
// parses a ModelInferRequest in C++ so that a test can compare it with protobuf's Python parser.
#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>
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
#include "response_wire.h"
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

// A batch for Python (docs/native-data-plane.md): (5, batch, version key, inputs as (name, datatype, shape,
// uint8 array of its bytes) in signature order, output names, rows, enqueued_ns, routes, request ids, tickets,
// delivered_ns) with one entry per request in rows..tickets (ticket 0: a native call, C++ answers it). The arrays are views of the batch's memory, which they keep alive.
nb::tuple batch_event(int kind, const std::shared_ptr<oip::Batch>& batch) {
  nb::list inputs;
  for (std::size_t input = 0; input < batch->spec->inputs.size(); ++input) {
    const std::string& bytes = batch->input_bytes(input);
    auto* owner = new std::shared_ptr<oip::Batch>(batch);
    nb::capsule keeps(owner, [](void* held) noexcept { delete static_cast<std::shared_ptr<oip::Batch>*>(held); });
    std::size_t size = bytes.size();
    nb::ndarray<nb::numpy, const std::uint8_t, nb::ndim<1>> view(bytes.data(), 1, &size, keeps);
    nb::list shape;
    for (auto dim : batch->shapes[input]) {
      shape.append(dim);
    }
    const auto& spec = batch->spec->inputs[input];
    inputs.append(nb::make_tuple(spec.name, spec.datatype, nb::tuple(shape), view.cast()));
  }
  nb::list outputs, rows, enqueued, routes, ids, tickets;
  for (const auto& name : batch->requests.front()->output_names) {
    outputs.append(name);
  }
  for (const auto& request : batch->requests) {
    rows.append(request->rows);
    enqueued.append(request->enqueued_ns);
    routes.append(static_cast<int>(request->route));
    const std::string& id = request->message.id();
    ids.append(nb::str(id.data(), id.size()));
    tickets.append(request->ticket);
  }
  return nb::make_tuple(kind, batch->id, batch->key, inputs, nb::tuple(outputs), rows, enqueued, routes, ids,
                        tickets, batch->delivered_ns);
}

// Python's table (server/native/fast_table.py): version tuples and model tuples, see set_fast_table's doc.
std::shared_ptr<oip::FastTable> fast_table(nb::list versions, nb::list models) {
  auto table = std::make_shared<oip::FastTable>();
  for (nb::handle entry : versions) {
    auto fields = nb::cast<nb::tuple>(entry);
    oip::VersionSpec spec;
    spec.key = nb::cast<int>(fields[0]);
    spec.model_name = nb::cast<std::string>(fields[1]);
    spec.version_text = nb::cast<std::string>(fields[2]);
    for (nb::handle input : nb::cast<nb::list>(fields[3])) {
      auto parts = nb::cast<nb::tuple>(input);
      oip::InputSpec tensor{nb::cast<std::string>(parts[0]), nb::cast<std::string>(parts[1]),
                            nb::cast<std::vector<std::int64_t>>(parts[2]), 0};
      tensor.element_bytes = oip::element_bytes(tensor.datatype);
      if (tensor.element_bytes == 0) {
        throw nb::value_error(("datatype " + tensor.datatype + " cannot take the native path").c_str());
      }
      spec.inputs.push_back(std::move(tensor));
    }
    spec.outputs = nb::cast<std::vector<std::string>>(fields[4]);
    spec.max_batch_size = nb::cast<int>(fields[5]);
    spec.max_batch_size_configured = nb::cast<bool>(fields[6]);
    spec.merge = nb::cast<bool>(fields[7]);
    spec.max_queue_size = nb::cast<std::size_t>(fields[8]);
    spec.instances = nb::cast<int>(fields[9]);
    spec.preferred_batch_sizes = nb::cast<std::vector<int>>(fields[10]);
    spec.max_queue_delay_us = nb::cast<std::int64_t>(fields[11]);
    spec.priority_levels = nb::cast<int>(fields[12]);
    spec.default_priority = nb::cast<int>(fields[13]);
    spec.default_timeout_us = nb::cast<std::int64_t>(fields[14]);
    table->versions.emplace(spec.key, std::move(spec));
  }
  for (nb::handle entry : models) {
    auto fields = nb::cast<nb::tuple>(entry);
    oip::ModelRoutes routes;
    for (nb::handle pinned : nb::cast<nb::list>(fields[1])) {
      auto pair = nb::cast<nb::tuple>(pinned);
      routes.pinned.emplace(nb::cast<std::string>(pair[0]), nb::cast<int>(pair[1]));
    }
    for (auto [layout, field] : {std::pair{&routes.primary, 2}, std::pair{&routes.fallback, 3}}) {
      for (nb::handle owned : nb::cast<nb::list>(fields[field])) {
        auto pair = nb::cast<nb::tuple>(owned);
        layout->starts.push_back(nb::cast<int>(pair[0]));
        layout->keys.push_back(nb::cast<int>(pair[1]));
      }
    }
    routes.sticky_parameter = nb::cast<std::string>(fields[4]);
    routes.sticky_metadata = nb::cast<std::string>(fields[5]);
    routes.salt_crc = nb::cast<std::uint32_t>(fields[6]);
    routes.shadow_fraction = nb::cast<double>(fields[7]);
    table->models.emplace(nb::cast<std::string>(fields[0]), std::move(routes));
  }
  return table;
}

// The waiting events as tuples (docs/native-data-plane.md): (0, call, method, metadata, deadline_remaining or None,
// peer, auth_properties, (drawn: decided, access log, tracing, shadow copy)), (1, call, message bytes, drawn), (2, call) half-closed, (3, call, cancelled),
// (4, call) a write has gone out, (5, ...) a batch (batch_event), (6, ticket, outcome, waited_ns) a Python-path
// request that never ran (0 cancelled, 1 expired, 2 stopping), (7, version key, outcome, waited_ns, request id) a
// native-path request that never ran.
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
            nb::str(event.peer.data(), event.peer.size()), pairs(event.auth_properties),
            nb::make_tuple(event.drawn.decided, event.drawn.access, event.drawn.trace, event.drawn.shadow)));
        break;
      case oip::CallEvent::Kind::kMessage:
        taken.append(nb::make_tuple(
            kind, event.call, nb::bytes(event.payload.data(), event.payload.size()),
            nb::make_tuple(event.drawn.decided, event.drawn.access, event.drawn.trace, event.drawn.shadow)));
        break;
      case oip::CallEvent::Kind::kHalfClosed:
      case oip::CallEvent::Kind::kWritten:
        taken.append(nb::make_tuple(kind, event.call));
        break;
      case oip::CallEvent::Kind::kDone:
        taken.append(nb::make_tuple(kind, event.call, event.cancelled));
        break;
      case oip::CallEvent::Kind::kTicket:
        taken.append(nb::make_tuple(kind, event.call, event.outcome, event.waited_ns));
        break;
      case oip::CallEvent::Kind::kDropped:
        taken.append(nb::make_tuple(kind, event.call, event.outcome, event.waited_ns,
                                    nb::str(event.payload.data(), event.payload.size())));
        break;
      case oip::CallEvent::Kind::kBatch:
        if (auto batch = server.batch(event.call); batch != nullptr) {
          taken.append(batch_event(kind, batch));
        }
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
  module.def(
      "encode_response",
      [](const std::string& model_name, const std::string& model_version, const std::string& id, nb::list outputs) {
        std::vector<std::string> names, datatypes, datas;
        std::vector<oip::WireTensor> tensors;
        names.reserve(nb::len(outputs));
        datatypes.reserve(nb::len(outputs));
        datas.reserve(nb::len(outputs));
        for (nb::handle entry : outputs) {
          auto fields = nb::cast<nb::tuple>(entry);
          names.push_back(nb::cast<std::string>(fields[0]));
          datatypes.push_back(nb::cast<std::string>(fields[1]));
          auto raw = nb::cast<nb::bytes>(fields[3]);
          datas.emplace_back(raw.c_str(), raw.size());
          tensors.push_back({&names.back(), &datatypes.back(), nb::cast<std::vector<std::int64_t>>(fields[2]),
                             datas.back().data(), datas.back().size()});
        }
        std::string wire = oip::encode_response(model_name, model_version, id, tensors);
        return nb::bytes(wire.data(), wire.size());
      },
      nb::arg("model_name"), nb::arg("model_version"), nb::arg("id"), nb::arg("outputs"),
      "The native path's ModelInferResponse bytes: outputs [(name, datatype, shape, raw bytes)].");
  module.def(
      "encode_stream_response",
      [](nb::bytes infer_response) {
        std::string wire = oip::encode_stream_response(std::string(infer_response.c_str(), infer_response.size()));
        return nb::bytes(wire.data(), wire.size());
      },
      nb::arg("infer_response"), "The native path's ModelStreamInferResponse bytes for a served streamed request.");
  module.def(
      "encode_stream_error",
      [](int code, const std::string& details, const std::string& model_name, const std::string& model_version,
         const std::string& id) {
        std::string wire = oip::encode_stream_error(code, details, model_name, model_version, id);
        return nb::bytes(wire.data(), wire.size());
      },
      nb::arg("code"), nb::arg("details"), nb::arg("model_name"), nb::arg("model_version"), nb::arg("id"),
      "The native path's ModelStreamInferResponse bytes for a failed streamed request.");
  module.def(
      "sticky_bucket",
      [](std::uint32_t salt_crc, nb::bytes key) {
        return oip::sticky_bucket(salt_crc, std::string(key.c_str(), key.size()));
      },
      nb::arg("salt_crc"), nb::arg("key"), "server.routing.sticky.bucket_after, as the native router computes it.");
  module.def(
      "parent_sampled", [](const std::string& traceparent) { return oip::parent_sampled(traceparent); },
      nb::arg("traceparent"), "server.tracing.sampling.parent_sampled, as the native path reads a traceparent.");
  module.def("summarize_request", &summarize_request, nb::arg("raw"),
             "Parse a serialized ModelInferRequest in C++: (model_name, model_version, id, input names, raw sizes).");
  nb::class_<oip::NativeServer>(
      module, "NativeServer",
      "gRPC C++ on one port; every call is delegated to Python through take_events(), write() and finish().")
      .def("__init__",
           [](oip::NativeServer* self, const std::string& address, int max_message_bytes, bool reuse_port,
              const std::string& tls_private_key, const std::string& tls_certificate,
              const std::string& tls_client_ca, std::size_t max_calls, std::size_t max_bytes) {
             oip::ServerOptions options{address,         max_message_bytes, reuse_port, tls_private_key,
                                        tls_certificate, tls_client_ca,     max_calls,  max_bytes};
             nb::gil_scoped_release unlocked;  // binding starts gRPC's threads
             new (self) oip::NativeServer(options);
           },
           nb::arg("address"), nb::arg("max_message_bytes") = 4 << 20, nb::arg("reuse_port") = false,
           nb::arg("tls_private_key") = "", nb::arg("tls_certificate") = "", nb::arg("tls_client_ca") = "",
           nb::arg("max_calls") = 4096, nb::arg("max_bytes") = std::size_t{1} << 30)
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
      .def("set_fast_table",
           [](oip::NativeServer& server, std::optional<nb::list> versions, std::optional<nb::list> models,
              std::optional<nb::tuple> sampling, double access_sample) {
             std::shared_ptr<oip::FastTable> table;
             if (versions && models) {
               table = fast_table(*versions, *models);
               if (sampling) {
                 table->sampling.enabled = true;
                 table->sampling.parent_based = nb::cast<bool>((*sampling)[0]);
                 table->sampling.always = nb::cast<bool>((*sampling)[1]);
                 table->sampling.root_bound = nb::cast<std::uint64_t>((*sampling)[2]);
               }
               table->access_sample = access_sample;
             }
             nb::gil_scoped_release unlocked;
             server.set_fast_table(std::move(table));
           },
           nb::arg("versions").none(), nb::arg("models").none(), nb::arg("sampling").none() = nb::none(),
           nb::arg("access_sample") = 0.0,
           "The native ModelInfer path's table, or None (every call to Python). versions: (key, model, version "
           "text, inputs [(name, datatype, shape)], outputs, max_batch_size, max_batch_size_configured, merge, "
           "max_queue_size, instances, preferred sizes, max_queue_delay_us, priority_levels, default_priority, "
           "default_timeout_us); "
           "models: (name, [(version text, key)], primary layout [(first bucket, key or -2 not ready)], fallback "
           "layout, sticky parameter or '', sticky metadata key or '', salt crc32, shadow fraction); empty layouts: "
           "Python routes requests without version. sampling: tracing's (parent_based, always, root bound), or None "
           "(tracing off); access_sample: the access log's share (0: off).")
      .def("answer",
           [](oip::NativeServer& server, std::uint64_t batch, std::size_t first, std::size_t count, nb::list outputs) {
             std::vector<oip::NativeServer::Output> parts;
             std::vector<nb::ndarray<const std::uint8_t, nb::ndim<1>, nb::c_contig, nb::device::cpu>> held;
             for (nb::handle entry : outputs) {
               auto fields = nb::cast<nb::tuple>(entry);
               auto data = nb::cast<nb::ndarray<const std::uint8_t, nb::ndim<1>, nb::c_contig, nb::device::cpu>>(
                   fields[3]);
               parts.push_back({nb::cast<std::string>(fields[0]), nb::cast<std::string>(fields[1]),
                                nb::cast<std::vector<std::int64_t>>(fields[2]),
                                reinterpret_cast<const char*>(data.data()), data.size()});
               held.push_back(std::move(data));
             }
             {
               nb::gil_scoped_release unlocked;  // encoding and sending: the arrays stay referenced by `held`
               server.answer(batch, first, count, parts);
             }
           },  // `held` drops its references here, with the GIL
           nb::arg("batch"), nb::arg("first"), nb::arg("count"), nb::arg("outputs"),
           "Answers the batch's requests [first, first + count): outputs [(name, datatype, shape, uint8 bytes)], "
           "split by rows when count > 1.")
      .def("fail",
           [](oip::NativeServer& server, std::uint64_t batch, std::size_t first, std::size_t count, int code,
              nb::bytes details) {
             std::string message(details.c_str(), details.size());
             nb::gil_scoped_release unlocked;
             server.fail(batch, first, count, code, message);
           },
           nb::arg("batch"), nb::arg("first"), nb::arg("count"), nb::arg("code"), nb::arg("details"))
      .def("release", &oip::NativeServer::release, nb::arg("batch"), nb::call_guard<nb::gil_scoped_release>(),
           "The batch is done: its instance is free; a request left unanswered fails INTERNAL.")
      .def("executed", &oip::NativeServer::executed, nb::arg("batch"), nb::call_guard<nb::gil_scoped_release>(),
           "The batch has run: its instance may take the next batch while its answers go out.")
      .def("version_pending", &oip::NativeServer::version_pending, nb::arg("key"),
           nb::call_guard<nb::gil_scoped_release>(), "Requests of the version on the native path, queued or running.")
      .def_prop_ro("native_calls", &oip::NativeServer::native_calls, "ModelInfer calls on the native path now.")
      .def("submit",
           [](oip::NativeServer& server, int key, std::uint64_t ticket, nb::list inputs, nb::list output_names,
              int rows, int priority, std::int64_t deadline_ns, bool enforce_deadline) {
             auto request = std::make_unique<oip::FastRequest>();
             request->ticket = ticket;
             request->rows = rows;
             request->priority = priority;
             request->deadline_ns = deadline_ns;
             request->enforce_deadline = enforce_deadline;
             request->output_names = nb::cast<std::vector<std::string>>(output_names);
             // Inputs as the signature lists them: Python's order is its own.
             std::vector<std::tuple<std::string, std::vector<std::int64_t>, std::string>> given;
             for (nb::handle entry : inputs) {
               auto fields = nb::cast<nb::tuple>(entry);
               auto data = nb::cast<nb::ndarray<const std::uint8_t, nb::ndim<1>, nb::c_contig, nb::device::cpu>>(
                   fields[2]);
               given.emplace_back(nb::cast<std::string>(fields[0]), nb::cast<std::vector<std::int64_t>>(fields[1]),
                                  std::string(reinterpret_cast<const char*>(data.data()), data.size()));
             }
             std::string refusal;
             int status;
             {
               nb::gil_scoped_release unlocked;
               status = server.submit_named(key, std::move(request), given, refusal);
             }
             return std::make_tuple(status, refusal);
           },
           nb::arg("key"), nb::arg("ticket"), nb::arg("inputs"), nb::arg("output_names"), nb::arg("rows"),
           nb::arg("priority"), nb::arg("deadline_ns"), nb::arg("enforce_deadline"),
           "Queues a Python-path request in the version's native batcher: inputs [(name, shape, uint8 bytes)]. "
           "(0, ''): queued; (1, message): the queue is full; (2, ''): the version is not served natively.")
      .def("discard", &oip::NativeServer::discard, nb::arg("key"), nb::arg("ticket"),
           nb::call_guard<nb::gil_scoped_release>(), "Forgets a queued ticket whose caller went away.")
      .def("admit_call",
           [](oip::NativeServer& server, std::size_t size) {
             std::size_t calls = 0, held = 0;
             int status = server.admit_call(size, calls, held);
             return std::make_tuple(status, calls, held);
           },
           nb::arg("size"), "Counts a Python-path call in against the shared limits: (0 | 1 calls | 2 bytes, calls, held).")
      .def("release_call", &oip::NativeServer::release_call, nb::arg("size"))
      .def("admit_bytes",
           [](oip::NativeServer& server, std::size_t size) {
             std::size_t held = 0;
             int status = server.admit_bytes(size, held);
             return std::make_tuple(status, held);
           },
           nb::arg("size"))
      .def("release_bytes", &oip::NativeServer::release_bytes, nb::arg("size"))
      .def("set_admitting", &oip::NativeServer::set_admitting, nb::arg("admitting"),
           "Whether ModelInfer calls may take the native path (off while draining).")
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
