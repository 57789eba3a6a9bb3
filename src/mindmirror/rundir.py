"""The run directory: one folder holds everything a run made (DESIGN.md, "Flow and artifacts")."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mindmirror.errors import UserError


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


def usable_run_dir(root: Path) -> RunDir:
    """The run directory at ``root``, refused (UserError) when ``root`` or a folder above it is
    a file, which would stop every command at its first write; nothing is created."""
    for folder in (root, *root.parents):
        if folder.is_dir():
            break
        if folder.exists():
            raise UserError(
                f"run directory {root}: {folder} is a file, not a folder; set run_dir (or "
                "name) to a folder path"
            )
    return RunDir(root)
