"""Sync and asyncio clients for the Open Inference Protocol (KServe V2) gRPC API.

numpy arrays in, numpy arrays out; metadata comes back as frozen dataclasses::

    from clients import InferenceClient

    with InferenceClient("localhost:8001") as client:
        outputs = client.infer("fraud", {"features": features})

Every failed call raises :class:`InferenceServerError`; only UNAVAILABLE is retried,
as the :class:`RetryPolicy` allows.
"""

from clients.aio import AsyncInferenceClient
from clients.client import InferenceClient
from clients.errors import InferenceServerError
from clients.results import InferResult, ModelMetadata, RepositoryEntry, ServerMetadata, TensorMetadata
from clients.retry import RetryPolicy

__all__ = [
    "AsyncInferenceClient",
    "InferResult",
    "InferenceClient",
    "InferenceServerError",
    "ModelMetadata",
    "RepositoryEntry",
    "RetryPolicy",
    "ServerMetadata",
    "TensorMetadata",
]
