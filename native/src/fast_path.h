// ModelInfer answered in C++ (docs/native-data-plane.md): which requests may take the native path,
// and their decoding and response encoding. Python publishes a FastTable (data, never callbacks) describing every
// version that may be served natively and how each model routes a request without a version. A request takes
// the native path only when it is the plain case: a known model and version, exactly the signature's inputs as
// raw contents of the right sizes, no parameters, no typed contents. Everything else is delegated to Python,
// which gives the same answer as ever (errors included), so the two paths cannot disagree on what is an error.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "oip/v1/grpc_service.pb.h"

namespace oip {

struct InputSpec {
  std::string name;
  std::string datatype;
  std::vector<std::int64_t> shape;  // -1: any size; with batching, dimension 0 is the batch dimension
  std::size_t element_bytes;
};

struct VersionSpec {
  int key;  // Python's handle of the loaded version
  std::string model_name;
  std::string version_text;
  std::vector<InputSpec> inputs;       // the signature's order: merged batches list inputs in it
  std::vector<std::string> outputs;    // the signature's order: what a request naming none gets
  int max_batch_size = 0;              // 0: no batch dimension, one request per execution
  bool max_batch_size_configured = true;
  bool merge = true;
  std::size_t max_queue_size = 1024;
  int instances = 1;
  std::vector<int> preferred_batch_sizes;
  std::int64_t max_queue_delay_us = 0;
  int priority_levels = 1;
  int default_priority = 1;
  std::int64_t default_timeout_us = 0;  // a request without `timeout` is not executed after this long; 0: none
};

// server.routing.table's Layout with version keys: version i owns buckets [starts[i], starts[i+1]).
struct RouteLayout {
  std::vector<int> starts;
  std::vector<int> keys;  // kNotReady: the fallback layout decides
  bool empty() const { return keys.empty(); }
  int pick(int bucket) const;
};

constexpr int kBuckets = 10000;  // server.routing.table.BUCKETS
constexpr int kNotReady = -2;
constexpr std::size_t kMaxStickyKeyBytes = 256;  // server.routing.sticky.MAX_KEY_BYTES

struct ModelRoutes {
  std::unordered_map<std::string, int> pinned;  // version text -> key, for requests naming their version
  // For a request without version (server.traffic.router's decision, as data): both layouts empty: Python routes.
  RouteLayout primary;
  RouteLayout fallback;
  std::string sticky_parameter;  // the request parameter whose value picks the bucket (looked at first); "" none
  std::string sticky_metadata;   // the gRPC metadata key whose value picks the bucket; "" none
  std::uint32_t salt_crc = 0;   // crc32 of the routing salt
  // The share of unversioned requests also copied to the shadow version (0: no shadow). A request drawn for it is
  // delegated, marked drawn: the Python path runs the primary and the copy (server/traffic/shadow.py).
  double shadow_fraction = 0.0;
};

// server.tracing.sampling.SamplingPolicy as data: which requests tracing samples. A sampled request is delegated,
// marked drawn, so that the Python path gives it its spans without deciding again.
struct TraceSampling {
  bool enabled = false;       // tracing is on
  bool parent_based = false;  // follow the caller's traceparent flag when it sent a valid one
  bool always = false;        // a root is always sampled
  std::uint64_t root_bound = 0;  // else a root is sampled when a random 64-bit number is below this (0: never)
};

struct FastTable {
  std::unordered_map<int, VersionSpec> versions;
  std::unordered_map<std::string, ModelRoutes> models;
  TraceSampling sampling;
  // The access log's share of requests (server.telemetry.access; 0: off). A drawn request is delegated, marked
  // drawn: the Python path logs it (once answered OK) without drawing again.
  double access_sample = 0.0;
};

// server.tracing.sampling.parent_sampled: the sampled flag of a W3C traceparent value, or nothing when the
// propagator would not accept it.
std::optional<bool> parent_sampled(const std::string& traceparent);

// Route kinds, numbered as server.routing.table.Route.
enum class RouteKind : int { kPinned = 0, kWeighted = 1, kSticky = 2, kFallback = 4 };

// zlib's crc32(data, crc): crc32 of `crc`'s data followed by these bytes.
std::uint32_t crc32_continue(std::uint32_t crc, const char* data, std::size_t size);
// server.routing.sticky.bucket_after: the bucket of a sticky key, the same in every process.
int sticky_bucket(std::uint32_t salt_crc, const std::string& key);

// A request's first value for a metadata key (lower case, as gRPC spells it); false when it has none.
using MetadataLookup = std::function<bool(const std::string& key, std::string& value)>;

// The shares admit() drew for a request (server.types.Drawn, in the same order): the access log's, tracing's sample,
// the shadow copy's fraction. All three are drawn once a request would otherwise stay native; if any wants it, the
// Python path takes it and follows all three decisions (drawing again there would skew the shares). `decided`
// false: the request left before the draws, and Python draws each itself.
struct Drawn {
  bool decided = false;
  bool access = false;
  bool trace = false;
  bool shadow = false;
};

// One request in a native batcher's queue: either a ModelInfer call on the native path (its parsed message owns
// the tensor bytes; C++ answers it), or a request the Python path routed and validated (`ticket` != 0: its bytes
// copied into `owned`; Python answers it with its share of the outputs).
struct FastRequest {
  std::uint64_t call = 0;
  std::uint64_t ticket = 0;
  bool streamed = false;  // a ModelStreamInfer message: answered as a message on its stream, which stays open
  std::vector<std::string> owned;  // a ticket's inputs, in the signature's order
  int priority = 0;                // 0: the version's default level
  std::int64_t deadline_ns = -1;   // monotonic; a request still queued then is never executed
  bool enforce_deadline = false;   // expire it at its deadline even while no batch forms (else when one does)
  inference::ModelInferRequest message;
  const VersionSpec* spec = nullptr;     // valid while the table that admitted it is alive (held by `table`)
  std::shared_ptr<const FastTable> table;
  std::vector<int> input_order;          // message input index of each spec input
  std::vector<std::string> output_names; // the outputs to compute, in response order
  std::vector<std::vector<std::int64_t>> shapes;  // per spec input
  int rows = 1;
  std::string layout;  // equal layouts may merge into one execution
  std::int64_t enqueued_ns = 0;
  std::size_t bytes = 0;
  RouteKind route = RouteKind::kWeighted;
  Drawn drawn;  // what admit() drew it for, leaving it to Python

  const std::string& raw(std::size_t spec_input) const {
    return ticket != 0 ? owned[spec_input] : message.raw_input_contents(input_order[spec_input]);
  }
};

// Fills `request` (already parsed into request.message) when it is the plain case for a version in `table`; false
// when Python must take it.
// `metadata` is consulted for the model's sticky key; `transport_deadline_ns` (monotonic, -1: none) is the call's
// own deadline, which gRPC enforces: the request's deadline is set only when the `timeout` parameter or the
// version's default timeout comes earlier (server.scheduling.deadline_of).
bool admit(const std::shared_ptr<const FastTable>& table, FastRequest& request, const MetadataLookup& metadata,
           std::int64_t transport_deadline_ns);
// The merge layout of a request whose shapes (per spec input) and output names are set.
std::string layout_of(const VersionSpec& spec, const FastRequest& request);

std::size_t element_bytes(const std::string& datatype);  // 0 for datatypes the native path does not take (BYTES)

std::int64_t monotonic_ns();  // CLOCK_MONOTONIC, the clock of Python's time.perf_counter_ns()

}  // namespace oip
