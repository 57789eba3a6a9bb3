"""Shared building blocks of the recipe schema: the strict base model and split names."""

from __future__ import annotations

import types
from collections.abc import Iterable
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, ConfigDict, ValidationInfo, field_validator

SplitName = Literal["train", "validation", "test"]


def _arms(annotation: Any) -> tuple[Any, ...]:
    """The plain types a field accepts: unions split, ``Annotated`` metadata dropped."""
    origin = get_origin(annotation)
    if origin is Annotated:
        return _arms(get_args(annotation)[0])
    if origin in (Union, types.UnionType):
        return tuple(arm for arg in get_args(annotation) for arm in _arms(arg))
    return (annotation,)


def misplaced_bool(annotation: Any, value: Any) -> bool:
    """Whether ``value`` holds a bool where ``annotation`` wants a number (int or float), at
    any depth of its dicts and lists; pydantic's lax mode would read it as 1 or 0."""
    arms = _arms(annotation)
    if isinstance(value, bool):
        return any(arm in (int, float) for arm in arms) and bool not in arms
    for arm in arms:
        origin, args = get_origin(arm), get_args(arm)
        if origin is dict and isinstance(value, dict) and args:
            return any(misplaced_bool(args[1], v) for v in value.values())
        if origin is list and isinstance(value, list) and args:
            return any(misplaced_bool(args[0], v) for v in value)
    return False


class Strict(BaseModel):
    """Base model: unknown keys are errors, values are re-validated on assignment, and a
    true/false where a number belongs is an error rather than 1/0."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    @field_validator("*", mode="before")
    @classmethod
    def _no_bool_for_numbers(cls, value: Any, info: ValidationInfo) -> Any:
        field = cls.model_fields.get(info.field_name or "")
        if field is not None and misplaced_bool(field.annotation, value):
            raise ValueError("true/false where a number belongs: give a number")
        return value


def settings_differ(
    made: dict[str, Any], now: dict[str, Any], defaults: dict[str, Any], ignored: Iterable[str]
) -> list[str]:
    """The fields in which recorded settings (``made``) differ from ``now`` (JSON dumps of one
    config section), the ``ignored`` fields left out. A field one side does not hold (added to
    the config since) counts as its value in ``defaults``: new options default to the
    behaviour before them."""
    return sorted(
        key
        for key in {*made, *now} - set(ignored)
        if made.get(key, defaults.get(key)) != now.get(key, defaults.get(key))
    )
