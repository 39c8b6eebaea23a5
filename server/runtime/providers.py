"""Choosing ONNX Runtime execution providers, with fallback to CPU."""

from __future__ import annotations

import logging
from collections.abc import Sequence

log = logging.getLogger(__name__)

CPU = "CPUExecutionProvider"
#: Default preference when a model does not name providers. TensorRT builds engines
#: on first use (slow, memory hungry), so it is used only when asked for.
DEFAULT_PREFERENCE = ("CUDAExecutionProvider", CPU)


def choose_providers(requested: Sequence[str], available: Sequence[str]) -> list[str]:
    """Requested providers that this onnxruntime build has, in order, always ending with CPU."""
    wanted = list(requested) or list(DEFAULT_PREFERENCE)
    missing = [name for name in wanted if name not in available]
    if requested and missing:
        log.warning(
            "execution providers not available in this onnxruntime build, skipped",
            extra={"missing": missing, "available": list(available)},
        )
    chosen = [name for name in wanted if name in available and name != CPU]
    chosen.append(CPU)
    return chosen
