"""Readable validation errors: the key, what was wrong, the value given, and the nearest valid key for a typo."""

from __future__ import annotations

import difflib
import types
import typing
from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import BaseModel, ValidationError


def nearest(word: str, choices: Iterable[str]) -> str | None:
    """The choice closest to `word`, if any is close enough to be the one meant."""
    matches = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return matches[0] if matches else None


def _model_of(annotation: Any) -> type[BaseModel] | None:
    """The BaseModel subclass an annotation holds, directly or inside `X | None`."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        for argument in typing.get_args(annotation):
            model = _model_of(argument)
            if model is not None:
                return model
    return None


def keys_at(model: type[BaseModel], location: tuple[int | str, ...]) -> list[str]:
    """The field names valid at `location` (the path of the offending key) inside `model`."""
    current = model
    for part in location[:-1]:
        field = current.model_fields.get(str(part))
        nested = None if field is None else _model_of(field.annotation)
        if nested is None:
            return []
        current = nested
    return list(current.model_fields)


def describe(error: ValidationError, model: type[BaseModel], names: Mapping[str, str] | None = None) -> str:
    """One line per problem: `where: what (got value)`, with "did you mean" for an unknown key.

    `names` maps a dotted location to what the user typed it as (a flag or an environment variable)."""
    lines = []
    for item in error.errors():
        location = tuple(item["loc"])
        where = ".".join(str(part) for part in location) or "(top level)"
        shown = names.get(where, where) if names else where
        if item["type"] == "extra_forbidden":
            guess = nearest(str(location[-1]), keys_at(model, location)) if location else None
            hint = f"; did you mean '{guess}'?" if guess else ""
            lines.append(f"{shown}: unknown key{hint}")
            continue
        given = item.get("input")
        got = "" if isinstance(given, Mapping) else f" (got {given!r})"
        lines.append(f"{shown}: {item['msg']}{got}")
    return "; ".join(lines)
