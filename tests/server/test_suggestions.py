"""server.suggestions: validation errors that say which key, what was wrong, the value, and the likely typo."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from server.model_config import ModelConfig
from server.settings import environment_names, unknown_environment
from server.suggestions import describe, keys_at, nearest


def errors_of(data: dict[str, object]) -> ValidationError:
    with pytest.raises(ValidationError) as caught:
        ModelConfig.model_validate(data)
    return caught.value


def test_an_unknown_key_gets_the_nearest_valid_one() -> None:
    assert describe(errors_of({"batchin": {}}), ModelConfig) == "batchin: unknown key; did you mean 'batching'?"
    text = describe(errors_of({"batching": {"max_queue_sise": 4}}), ModelConfig)
    assert text == "batching.max_queue_sise: unknown key; did you mean 'max_queue_size'?"


def test_an_unknown_key_with_nothing_close_gets_no_guess() -> None:
    assert describe(errors_of({"zzzzzz": 1}), ModelConfig) == "zzzzzz: unknown key"


def test_a_bad_value_shows_what_was_given_and_names_can_be_the_users() -> None:
    error = errors_of({"max_batch_size": -3})
    assert "(got -3)" in describe(error, ModelConfig)
    assert describe(error, ModelConfig, {"max_batch_size": "--flag"}).startswith("--flag: ")


def test_keys_at_follows_nested_sections() -> None:
    assert "max_queue_size" in keys_at(ModelConfig, ("batching", "oops"))
    assert keys_at(ModelConfig, ("max_batch_size", "oops")) == []  # not a section
    assert nearest("instance", ["instances", "runtime"]) == "instances"


def test_mistyped_environment_variables_are_found_with_their_nearest_setting() -> None:
    names = environment_names()
    assert names["SERVER_GRPC_PORT"] == "grpc.port" and names["SERVER_WORKERS"] == "workers"
    environ = {"SERVER_GRCP_PORT": "1", "SERVER_GRPC_PORT": "2", "HOME": "/root", "SERVER_XYZZY_PLUGH": "1"}
    assert unknown_environment(environ) == {"SERVER_GRCP_PORT": "SERVER_GRPC_PORT", "SERVER_XYZZY_PLUGH": None}
