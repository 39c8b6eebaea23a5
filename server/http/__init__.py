"""The HTTP side port: metrics and health for probes that do not speak gRPC."""
