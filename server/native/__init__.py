"""The native frontend (docs/native-data-plane.md): gRPC C++ from the oip_native extension, Python per call."""
