"""server.names and the status-message cap: client text in messages stays short; model names are directory names."""

from __future__ import annotations

import pytest

from server.errors import InvalidInputError
from server.grpc.errors import MAX_MESSAGE_BYTES, capped, status_for
from server.names import MAX_MODEL_NAME_BYTES, check_model_name, shown, shown_names


def test_short_text_is_shown_whole() -> None:
    assert shown("fraud") == "fraud"
    assert shown("x" * 128) == "x" * 128


def test_long_text_is_cut_and_its_size_given() -> None:
    assert shown("x" * 100_000) == "x" * 128 + "… (100000 bytes)"
    assert shown("é" * 200) == "é" * 128 + "… (400 bytes)"


def test_name_lists_stop_after_a_few() -> None:
    assert shown_names(["a", "b"]) == "'a', 'b'"
    listed = shown_names([f"n{i}" for i in range(20)])
    assert listed.endswith("'n7' and 12 more")
    assert len(shown_names(["x" * 100_000] * 1000)) < 8 * 160


@pytest.mark.parametrize("name", ["fraud", "a" * MAX_MODEL_NAME_BYTES, "é" * 127, "with space", ""])
def test_names_a_directory_can_have_pass(name: str) -> None:
    assert check_model_name(name) == name


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("a" * 256, "is 256 bytes long"),
        ("é" * 128, "is 256 bytes long"),  # bytes, not characters: NAME_MAX counts bytes
        ("n" * 100_000, "is 100000 bytes long"),
        ("nul\x00", "NUL character"),
    ],
)
def test_names_no_directory_can_have_are_invalid(name: str, expected: str) -> None:
    with pytest.raises(InvalidInputError, match=expected) as raised:
        check_model_name(name)
    assert len(str(raised.value)) < 400


def test_status_messages_are_capped_in_bytes() -> None:
    assert capped("short") == "short"
    message = capped("é" * 10_000)
    assert len(message.encode()) <= MAX_MESSAGE_BYTES + 32
    assert message.endswith("… (20000 bytes)")
    _, text = status_for(InvalidInputError("x" * 100_000))
    assert len(text.encode()) <= MAX_MESSAGE_BYTES + 32
