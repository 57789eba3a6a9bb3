"""The run directory: one folder holds everything a run made (DESIGN.md, "Flow and artifacts")."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class RunDir:
    """Paths inside ``runs/<name>/``; creating the object touches nothing on disk."""

    root: Path

    @property
    def recipe(self) -> Path:
        return self.root / "recipe.yaml"

    @property
    def teacher(self) -> Path:
        return self.root / "teacher"

    @property
    def cache(self) -> Path:
        return self.teacher / "cache.sqlite"

    @property
    def records(self) -> Path:
        return self.teacher / "records.jsonl"

    @property
    def summary(self) -> Path:
        return self.teacher / "summary.json"

    @property
    def student(self) -> Path:
        return self.root / "student"

    @property
    def evaluation(self) -> Path:
        return self.root / "eval"

    @property
    def plots(self) -> Path:
        return self.root / "plots"

    @property
    def cells(self) -> Path:
        return self.root / "cells"

    def stage(self, name: str) -> Path:
        """Folder of one training stage, e.g. ``student/stage1``."""
        return self.student / name

    def cell(self, name: str) -> RunDir:
        """The run directory of one experiment cell, e.g. ``cells/multi_cot-n5-s0``."""
        return RunDir(self.cells / name)
