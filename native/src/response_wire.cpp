#include "response_wire.h"

namespace oip {
namespace {

// Tags: field number << 3 | wire type 2 (length-delimited).
constexpr char kModelName = 0x0a, kModelVersion = 0x12, kId = 0x1a, kOutput = 0x2a, kRawOutput = 0x32;
constexpr char kTensorName = 0x0a, kTensorDatatype = 0x12, kTensorShape = 0x1a;

void varint(std::string& out, std::uint64_t value) {  // negative int64 take 10 bytes, two's complement
  while (value >= 0x80) {
    out.push_back(static_cast<char>((value & 0x7f) | 0x80));
    value >>= 7;
  }
  out.push_back(static_cast<char>(value));
}

std::size_t varint_size(std::uint64_t value) {
  std::size_t size = 1;
  while (value >= 0x80) {
    value >>= 7;
    ++size;
  }
  return size;
}

void text(std::string& out, char tag, const std::string& value) {
  if (value.empty()) {
    return;  // proto3 leaves empty strings off the wire
  }
  out.push_back(tag);
  varint(out, value.size());
  out += value;
}

}  // namespace

std::string encode_response(const std::string& model_name, const std::string& model_version, const std::string& id,
                            const std::vector<WireTensor>& outputs) {
  std::string out;
  std::size_t payload = 0;
  for (const auto& output : outputs) {
    payload += output.bytes + 16;
  }
  out.reserve(model_name.size() + model_version.size() + id.size() + payload + 64 * outputs.size() + 16);
  text(out, kModelName, model_name);
  text(out, kModelVersion, model_version);
  text(out, kId, id);
  std::string tensor;
  for (const auto& output : outputs) {
    tensor.clear();
    text(tensor, kTensorName, *output.name);
    text(tensor, kTensorDatatype, *output.datatype);
    if (!output.shape.empty()) {
      std::size_t packed = 0;
      for (auto dim : output.shape) {
        packed += varint_size(static_cast<std::uint64_t>(dim));
      }
      tensor.push_back(kTensorShape);
      varint(tensor, packed);
      for (auto dim : output.shape) {
        varint(tensor, static_cast<std::uint64_t>(dim));
      }
    }
    out.push_back(kOutput);
    varint(out, tensor.size());
    out += tensor;
  }
  for (const auto& output : outputs) {
    out.push_back(kRawOutput);  // present even when empty: a repeated bytes entry is always written
    varint(out, output.bytes);
    out.append(output.data, output.bytes);
  }
  return out;
}

namespace {

constexpr char kStreamError = 0x0a, kStreamResponse = 0x12;  // ModelStreamInferResponse fields 1 and 2

// infer_response is always written, even empty: Python sets the message, which makes it present.
void embedded(std::string& out, const std::string& message) {
  out.push_back(kStreamResponse);
  varint(out, message.size());
  out += message;
}

}  // namespace

std::string encode_stream_response(const std::string& infer_response) {
  std::string out;
  out.reserve(infer_response.size() + 11);
  embedded(out, infer_response);
  return out;
}

std::string encode_stream_error(int code, const std::string& details, const std::string& model_name,
                                const std::string& model_version, const std::string& id) {
  std::string out;
  text(out, kStreamError, std::string(status_code_name(code)) + ": " + details);
  embedded(out, encode_response(model_name, model_version, id, {}));
  return out;
}

const char* status_code_name(int code) {
  static const char* const kNames[] = {
      "OK",           "CANCELLED",         "UNKNOWN",        "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
      "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED",
      "OUT_OF_RANGE", "UNIMPLEMENTED",     "INTERNAL",       "UNAVAILABLE",      "DATA_LOSS",         "UNAUTHENTICATED"};
  return code >= 0 && code < static_cast<int>(sizeof(kNames) / sizeof(kNames[0])) ? kNames[code] : "UNKNOWN";
}

}  // namespace oip
