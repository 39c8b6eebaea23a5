// ModelInferResponse written straight to wire bytes (the C++ twin of server/grpc/response_wire.py): one string,
// no message object, exactly what ModelInferResponse::SerializeAsString gives (tests/native/test_response_wire.py
// compares the two). Field numbers are the protocol's (DESIGN.md §3).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace oip {

struct WireTensor {
  const std::string* name;
  const std::string* datatype;
  std::vector<std::int64_t> shape;
  const char* data;
  std::size_t bytes;
};

std::string encode_response(const std::string& model_name, const std::string& model_version, const std::string& id,
                            const std::vector<WireTensor>& outputs);

// ModelStreamInferResponse (server/grpc/streaming.py's two shapes): a served request's response as its
// infer_response, or a failed one's error_message ("<CODE NAME>: <details>", the names of grpc.StatusCode) with
// the request's identity echoed in infer_response.
std::string encode_stream_response(const std::string& infer_response);
std::string encode_stream_error(int code, const std::string& details, const std::string& model_name,
                                const std::string& model_version, const std::string& id);
// grpc.StatusCode's name for a status number ("UNKNOWN" for numbers it does not define).
const char* status_code_name(int code);

}  // namespace oip
