"""Pure routing logic: the routing config, the immutable routing table and the decision functions.

Nothing here touches the event loop, the repository or gRPC, so any frontend (the grpc.aio path
today, a native data plane later) can evaluate the same table with the same result.
"""
