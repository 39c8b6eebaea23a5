"""The admin API (gRPC service `oip.admin.v1.RoutingAdmin`) and its command-line client."""
