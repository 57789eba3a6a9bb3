"""Shared building blocks of the recipe schema: the strict base model and split names."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

SplitName = Literal["train", "validation", "test"]


class Strict(BaseModel):
    """Base model: unknown keys are errors, values are re-validated on assignment."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)
