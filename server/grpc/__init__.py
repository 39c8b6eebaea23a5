"""The gRPC edge: protobuf in, protobuf out; the core never sees a message."""
