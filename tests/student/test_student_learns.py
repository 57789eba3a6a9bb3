"""A small student learns: it fits 32 real SVAMP questions (a memorisation check).

Honest naming: the validation records here are the *same 32 training questions* (copied into
the validation split), so the accuracy measures fitting the training set, not generalisation.
It shows that rows, loss, optimisation and answer scoring work together on real questions.
"""

from __future__ import annotations

import json

from mindmirror.config import recipe_from_dict
from mindmirror.records import Record, TeacherInfo, write_records
from mindmirror.rundir import RunDir
from mindmirror.student.train import train
from tests.conftest import shared_path

from .conftest import save_tiny_student


def svamp_records(count: int) -> list[Record]:
    """The first ``count`` SVAMP training questions with gold, as train and validation records."""
    path = shared_path("svamp", "dss", "svamp_train.json")
    rows = [json.loads(line) for line in path.read_text().splitlines()[:count]]
    info = TeacherInfo(model="none", backend="import")
    return [
        Record(
            id=f"svamp-{split}-{i}",
            split=split,
            question=row["input"],
            gold=row["label"],
            cots=[],
            teacher=info,
        )
        for split in ("train", "validation")
        for i, row in enumerate(rows)
    ]


def test_tiny_t5_fits_32_svamp_questions(tmp_path) -> None:
    records = svamp_records(32)
    texts = [r.question for r in records[:32]] + [f"The answer is {r.gold}." for r in records]
    student = save_tiny_student("seq2seq", tmp_path / "student", texts, width=64)
    run = RunDir(tmp_path / "run")
    write_records(run.records, records)
    recipe = recipe_from_dict(
        {
            "run_dir": str(run.root),
            "seed": 0,
            "task": {"name": "svamp"},
            "train": {
                "method": "standard",
                "student": str(student),
                "max_steps": 300,
                "eval_steps": 150,
                "batch_size": 8,
                "learning_rate": 3e-3,
                "warmup": 0.05,
                "eval_batch_size": 32,
                "eval_max_new_tokens": 24,
            },
        }
    )
    summary = train(recipe, run, quiet=True)
    accuracy = summary["stages"]["reasoning"]["best_metric"]["eval_accuracy"]
    curve = json.loads((run.stage("reasoning") / "curve.json").read_text())
    assert curve[0]["eval_items"] == 32
    assert accuracy >= 0.9, curve
