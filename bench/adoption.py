"""A run's student taken from another run that trained it the same way.

Training the same stages from the same seed with the same settings on the same teacher records
twice costs CPU-hours and gives the same student. The SVAMP protocol's seed-0 cells take their
chosen tuning training's student (``svamp_repro.py``), and the own-CoT judge benchmark takes the
protocol's ``mind_mirror`` cells' (``own_judge.py``). The copy leaves ``student/adopted.json``
(what it came from and its stages' seconds), so records name it (``adopted_from``) and the
seconds are counted once; training checks the copied stages' settings as for any resume.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import yaml

from mindmirror.cell_records import ADOPTED
from mindmirror.config import Recipe
from mindmirror.config.train import train_settings_differ
from mindmirror.rundir import RunDir
from mindmirror.stage_copy import copy_moved, same_records


def adopt_student(source: RunDir, target: RunDir, name: str) -> bool:
    """Copy ``source``'s trained student (without checkpoints) to ``target``, its paths moved to
    ``target``; ``name`` is what ``adopted.json`` says it came from. The caller has checked
    that both train on the same teacher records. Nothing is copied (False) when ``target`` has
    a student or ``source`` has not finished training."""
    summary = source.student / "train.json"
    if target.student.exists() or not summary.is_file():
        return False
    # The paths as the source spelled them (its run_dir) and as the target spells them.
    made = yaml.safe_load(json.loads(summary.read_text(encoding="utf-8"))["recipe"])
    spellings = {made["run_dir"], str(source.root), str(source.root.resolve())}
    staging = target.root / "student.adopting"
    copy_moved(source.student, staging, spellings, target.root)
    # What was copied: a stage trained again there later is no longer the source's.
    stages = json.loads(summary.read_text(encoding="utf-8"))["stages"]
    copied = {"from": name, "train_seconds": {k: v["train_seconds"] for k, v in stages.items()}}
    (staging / ADOPTED).write_text(json.dumps(copied), encoding="utf-8")
    os.replace(staging, target.student)  # a kill before this leaves no half-copied student
    return True


def adopt_protocol_student(source: RunDir, records: Path, sub: RunDir, cell: Recipe) -> str:
    """Give an own-CoT judge cell (``sub``, recipe ``cell``) the student of the protocol's cell
    of the same seed (``source``, trained on ``records``: the protocol run's teacher records,
    which its cells link to) when that cell trained it the same way: the same ``train:``
    settings but the own-CoT judge and the answer calibration (made after both stages), the
    same seed, task and teacher records. Returns what happened, for the log."""
    summary = source.student / "train.json"
    if sub.student.exists():
        return f"{sub.root.name} has a student already"
    if not summary.is_file():
        return f"{source.root} has no finished student: training it here"
    made = yaml.safe_load(json.loads(summary.read_text(encoding="utf-8"))["recipe"])
    mine = cell.train.model_dump(mode="json")
    after = ("own_judge", "answer_confidence")  # fitted after both stages
    differ = train_settings_differ(
        {k: v for k, v in made["train"].items() if k not in after},
        {k: v for k, v in mine.items() if k not in after},
    )
    if made["seed"] != cell.seed:
        differ.append("seed")
    if made["task"] != cell.task.model_dump(mode="json", by_alias=True):
        differ.append("task")
    if differ:
        return f"{source.root} trained otherwise ({', '.join(differ)} differ): training here"
    if not same_records(records, sub.records):
        return f"{source.root} trained on other teacher records: training here"
    name = f"{source.root.parent.parent.name}/{source.root.name}"
    adopt_student(source, sub, name)
    return f"{sub.root.name} takes the student of {name} (the same training)"
