"""Validation of the [routing] section: each mistake named."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from server.routing.config import JudgeConfig, RoutingConfig
from server.routing.sticky import MAX_KEY_BYTES, key_bytes


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"weights": {"1": -5, "2": 10}}, "weights must not be negative"),
        ({"weights": {"1": 0, "2": 0}}, "at least one version needs a positive weight"),
        ({"weights": {"0": 10}}, "keyed by version numbers"),
        ({"weights": {"one": 10}}, "valid integer"),
        ({"weights": {"1": 90, "2": 10}, "shadow": {"version": 2}}, "shadow version 2 also carries weight"),
        ({"weights": {"1": 100}, "shadow": {"version": 2, "fraction": 0}}, "greater than 0"),
        ({"weights": {"1": 1}, "sticky_key": "a\nb"}, "printable"),
        ({"sticky_key": "user_id"}, "need `weights`"),
        ({"judge": {"enabled": True}}, "need `weights`"),
        ({"judge": {"steps": [50, 25]}}, "strictly increase"),
        ({"judge": {"steps": [5, 150]}}, "1..100"),
        ({"judge": {"typo": 1}}, "Extra inputs are not permitted"),
    ],
)
def test_invalid_routing_is_refused_with_the_reason(raw: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        RoutingConfig.model_validate(raw)


def test_toml_style_string_keys_become_versions() -> None:
    config = RoutingConfig.model_validate(
        {"weights": {"1": 90, "2": 10}, "sticky_key": "user_id", "shadow": {"version": 3, "fraction": 0.1}}
    )
    assert config.weights == {1: 90, 2: 10}
    assert config.shadow is not None and config.shadow.version == 3
    assert config.judge == JudgeConfig()


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("alice", b"alice"),
        (42, b"42"),
        (b"\x00\xff", b"\x00\xff"),
        (True, "type"),
        (1.5, "type"),
        ("", "empty"),
        ("x" * (MAX_KEY_BYTES + 1), "length"),
        ("\udcff", b"\xed\xb3\xbf"),  # a lone surrogate from a sloppy client still hashes
    ],
)
def test_sticky_values(value: object, expected: bytes | str) -> None:
    assert key_bytes(value) == expected
