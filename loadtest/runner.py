"""One load-test run: prepare the request, drive every level, measure the baselines, compute ratios."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import numpy.typing as npt

from loadtest.baselines import FloorServer, canned_response, measure_onnxruntime, model_file
from loadtest.engines.h2load_engine import run_h2load
from loadtest.engines.h2load_open import run_h2load_open
from loadtest.engines.python_engine import LoadPlan, run_python_load
from loadtest.engines.reachability import GIVE_UP_S
from loadtest.errors import LoadTestError
from loadtest.inputs import encode_request, generate_inputs, load_input_file
from loadtest.machine import machine_facts, package_versions
from loadtest.measure import summarize
from loadtest.report.terminal import Progress
from loadtest.results import BaselineResult, LevelResult, RunReport
from loadtest.target import StatsSnapshot, Target, breakdown


@dataclass(frozen=True, slots=True)
class RunOptions:
    target: str
    model: str
    version: str = ""
    batch_size: int = 1
    shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)
    input_file: Path | None = None
    mode: Literal["closed", "open"] = "closed"
    levels: tuple[float, ...] = (1.0,)
    arrival: Literal["constant", "poisson"] = "constant"
    engine: Literal["python", "h2load"] = "python"
    processes: int = 2
    warmup_s: float = 1.0
    window_s: float = 2.0
    windows: int = 3
    timeout_s: float = 10.0
    stability_pct: float = 10.0
    baseline: bool = False
    model_repository: Path | None = None
    intra_op_threads: int = 0
    max_unreachable_s: float = GIVE_UP_S
    stream_messages: int = 0
    """h2load closed loop: each request is a ModelStreamInfer stream of this many messages (0: unary ModelInfer)."""


@dataclass(frozen=True, slots=True)
class Prepared:
    payload: bytes
    response: bytes
    """The target's answer to `payload`: what the gRPC floor baseline replays."""
    inputs: dict[str, npt.NDArray[Any]]
    batched: bool
    max_batch_size: int


def prepare(target: Target, options: RunOptions) -> Prepared:
    """Build the request once from the model's metadata (or a file) and check the server accepts it."""
    metadata = target.model_metadata(options.model, options.version)
    max_batch = target.max_batch_size(options.model, options.version)
    batched = max_batch > 0 or (bool(metadata.inputs) and all(t.shape[:1] == [-1] for t in metadata.inputs))
    if max_batch and options.batch_size > max_batch:
        raise LoadTestError(f"--batch {options.batch_size} exceeds the model's max_batch_size {max_batch}")
    if options.input_file is not None:
        inputs = load_input_file(options.input_file)
        if "" in inputs:  # a bare .npy names no input: it feeds the model's only input
            if len(metadata.inputs) != 1:
                raise LoadTestError(".npy input files work for single-input models only; use .npz or .json")
            inputs = {metadata.inputs[0].name: inputs.pop("")}
    else:
        inputs = generate_inputs(metadata, options.batch_size, batched, options.shapes)
    payload = encode_request(options.model, options.version, inputs)
    response = canned_response(target.address, payload)  # fails early, with the server's message, if bad
    return Prepared(payload=payload, response=response, inputs=inputs, batched=batched, max_batch_size=max_batch)


def _plan(options: RunOptions, level: float) -> LoadPlan:
    return LoadPlan(
        mode=options.mode,
        level=level,
        warmup_s=options.warmup_s,
        measure_s=options.window_s * options.windows,
        processes=options.processes,
        timeout_s=options.timeout_s,
        arrival=options.arrival,
        max_unreachable_s=options.max_unreachable_s,
    )


def run_level(
    target: Target,
    address: str,
    payload: bytes,
    options: RunOptions,
    level: float,
    progress: Progress,
    label: str,
    *,
    infallible: bool = False,
) -> LevelResult:
    """Drive one level against `address`; server statistics come from `target` when it has them.

    `infallible` marks a target that answers every request successfully (the floor server), so
    the h2load engine may count HTTP successes instead of reading ModelStatistics.
    """
    plan = _plan(options, level)
    total = plan.warmup_s + plan.measure_s
    if options.engine == "h2load" and options.mode == "open":
        progress.update(label, "h2load", 0.0, total, 0, 0)
        return run_h2load_open(
            target, address, options.model, options.version, payload, options.batch_size, level,
            options.warmup_s, plan.measure_s, options.windows, options.stability_pct,
        )  # fmt: skip
    if options.engine == "h2load":
        progress.update(label, "h2load", 0.0, total, 0, 0)
        return run_h2load(
            target, address, options.model, options.version, payload, options.batch_size, int(level),
            options.warmup_s, plan.measure_s, count_http_successes=infallible,
            stream_messages=options.stream_messages,
        )  # fmt: skip
    snapshots: list[StatsSnapshot | None] = []

    def snapshot() -> None:
        snapshots.append(target.statistics(options.model, options.version))

    def tick(elapsed: float, ok: int, failed: int) -> None:
        progress.update(label, "warm-up" if elapsed < plan.warmup_s else "measure", elapsed, total, ok, failed)

    samples = run_python_load(address, payload, plan, tick, snapshot, snapshot)
    result = summarize(samples, plan, options.batch_size, options.windows, options.stability_pct)
    if len(snapshots) == 2 and snapshots[0] is not None and snapshots[1] is not None:
        result.server = breakdown(snapshots[0], snapshots[1])
    return result


FLOOR_DESCRIPTION = "bare grpc.aio servicer returning the target's response unchanged (the Python gRPC floor)"


def _onnxruntime_baseline(prepared: Prepared, options: RunOptions) -> BaselineResult:
    assert options.model_repository is not None
    path = model_file(options.model_repository, options.model, options.version)
    sizes = sorted({options.batch_size, prepared.max_batch_size} - {0}) if prepared.batched else [options.batch_size]
    rates = measure_onnxruntime(path, prepared.inputs, sizes, intra_op_threads=options.intra_op_threads)
    return BaselineResult(
        name="onnxruntime",
        description=f"in-process ONNX Runtime on {path} (intra_op_threads={options.intra_op_threads or 'auto'})",
        throughput_infer_per_s_by_batch=rates,
    )


def _start_floor(stack: contextlib.ExitStack, prepared: Prepared) -> tuple[FloorServer, Target]:
    floor = stack.enter_context(FloorServer(prepared.response))
    return floor, stack.enter_context(Target(floor.address))


def _floor_level(
    floor: tuple[FloorServer, Target], prepared: Prepared, options: RunOptions, level: float, progress: Progress
) -> LevelResult:
    server, target = floor
    label = f"floor {level:g}"
    # The same load generator as the target's level, so the ratio compares servers, not clients.
    return run_level(target, server.address, prepared.payload, options, level, progress, label, infallible=True)


def ratios(report: RunReport) -> dict[str, float]:
    """Target vs reference at matching levels, and the target's best against the compute ceiling."""
    result: dict[str, float] = {}
    for baseline in report.baselines:
        references = {(level.mode, level.level): level for level in baseline.levels}
        for level in report.levels:
            reference = references.get((level.mode, level.level))
            if reference is not None and reference.throughput_req_per_s > 0:
                tag = f"c{level.level:g}" if level.mode == "closed" else f"r{level.level:g}"
                result[f"target/{baseline.name}@{tag}"] = level.throughput_req_per_s / reference.throughput_req_per_s
        best = max((level.throughput_infer_per_s for level in report.levels), default=0.0)
        for batch, rate in baseline.throughput_infer_per_s_by_batch.items():
            if rate > 0:
                result[f"target_best/{baseline.name}@batch{batch}"] = best / rate
    return {key: float(f"{value:.3g}") for key, value in result.items()}


def run(options: RunOptions, command: str, progress: Progress, on_level: Callable[[LevelResult], None]) -> RunReport:
    started = datetime.now(UTC).isoformat(timespec="seconds")
    with Target(options.target) as target:
        prepared = prepare(target, options)
        report = RunReport(
            target=options.target,
            model=options.model,
            version=options.version,
            command=command,
            started_at=started,
            machine=machine_facts(),
            versions={**package_versions(), "target_server": target.server_description()},
            settings={key: _plain(value) for key, value in asdict(options).items()},
        )
        with contextlib.ExitStack() as stack:
            floor = _start_floor(stack, prepared) if options.baseline else None
            floor_levels: list[LevelResult] = []
            for index, level in enumerate(options.levels):
                label = f"{options.mode} {level:g}"
                result = run_level(target, options.target, prepared.payload, options, level, progress, label)
                report.levels.append(result)
                on_level(result)
                if result.unreachable:
                    _skip(options.levels[index + 1 :], progress)
                    break
                if floor is not None:
                    # Measured right after the target at the same level, so machine drift hits both alike.
                    floor_levels.append(_floor_level(floor, prepared, options, level, progress))
        if options.baseline:
            report.baselines.append(
                BaselineResult(name="grpc_floor", description=FLOOR_DESCRIPTION, levels=floor_levels)
            )
            if options.model_repository is not None:
                report.baselines.append(_onnxruntime_baseline(prepared, options))
    report.ratios = ratios(report)
    return report


def _skip(levels: tuple[float, ...], progress: Progress) -> None:
    """Say that the levels after a dead server's are not measured (the ones measured so far are reported)."""
    if levels:
        names = ", ".join(f"{level:g}" for level in levels)
        progress.done("stopping", f"levels {names} skipped: the server is unreachable")


def _plain(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, tuple):
        return [_plain(item) for item in value]
    return value
