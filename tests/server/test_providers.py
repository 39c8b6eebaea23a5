"""server.runtime.providers.choose_providers: preference order with fallback to CPU."""

from __future__ import annotations

import logging

import pytest

from server.runtime.providers import CPU, choose_providers

CUDA = "CUDAExecutionProvider"
TRT = "TensorrtExecutionProvider"
ALL_GPU = [TRT, CUDA, CPU]


def test_default_prefers_cuda_when_available() -> None:
    assert choose_providers([], ALL_GPU) == [CUDA, CPU]


def test_default_never_picks_tensorrt_unasked() -> None:
    assert TRT not in choose_providers([], ALL_GPU)


def test_default_cpu_only_build() -> None:
    assert choose_providers([], [CPU]) == [CPU]


def test_default_does_not_warn(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        choose_providers([], [CPU])
    assert caplog.records == []


def test_requested_order_kept_and_cpu_appended() -> None:
    assert choose_providers([TRT, CUDA], ALL_GPU) == [TRT, CUDA, CPU]
    assert choose_providers([CUDA, TRT], ALL_GPU) == [CUDA, TRT, CPU]


def test_cpu_always_last_even_if_requested_first() -> None:
    assert choose_providers([CPU, CUDA], ALL_GPU) == [CUDA, CPU]
    assert choose_providers([CPU], ALL_GPU) == [CPU]


def test_cpu_appended_even_if_not_listed_as_available() -> None:
    assert choose_providers([], []) == [CPU]


def test_unavailable_requested_providers_skipped_with_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="server.runtime.providers"):
        chosen = choose_providers(["ROCMExecutionProvider", CUDA, TRT], [CUDA, CPU])
    assert chosen == [CUDA, CPU]
    (record,) = caplog.records
    assert record.levelno == logging.WARNING
    assert record.missing == ["ROCMExecutionProvider", TRT]  # type: ignore[attr-defined]
    assert record.available == [CUDA, CPU]  # type: ignore[attr-defined]


def test_all_requested_unavailable_falls_back_to_cpu() -> None:
    assert choose_providers([CUDA, TRT], [CPU]) == [CPU]


def test_does_not_mutate_arguments() -> None:
    requested, available = (CUDA,), [CUDA, CPU]
    choose_providers(requested, available)
    assert requested == (CUDA,)
    assert available == [CUDA, CPU]
