"""Number formatting and a fixed-width text table, shared by the terminal, Markdown and compare outputs."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from loadtest.results import LevelResult

MODE_ORDER = ("closed", "open")


def format_level(value: float) -> str:
    """A concurrency or rate without a spurious `.0`: 64 -> "64", 12.5 -> "12.5"."""
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def format_number(value: float | None, digits: int = 1) -> str:
    """A number with thousands separators, or "-" when missing."""
    return "-" if value is None else f"{value:,.{digits}f}"


def format_ms(value: float | None) -> str:
    """A latency in milliseconds with precision that suits its size, or "-"."""
    if value is None:
        return "-"
    if value >= 100:
        return f"{value:,.0f}"
    return f"{value:.2f}" if value >= 1 else f"{value:.3f}"


def format_ratio(numerator: float | None, denominator: float | None) -> str:
    """`numerator / denominator` to two decimals, or "-" when either is missing or the denominator is zero."""
    if numerator is None or denominator is None or denominator == 0:
        return "-"
    return f"{numerator / denominator:.2f}"


def format_errors(errors_by_code: Mapping[str, int]) -> str:
    """ "UNAVAILABLE=3, DEADLINE_EXCEEDED=1" (most frequent first), or "0"."""
    counts = sorted(((code, n) for code, n in errors_by_code.items() if n), key=lambda item: (-item[1], item[0]))
    return ", ".join(f"{code}={n}" for code, n in counts) if counts else "0"


def sorted_levels(levels: Sequence[LevelResult]) -> list[LevelResult]:
    """Closed-loop levels first, then open-loop, then any other mode; ascending level within a mode."""

    def key(level: LevelResult) -> tuple[int, str, float]:
        rank = MODE_ORDER.index(level.mode) if level.mode in MODE_ORDER else len(MODE_ORDER)
        return rank, level.mode, level.level

    return sorted(levels, key=key)


def text_table(headers: Sequence[str], rows: Sequence[Sequence[str]], left_columns: int = 1) -> str:
    """A fixed-width table: the first `left_columns` columns left-aligned, the rest right-aligned."""
    widths = [len(header) for header in headers]
    for row in rows:
        widths = [max(width, len(cell)) for width, cell in zip(widths, row, strict=True)]

    def line(cells: Sequence[str]) -> str:
        parts = [
            cell.ljust(width) if index < left_columns else cell.rjust(width)
            for index, (cell, width) in enumerate(zip(cells, widths, strict=True))
        ]
        return "  ".join(parts).rstrip()

    rule = "  ".join("-" * width for width in widths)
    return "\n".join([line(headers), rule, *(line(row) for row in rows)])


#: What each baseline's number is, in the ratio legend.
_REFERENCES = {
    "grpc_floor": "the bare grpc.aio server's (Python gRPC floor)",
    "onnxruntime": "in-process ONNX Runtime's (compute ceiling, no gRPC)",
}
_TAGS = {"c": "concurrency N", "r": "offered rate N req/s"}


def ratio_legend(names: Iterable[str]) -> list[str]:
    """One line per kind of ratio among `names` (as `runner.ratios` names them) saying what it divides by what."""
    lines: dict[str, str] = {}
    for name in names:
        head, _, tag = name.partition("@")
        kind, _, baseline = head.partition("/")
        reference = _REFERENCES.get(baseline, f"{baseline}'s")
        if kind == "target" and tag[:1] in _TAGS:
            key = f"{head}@{tag[0]}N"
            lines.setdefault(key, f"{key} = our requests/s divided by {reference} at {_TAGS[tag[0]]}")
        elif kind == "target_best" and tag.startswith("batch"):
            key = f"{head}@batchB"
            lines.setdefault(key, f"{key} = our best inferences/s divided by {reference} at batch size B")
    return list(lines.values())
