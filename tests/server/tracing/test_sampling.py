"""server.tracing.sampling: the SDK samplers' decisions, made before any span exists."""

from __future__ import annotations

import pytest
from opentelemetry.trace import get_current_span
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from server.tracing.sampling import RATIO_SPACE, SamplingPolicy, parent_sampled, sampling_policy

TRACE, SPAN = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"


@pytest.mark.parametrize(
    ("name", "arg", "expected"),
    [
        ("always_on", None, SamplingPolicy(RATIO_SPACE, parent_based=False)),
        ("always_off", 0.5, SamplingPolicy(0, parent_based=False)),
        ("traceidratio", None, SamplingPolicy(RATIO_SPACE, parent_based=False)),
        ("traceidratio", 0.25, SamplingPolicy(RATIO_SPACE // 4, parent_based=False)),
        ("parentbased_always_on", None, SamplingPolicy(RATIO_SPACE, parent_based=True)),
        ("parentbased_always_off", None, SamplingPolicy(0, parent_based=True)),
        ("parentbased_traceidratio", 0.01, SamplingPolicy(round(0.01 * RATIO_SPACE), parent_based=True)),
    ],
)
def test_each_sampler_name_becomes_a_policy(name: str, arg: float | None, expected: SamplingPolicy) -> None:
    assert sampling_policy(name, arg) == expected


def test_an_unknown_sampler_is_refused() -> None:
    with pytest.raises(ValueError, match="jaeger_remote"):
        sampling_policy("jaeger_remote", None)


def test_parent_based_policies_follow_the_callers_flag_and_others_ignore_it() -> None:
    off = sampling_policy("parentbased_always_off", None)
    assert off.sampled(True) and not off.sampled(False) and not off.sampled(None)
    on = sampling_policy("parentbased_always_on", None)
    assert on.sampled(None) and on.sampled(True) and not on.sampled(False)
    assert sampling_policy("always_on", None).sampled(False)
    assert not sampling_policy("always_off", None).sampled(True)


def test_a_ratio_samples_that_share_of_roots() -> None:
    policy = sampling_policy("parentbased_traceidratio", 0.25)
    share = sum(policy.sampled(None) for _ in range(20_000)) / 20_000
    assert 0.22 < share < 0.28  # 0.25 +- 8 standard deviations
    assert not any(sampling_policy("traceidratio", 0.0).sampled(None) for _ in range(1000))


@pytest.mark.parametrize(
    "value",
    [
        f"00-{TRACE}-{SPAN}-01",
        f"00-{TRACE}-{SPAN}-00",
        f" 00-{TRACE}-{SPAN}-03 ",
        f"01-{TRACE}-{SPAN}-01-future-part",
        f"00-{TRACE}-{SPAN}-01-extra",  # version 00 has no extra part
        f"ff-{TRACE}-{SPAN}-01",
        f"00-{'0' * 32}-{SPAN}-01",
        f"00-{TRACE}-{'0' * 16}-01",
        f"00-{TRACE.upper()}-{SPAN}-01",
        "garbage",
        "",
    ],
)
def test_the_flag_is_read_wherever_the_w3c_propagator_accepts_the_header(value: str) -> None:
    context = TraceContextTextMapPropagator().extract({"traceparent": value})
    accepted = get_current_span(context).get_span_context()
    expected = bool(accepted.trace_flags.sampled) if accepted.is_valid else None
    assert parent_sampled(value) == expected
