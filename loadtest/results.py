"""The data model of a load-test run: what engines produce and what reports consume.

Plain dataclasses with `to_dict`/`from_dict`, so a JSON report can be read back
(`python -m loadtest compare a.json b.json`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class LatencySummary:
    """Latency percentiles in milliseconds."""

    count: int
    mean_ms: float
    p50_ms: float
    p90_ms: float
    p95_ms: float
    p99_ms: float
    p999_ms: float
    max_ms: float


@dataclass(frozen=True, slots=True)
class ServerBreakdown:
    """Per-request averages from ModelStatistics deltas over the measurement, in microseconds."""

    success_count: int
    fail_count: int
    execution_count: int
    inference_count: int
    avg_request_us: float
    avg_queue_us: float
    avg_compute_input_us: float
    avg_compute_infer_us: float
    avg_compute_output_us: float


@dataclass(frozen=True, slots=True)
class WindowResult:
    """One measurement window."""

    duration_s: float
    requests: int
    errors: int
    throughput_infer_per_s: float
    p50_ms: float
    p99_ms: float


@dataclass(slots=True)
class LevelResult:
    """One load level: a concurrency (closed loop) or a request rate (open loop)."""

    mode: str
    """"closed" or "open"."""
    level: float
    """Concurrency (requests in flight) or offered rate (requests/s)."""
    engine: str
    batch_size: int
    duration_s: float
    requests_ok: int
    requests_failed: int
    errors_by_code: dict[str, int]
    throughput_req_per_s: float
    throughput_infer_per_s: float
    latency: LatencySummary | None
    """None for engines that cannot time single requests (h2load reports its own summary in `notes`)."""
    windows: list[WindowResult] = field(default_factory=list)
    stable: bool = True
    server: ServerBreakdown | None = None
    notes: list[str] = field(default_factory=list)
    total_ok: int = 0
    """Successful requests over the whole level, warm-up included: for exact cross-checks with server counters."""
    unreachable: bool = False
    """The level stopped early because the server stopped answering (see `notes`); later levels were skipped."""


@dataclass(slots=True)
class BaselineResult:
    """A reference point measured in the same run."""

    name: str
    """"grpc_floor" (bare grpc.aio servicer, canned response) or "onnxruntime" (in-process compute ceiling)."""
    description: str
    levels: list[LevelResult] = field(default_factory=list)
    """For grpc_floor: the same load levels as the target."""
    throughput_infer_per_s_by_batch: dict[int, float] = field(default_factory=dict)
    """For onnxruntime: inferences/s at each batch size."""


@dataclass(slots=True)
class RunReport:
    """Everything a run measured, plus how and where."""

    target: str
    model: str
    version: str
    command: str
    started_at: str
    """ISO 8601, UTC."""
    machine: dict[str, Any]
    versions: dict[str, str]
    settings: dict[str, Any]
    levels: list[LevelResult] = field(default_factory=list)
    baselines: list[BaselineResult] = field(default_factory=list)
    ratios: dict[str, float] = field(default_factory=dict)
    """Named ratios, e.g. "target/grpc_floor@c64": 0.91."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @staticmethod
    def from_dict(data: dict[str, Any]) -> RunReport:
        return RunReport(
            **{key: value for key, value in data.items() if key not in {"levels", "baselines"}},
            levels=[_level(item) for item in data.get("levels", [])],
            baselines=[
                BaselineResult(
                    name=item["name"],
                    description=item["description"],
                    levels=[_level(level) for level in item.get("levels", [])],
                    throughput_infer_per_s_by_batch={
                        int(k): float(v) for k, v in item.get("throughput_infer_per_s_by_batch", {}).items()
                    },
                )
                for item in data.get("baselines", [])
            ],
        )


def _level(data: dict[str, Any]) -> LevelResult:
    values = dict(data)
    latency = values.pop("latency")
    server = values.pop("server")
    windows = values.pop("windows", [])
    return LevelResult(
        **values,
        latency=LatencySummary(**latency) if latency else None,
        server=ServerBreakdown(**server) if server else None,
        windows=[WindowResult(**window) for window in windows],
    )
