"""A student's stages copied between run directories that trained them the same way.

``mind_mirror`` cells of one seed at several N train the same self-evaluation stage (its rows
are every judged CoT whatever N, its length ``stage1_epochs``): a cell whose sibling finished
that stage with the same settings takes a copy instead of training it again. The copy leaves
``student/adopted.json`` (the sibling's name and the copied stage's seconds), so the cell's
record names it (``adopted_from``) and the seconds are counted once.
"""

from __future__ import annotations

import filecmp
import json
import os
import shutil
from collections.abc import Iterable
from pathlib import Path

from mindmirror.cell_records import ADOPTED
from mindmirror.config import Recipe
from mindmirror.files import write_atomic
from mindmirror.rundir import RunDir
from mindmirror.student.train import settings_changed, stage_settings

#: The stage the ``mind_mirror`` cells of one seed share.
STAGE1 = "evaluation"


def copy_moved(source: Path, staging: Path, spellings: Iterable[str], target: Path) -> None:
    """Copy the folder ``source`` (without checkpoints) to ``staging``, every path of the
    source's run directory in its JSON files (as ``spellings`` spell it) moved to ``target``."""
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(source, staging, ignore=shutil.ignore_patterns("checkpoints"))
    longest_first = sorted(set(spellings), key=len, reverse=True)
    for path in staging.rglob("*.json"):
        text = original = path.read_text(encoding="utf-8")
        for spelling in longest_first:
            text = text.replace(spelling, str(target))
        if text != original:
            path.write_text(text, encoding="utf-8")


def same_records(first: Path, second: Path) -> bool:
    """Whether two teacher record files both exist and hold the same bytes."""
    return first.is_file() and second.is_file() and filecmp.cmp(first, second, shallow=False)


def _finished_as(cell: RunDir, settings: dict[str, object], records: Path) -> bool:
    """Whether ``cell`` finished its stage 1 with ``settings`` on the teacher records in
    ``records`` (the settings first: reading two record files costs more)."""
    folder = cell.stage(STAGE1)
    if not ((folder / "result.json").is_file() and (folder / "best").is_dir()):
        return False
    made = json.loads((folder / "settings.json").read_text(encoding="utf-8"))
    return not settings_changed(made, settings) and same_records(cell.records, records)


def share_stage1(run: RunDir, sub: RunDir, resolved: Recipe) -> str | None:
    """Give the cell ``sub`` of the grid ``run`` (recipe ``resolved``) the stage 1 of a sibling
    cell that trained it with the same settings (seed, task, starting weights, ``train:``) on
    the same teacher records, when ``sub`` has none finished; return the sibling's name, or
    None when nothing was copied."""
    folder = sub.stage(STAGE1)
    if (folder / "result.json").is_file() or (sub.student / ADOPTED).is_file():
        return None
    settings = stage_settings(resolved, STAGE1, resolved.train.student)
    siblings = sorted(p for p in run.cells.glob("*") if p.is_dir() and p != sub.root)
    found = (RunDir(p) for p in siblings if _finished_as(RunDir(p), settings, sub.records))
    source = next(found, None)
    if source is None:
        return None
    staging = sub.student / f"{STAGE1}.adopting"
    spellings = {str(source.root), str(source.root.resolve())}
    copy_moved(source.stage(STAGE1), staging, spellings, sub.root)
    shutil.rmtree(folder, ignore_errors=True)  # an unfinished stage 1, superseded
    os.replace(staging, folder)
    seconds = json.loads((folder / "result.json").read_text(encoding="utf-8"))["train_seconds"]
    copied = {"from": source.root.name, "train_seconds": {STAGE1: seconds}}
    write_atomic(sub.student / ADOPTED, json.dumps(copied))
    return source.root.name
