"""A run's student taken from another run that trained it the same way.

Training the same stages from the same seed with the same settings on the same teacher records
twice costs CPU-hours and gives the same student. The SVAMP protocol's seed-0 cells take their
chosen tuning training's student (``svamp_repro.py``), and the own-CoT judge benchmark takes the
protocol's ``mind_mirror`` cells' (``own_judge.py``). The copy leaves ``student/adopted.json``
(what it came from and its stages' seconds), so records name it (``adopted_from``) and the
seconds are counted once; training checks the copied stages' settings as for any resume.
"""

from __future__ import annotations

import filecmp
import json
import os
import shutil
from pathlib import Path

import yaml

from mindmirror.cell_records import ADOPTED
from mindmirror.rundir import RunDir


def adopt_student(source: RunDir, target: RunDir, name: str, records: Path) -> bool:
    """Copy ``source``'s trained student (without checkpoints) to ``target``, its paths moved to
    ``target``; ``name`` is what ``adopted.json`` says it came from, ``records`` the teacher
    records ``target`` trains on. Nothing is copied (False) when ``target`` has a student,
    ``source`` has not finished training, or its teacher records differ from ``records``
    (taught again since)."""
    summary = source.student / "train.json"
    if target.student.exists() or not summary.is_file():
        return False
    if not filecmp.cmp(source.records, records, shallow=False):
        return False
    # The paths as the source spelled them (its run_dir) and as the target spells them.
    made = yaml.safe_load(json.loads(summary.read_text(encoding="utf-8"))["recipe"])
    spellings = {made["run_dir"], str(source.root), str(source.root.resolve())}
    staging = target.root / "student.adopting"
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(source.student, staging, ignore=shutil.ignore_patterns("checkpoints"))
    for path in staging.rglob("*.json"):
        text = original = path.read_text(encoding="utf-8")
        for spelling in sorted(spellings, key=len, reverse=True):
            text = text.replace(spelling, str(target.root))
        if text != original:
            path.write_text(text, encoding="utf-8")
    # What was copied: a stage trained again there later is no longer the source's.
    stages = json.loads(summary.read_text(encoding="utf-8"))["stages"]
    copied = {"from": name, "train_seconds": {k: v["train_seconds"] for k, v in stages.items()}}
    (staging / ADOPTED).write_text(json.dumps(copied), encoding="utf-8")
    os.replace(staging, target.student)  # a kill before this leaves no half-copied student
    return True
