"""Protobuf builders for metadata, configuration, statistics and the repository index."""

from __future__ import annotations

from oip.v1 import grpc_service_pb2 as pb
from oip.v1 import model_config_pb2 as config_pb
from server.repository.records import IndexEntry, ModelRecord
from server.statistics import Duration
from server.types import TensorSpec
from server.versions.loaded import LoadedVersion

PLATFORM = "onnxruntime_onnx"
BACKEND = "onnxruntime"


def model_metadata(record: ModelRecord, loaded: LoadedVersion) -> pb.ModelMetadataResponse:
    """Metadata of one version; `versions` lists every ready version of the model."""
    tensor = pb.ModelMetadataResponse.TensorMetadata
    return pb.ModelMetadataResponse(
        name=record.name,
        versions=[str(v) for v in sorted(record.loaded)],
        platform=PLATFORM,
        inputs=[tensor(name=s.name, datatype=s.datatype, shape=s.shape) for s in loaded.signature.inputs],
        outputs=[tensor(name=s.name, datatype=s.datatype, shape=s.shape) for s in loaded.signature.outputs],
    )


def _config_dims(spec: TensorSpec, batched: bool) -> tuple[int, ...]:
    # Triton convention: with max_batch_size > 0, dims leave out the batch dimension.
    return spec.shape[1:] if batched else spec.shape


def model_config(loaded: LoadedVersion) -> config_pb.ModelConfig:
    """The Triton-style ModelConfig that perf_analyzer and tritonclient read."""
    signature = loaded.signature
    batched = signature.max_batch_size > 0
    config = loaded.config
    on_gpu = any(name != "CPUExecutionProvider" for name in loaded.providers)
    kind = config_pb.ModelInstanceGroup.KIND_GPU if on_gpu else config_pb.ModelInstanceGroup.KIND_CPU
    message = config_pb.ModelConfig(
        name=loaded.model_name,
        platform=PLATFORM,
        backend=BACKEND,
        max_batch_size=signature.max_batch_size,
        default_model_filename=config.model_filename,
        input=[
            config_pb.ModelInput(name=s.name, data_type=_config_type(s.datatype), dims=_config_dims(s, batched))
            for s in signature.inputs
        ],
        output=[
            config_pb.ModelOutput(name=s.name, data_type=_config_type(s.datatype), dims=_config_dims(s, batched))
            for s in signature.outputs
        ],
        instance_group=[config_pb.ModelInstanceGroup(name=loaded.model_name, count=config.instances.count, kind=kind)],
        parameters=_parameters(loaded),
    )
    batching = config.batching
    # A model that must not merge requests (signature.unmergeable) has no dynamic_batching: see _parameters.
    if batched and batching.enabled and not signature.unmergeable:
        message.dynamic_batching.preferred_batch_size.extend(batching.preferred_batch_sizes)
        message.dynamic_batching.max_queue_delay_microseconds = batching.max_queue_delay_us
        message.dynamic_batching.priority_levels = batching.priority_levels
        message.dynamic_batching.default_priority_level = batching.default_priority_level
        queue = message.dynamic_batching.default_queue_policy
        queue.max_queue_size = batching.max_queue_size
        queue.default_timeout_microseconds = batching.default_timeout_us
        queue.allow_timeout_override = True
    policy = config.versions
    if policy.policy == "latest":
        message.version_policy.latest.num_versions = policy.latest
    elif policy.policy == "specific":
        message.version_policy.specific.versions.extend(policy.versions)
    else:
        message.version_policy.all.SetInParent()
    return message


def _parameters(loaded: LoadedVersion) -> dict[str, config_pb.ModelParameter]:
    """Execution providers, and which file serves: its sha256, the ONNX producer and its metadata_props.

    `dynamic_batching_disabled` says why a model that accepts batches never merges requests."""
    identity = loaded.identity
    values = {
        "execution_providers": ",".join(loaded.providers),
        "dynamic_batching_disabled": loaded.signature.unmergeable,
        "sha256": identity.sha256,
        "producer": identity.producer,
        "onnx_model_version": identity.onnx_model_version,
        **{f"metadata.{key}": value for key, value in identity.metadata.items()},
    }
    return {key: config_pb.ModelParameter(string_value=value) for key, value in values.items() if value}


def _config_type(datatype: str) -> str:
    return "TYPE_STRING" if datatype == "BYTES" else f"TYPE_{datatype}"


def _duration(target: pb.StatisticDuration, source: Duration) -> None:
    target.count = source.count
    target.ns = source.ns


def model_statistics(loaded: LoadedVersion) -> pb.ModelStatistics:
    stats = loaded.statistics
    message = pb.ModelStatistics(
        name=loaded.model_name,
        version=str(loaded.version),
        last_inference=stats.last_inference_ms,
        inference_count=stats.inference_count,
        execution_count=stats.execution_count,
    )
    inference = message.inference_stats
    for name in ("success", "fail", "queue", "compute_input", "compute_infer", "compute_output"):
        _duration(getattr(inference, name), getattr(stats, name))
    for size in sorted(stats.batches):
        batch = stats.batches[size]
        entry = message.batch_stats.add(batch_size=size)
        _duration(entry.compute_input, batch.compute_input)
        _duration(entry.compute_infer, batch.compute_infer)
        _duration(entry.compute_output, batch.compute_output)
    return message


def repository_index(entries: list[IndexEntry]) -> pb.RepositoryIndexResponse:
    model = pb.RepositoryIndexResponse.ModelIndex
    return pb.RepositoryIndexResponse(
        models=[model(name=e.name, version=e.version, state=e.state, reason=e.reason) for e in entries]
    )
