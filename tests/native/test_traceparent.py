"""With tracing on, the native path makes the sampling decision itself (native/src/fast_path.cpp), so it reads a
caller's traceparent: it must accept exactly what server.tracing.sampling.parent_sampled (the OpenTelemetry
propagator's grammar) accepts, and read the same sampled flag."""

from __future__ import annotations

from types import ModuleType

from hypothesis import given, settings
from hypothesis import strategies as st

from server.tracing.sampling import parent_sampled

HEX = "0123456789abcdef"


def hex_text(size: int) -> st.SearchStrategy[str]:
    return st.text(alphabet=HEX, min_size=size, max_size=size)


# Mostly well-formed values, with the fields the grammar cares about varied: versions (00, ff, others), zero ids,
# upper-case hex, flags, trailing parts, surrounding blanks and newlines (Python's `$` matches before a final one),
# and now and then a field of the wrong length.
traceparents = st.builds(
    lambda blank, version, trace, span, flags, rest, tail: f"{blank}{version}-{trace}-{span}-{flags}{rest}{tail}",
    st.sampled_from(["", " ", "\t", "  \t"]),
    st.one_of(st.sampled_from(["00", "01", "ff", "cc", "0A"]), hex_text(2), st.text(max_size=3)),
    st.one_of(hex_text(32), st.just("0" * 32), hex_text(31), st.just("4BF92F3577B34DA6A3CE929D0E0E4736")),
    st.one_of(hex_text(16), st.just("0" * 16), hex_text(17)),
    st.one_of(st.sampled_from(["00", "01", "03", "ff", "0f", "1"]), hex_text(2)),
    st.one_of(st.just(""), st.just("-"), st.just("-what-ever"), st.just("-a\nb"), st.text(max_size=6)),
    st.sampled_from(["", " ", "\t", "x", "\n", " \n", "\n\n", "\n "]),
)


@settings(max_examples=800, deadline=None, database=None)
@given(value=st.one_of(traceparents, st.text(max_size=70)))
def test_the_decision_is_the_propagators(native: ModuleType, value: str) -> None:
    assert native.parent_sampled(value) == parent_sampled(value)


def test_known_values(native: ModuleType) -> None:
    valid = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    assert native.parent_sampled(valid) is True
    assert native.parent_sampled(valid[:-2] + "00") is False
    assert native.parent_sampled(" " + valid + "\t") is True
    assert native.parent_sampled(valid + "-extra") is None  # version 00 has nothing after the flags
    assert native.parent_sampled("01" + valid[2:] + "-extra") is True
    assert native.parent_sampled("ff" + valid[2:]) is None
    assert native.parent_sampled(valid.upper()) is None
    assert native.parent_sampled(valid + "\n") is True  # as Python's re: `$` matches before a final newline
    assert native.parent_sampled(valid + "\n\n") is None
