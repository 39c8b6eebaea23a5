#include "fast_path.h"

#include <time.h>

#include <algorithm>
#include <array>
#include <limits>
#include <random>


namespace oip {

std::size_t element_bytes(const std::string& datatype) {
  static const std::unordered_map<std::string, std::size_t> sizes = {
      {"BOOL", 1},  {"UINT8", 1}, {"INT8", 1},  {"UINT16", 2}, {"INT16", 2}, {"FP16", 2},
      {"UINT32", 4}, {"INT32", 4}, {"FP32", 4}, {"UINT64", 8}, {"INT64", 8}, {"FP64", 8},
  };
  auto found = sizes.find(datatype);
  return found == sizes.end() ? 0 : found->second;
}

std::int64_t monotonic_ns() {
  timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  return static_cast<std::int64_t>(now.tv_sec) * 1000000000 + now.tv_nsec;
}

namespace {

void append(std::string& layout, std::int64_t value) {
  layout.append(reinterpret_cast<const char*>(&value), sizeof(value));
}

const ModelRoutes* routes_of(const FastTable& table, const std::string& model) {
  auto found = table.models.find(model);
  return found == table.models.end() ? nullptr : &found->second;
}

std::array<std::uint32_t, 256> crc_table() {
  std::array<std::uint32_t, 256> table{};
  for (std::uint32_t byte = 0; byte < 256; ++byte) {
    std::uint32_t crc = byte;
    for (int bit = 0; bit < 8; ++bit) {
      crc = (crc & 1) ? (crc >> 1) ^ 0xEDB88320u : crc >> 1;  // CRC-32 (IEEE 802.3, reflected), as zlib's
    }
    table[byte] = crc;
  }
  return table;
}

std::mt19937& generator() {  // one per thread (the I/O thread)
  thread_local std::mt19937 seeded{std::random_device{}()};
  return seeded;
}

// A random bucket, as the Python router's int(random() * BUCKETS).
int random_bucket() {
  thread_local std::uniform_int_distribution<int> buckets(0, kBuckets - 1);
  return buckets(generator());
}

bool is_hex(const std::string& text, std::size_t first, std::size_t count) {
  for (std::size_t index = first; index < first + count; ++index) {
    char c = text[index];
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
      return false;
    }
  }
  return true;
}

bool all_zeros(const std::string& text, std::size_t first, std::size_t count) {
  return text.find_first_not_of('0', first) >= first + count;
}

// Whether tracing samples the request (server.tracing.sampling.SamplingPolicy.sampled).
bool trace_sampled(const TraceSampling& sampling, const MetadataLookup& metadata) {
  if (sampling.parent_based) {
    std::string traceparent;
    if (metadata("traceparent", traceparent)) {
      if (auto parent = parent_sampled(traceparent)) {
        return *parent;
      }
    }
  }
  if (sampling.always) {
    return true;
  }
  thread_local std::uniform_int_distribution<std::uint64_t> bits;
  return sampling.root_bound > 0 && bits(generator()) < sampling.root_bound;
}

// A uniform draw in [0, 1), as the Python router's random() for the shadow copy.
double random_fraction() {
  thread_local std::uniform_real_distribution<double> fraction(0.0, 1.0);
  return fraction(generator());
}

// An integer parameter as server.scheduling reads one (int64_param or uint64_param); false for anything else.
bool integer_parameter(const inference::InferParameter& value, std::int64_t& integer) {
  switch (value.parameter_choice_case()) {
    case inference::InferParameter::kInt64Param:
      integer = value.int64_param();
      return true;
    case inference::InferParameter::kUint64Param:
      if (value.uint64_param() > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
        return false;
      }
      integer = static_cast<std::int64_t>(value.uint64_param());
      return true;
    default:
      return false;
  }
}

// The parameters the native path interprets itself: the model's sticky key (its bytes as
// server.routing.sticky.key_bytes makes them: a string's UTF-8, an integer's decimal text), `priority` (an
// integer, checked against the version's levels once it is known) and `timeout` (microseconds, >= 0). False for
// any other parameter, or a value Python would refuse: Python interprets those, and says what is wrong.
bool native_parameters(const inference::ModelInferRequest& message, const ModelRoutes& routes,
                       std::optional<std::string>& sticky, std::int64_t& priority,
                       std::optional<std::int64_t>& timeout_us) {
  for (const auto& [name, value] : message.parameters()) {
    bool known = false;
    if (!routes.sticky_parameter.empty() && name == routes.sticky_parameter) {
      std::int64_t integer = 0;
      if (value.parameter_choice_case() == inference::InferParameter::kStringParam) {
        sticky = value.string_param();
      } else if (integer_parameter(value, integer)) {
        sticky = std::to_string(integer);
      } else {
        return false;
      }
      known = true;
    }
    if (name == "priority") {
      if (!integer_parameter(value, priority) || priority < 0) {
        return false;
      }
      known = true;
    }
    if (name == "timeout") {
      std::int64_t microseconds = 0;
      if (!integer_parameter(value, microseconds) || microseconds < 0) {
        return false;
      }
      timeout_us = microseconds;
      known = true;
    }
    if (!known) {
      return false;
    }
  }
  return true;
}

// The version key for a request naming no version, and how it was chosen; -1: Python routes it. `parameter_key`:
// the sticky key from the request's parameters, if it has one.
int route_unversioned(const ModelRoutes& routes, FastRequest& request, const MetadataLookup& metadata,
                      const std::optional<std::string>& parameter_key) {
  if (routes.primary.empty() && routes.fallback.empty()) {
    return -1;
  }
  int bucket = -1;
  std::string value;
  if (parameter_key || (!routes.sticky_metadata.empty() && metadata(routes.sticky_metadata, value))) {
    if (parameter_key) {
      value = *parameter_key;
    }
    if (value.empty() || value.size() > kMaxStickyKeyBytes) {
      return -1;  // an unusable key: the Python router routes it by weight and counts why
    }
    bucket = sticky_bucket(routes.salt_crc, value);
  }
  const bool sticky = bucket >= 0;
  if (!sticky) {
    bucket = random_bucket();
  }
  if (!routes.primary.empty()) {
    int key = routes.primary.pick(bucket);
    if (key != kNotReady) {
      request.route = sticky ? RouteKind::kSticky : RouteKind::kWeighted;
      return key;
    }
  }
  if (routes.fallback.empty()) {
    return -1;
  }
  request.route = RouteKind::kFallback;
  return routes.fallback.pick(bucket);
}

}  // namespace

std::optional<bool> parent_sampled(const std::string& traceparent) {
  // The propagator's regular expression, ^[ \t]*(vv)-(32 hex)-(16 hex)-(ff)(-.*)?[ \t]*$ with Python's rules: `$`
  // also matches before one final newline, and `.` matches anything but a newline.
  std::string value = traceparent;
  if (!value.empty() && value.back() == '\n') {
    value.pop_back();
  }
  std::size_t at = value.find_first_not_of(" \t");
  constexpr std::size_t kCore = 55;  // 2 + 1 + 32 + 1 + 16 + 1 + 2
  if (at == std::string::npos || value.size() - at < kCore) {
    return std::nullopt;
  }
  if (value[at + 2] != '-' || value[at + 35] != '-' || value[at + 52] != '-' || !is_hex(value, at, 2) ||
      !is_hex(value, at + 3, 32) || !is_hex(value, at + 36, 16) || !is_hex(value, at + 53, 2)) {
    return std::nullopt;
  }
  const std::size_t after = at + kCore;
  const bool rest = after < value.size() && value[after] == '-';
  if (rest ? value.find('\n', after) != std::string::npos
           : value.find_first_not_of(" \t", after) != std::string::npos) {
    return std::nullopt;
  }
  const std::string version = value.substr(at, 2);
  if (all_zeros(value, at + 3, 32) || all_zeros(value, at + 36, 16) || version == "ff" || (version == "00" && rest)) {
    return std::nullopt;
  }
  return (std::stoi(value.substr(at + 53, 2), nullptr, 16) & 1) != 0;
}

int RouteLayout::pick(int bucket) const {
  auto above = std::upper_bound(starts.begin(), starts.end(), bucket);
  return keys[static_cast<std::size_t>(above - starts.begin()) - 1];
}

std::uint32_t crc32_continue(std::uint32_t crc, const char* data, std::size_t size) {
  static const std::array<std::uint32_t, 256> table = crc_table();
  crc = ~crc;
  for (std::size_t index = 0; index < size; ++index) {
    crc = table[(crc ^ static_cast<unsigned char>(data[index])) & 0xFFu] ^ (crc >> 8);
  }
  return ~crc;
}

int sticky_bucket(std::uint32_t salt_crc, const std::string& key) {
  // Knuth's multiplicative mix of the crc32, scaled onto the buckets (server.routing.sticky.bucket_after).
  std::uint64_t mixed = (static_cast<std::uint64_t>(crc32_continue(salt_crc, key.data(), key.size())) *
                         2654435761u) & 0xFFFFFFFFu;
  return static_cast<int>((mixed * kBuckets) >> 32);
}

std::string layout_of(const VersionSpec& spec, const FastRequest& request) {
  // What requests must share to merge: each input's non-batch dimensions (names and datatypes are the signature's),
  // then the outputs. Exact bytes, not a hash: the batcher interns it, so no collision can merge two layouts that
  // must not.
  std::string layout;
  for (const auto& shape : request.shapes) {
    append(layout, static_cast<std::int64_t>(shape.size()));
    for (std::size_t axis = spec.max_batch_size > 0 ? 1 : 0; axis < shape.size(); ++axis) {
      append(layout, shape[axis]);
    }
  }
  for (const auto& name : request.output_names) {
    append(layout, static_cast<std::int64_t>(name.size()));
    layout += name;
  }
  return layout;
}

bool admit(const std::shared_ptr<const FastTable>& table, FastRequest& request, const MetadataLookup& metadata,
           std::int64_t transport_deadline_ns) {
  const auto& message = request.message;
  if (!table) {
    return false;
  }
  if (message.id().size() > 1024) {
    return false;  // server/grpc/tensors.py MAX_ID_BYTES: Python refuses it, saying so
  }
  const ModelRoutes* routes = routes_of(*table, message.model_name());
  std::optional<std::string> sticky;
  std::int64_t priority = 0;
  std::optional<std::int64_t> timeout_us;
  if (routes == nullptr || !native_parameters(message, *routes, sticky, priority, timeout_us)) {
    return false;
  }
  int key = -1;
  if (message.model_version().empty()) {
    key = route_unversioned(*routes, request, metadata, sticky);
  } else {  // a pinned request's sticky parameter is ignored, as by the Python router
    auto pinned = routes->pinned.find(message.model_version());
    key = pinned == routes->pinned.end() ? -1 : pinned->second;
    request.route = RouteKind::kPinned;
  }
  auto version = table->versions.find(key);
  if (key < 0 || version == table->versions.end()) {
    return false;
  }
  const VersionSpec& spec = version->second;
  if (priority > std::max(1, spec.priority_levels)) {
    return false;  // out of range: server.scheduling.priority_of says so
  }
  request.priority = static_cast<int>(priority);  // 0: the version's default level
  // server.scheduling.deadline_of: `timeout` (0: none), else the version's default; enforced by the batcher only
  // when earlier than the transport's deadline, which gRPC enforces itself (the batcher then sees the call gone).
  const std::int64_t own_us = timeout_us ? *timeout_us : spec.default_timeout_us;
  if (own_us > 0) {
    const std::int64_t own_ns = monotonic_ns() + own_us * 1000;
    if (transport_deadline_ns < 0 || own_ns < transport_deadline_ns) {
      request.deadline_ns = own_ns;
      request.enforce_deadline = true;
    }
  }
  const auto count = spec.inputs.size();
  if (static_cast<std::size_t>(message.inputs_size()) != count ||
      static_cast<std::size_t>(message.raw_input_contents_size()) != count) {
    return false;
  }
  request.input_order.assign(count, -1);
  request.shapes.assign(count, {});
  std::int64_t batch = -1;
  std::size_t bytes = 0;
  for (int index = 0; index < message.inputs_size(); ++index) {
    const auto& tensor = message.inputs(index);
    if (tensor.has_contents() || tensor.parameters_size() != 0) {
      return false;
    }
    std::size_t position = 0;
    while (position < count && spec.inputs[position].name != tensor.name()) {
      ++position;
    }
    if (position == count || request.input_order[position] != -1 || tensor.datatype() != spec.inputs[position].datatype) {
      return false;  // unknown, repeated or mistyped: Python says which
    }
    const InputSpec& input = spec.inputs[position];
    if (static_cast<std::size_t>(tensor.shape_size()) != input.shape.size()) {
      return false;
    }
    std::int64_t elements = 1;
    for (int axis = 0; axis < tensor.shape_size(); ++axis) {
      std::int64_t dim = tensor.shape(axis);
      if (dim < 0 || (input.shape[axis] != -1 && input.shape[axis] != dim)) {
        return false;
      }
      elements *= dim;
    }
    if (message.raw_input_contents(index).size() != static_cast<std::size_t>(elements) * input.element_bytes) {
      return false;
    }
    if (spec.max_batch_size > 0) {
      std::int64_t rows = tensor.shape_size() > 0 ? tensor.shape(0) : -1;
      if (rows < 1 || (batch != -1 && rows != batch)) {
        return false;
      }
      batch = rows;
    }
    request.input_order[position] = index;
    request.shapes[position].assign(tensor.shape().begin(), tensor.shape().end());
    bytes += message.raw_input_contents(index).size();
  }
  if (spec.max_batch_size > 0 && batch > spec.max_batch_size && spec.max_batch_size_configured) {
    return false;  // Python refuses it, naming the limit
  }
  request.output_names.clear();
  if (message.outputs_size() == 0) {
    request.output_names = spec.outputs;
  } else {
    for (const auto& wanted : message.outputs()) {
      if (wanted.parameters_size() != 0) {
        return false;
      }
      bool known = false;
      for (const auto& name : spec.outputs) {
        known = known || name == wanted.name();
      }
      if (!known) {
        return false;
      }
      bool repeated = false;
      for (const auto& name : request.output_names) {
        repeated = repeated || name == wanted.name();
      }
      if (!repeated) {  // named twice: computed and answered once, like the Python path
        request.output_names.push_back(wanted.name());
      }
    }
  }
  request.layout = layout_of(spec, request);
  request.spec = &spec;
  request.table = table;
  request.rows = spec.max_batch_size > 0 ? static_cast<int>(batch) : 1;
  request.bytes = bytes;
  // The shares it could go to Python for, all drawn here, once (fast_path.h's Drawn): tracing's decision also reads
  // the caller's traceparent; a shadow copy is only for a request that names no version, as in the Python router.
  Drawn& drawn = request.drawn;
  drawn.decided = true;
  drawn.access = table->access_sample > 0 && (table->access_sample >= 1.0 || random_fraction() < table->access_sample);
  drawn.trace = table->sampling.enabled && trace_sampled(table->sampling, metadata);
  drawn.shadow = message.model_version().empty() && routes->shadow_fraction > 0 &&
                 random_fraction() < routes->shadow_fraction;
  return !(drawn.access || drawn.trace || drawn.shadow);
}

}  // namespace oip
