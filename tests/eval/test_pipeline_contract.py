"""The training/inference contract end to end: `train` (mind_mirror, two stages) on a tiny
Llama, then `evaluate`, `predict` and `report` on what it left in the run directory.

This is a memorisation check of formats, not a measure of generalisation: the two test
questions are the two training questions (the test split of the task file repeats them).
Validation runs once, at the last step, so the checkpoint chosen is the fitted one.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mindmirror.config import recipe_from_dict
from mindmirror.evaluate import evaluate
from mindmirror.predict import predict
from mindmirror.records import Cot, Evaluation, Record, TeacherInfo, write_records
from mindmirror.reporting.report import report
from mindmirror.rundir import RunDir
from mindmirror.student.train import train
from tests.eval.conftest import COT_RIGHT, COT_WRONG, Q_RIGHT, Q_WRONG
from tests.eval.tiny import save_tiny_student

pytestmark = pytest.mark.slow


def records() -> list[Record]:
    info = TeacherInfo(model="t", backend="import", evaluator="teacher")
    out = []
    for split in ("train", "validation"):
        for i, (q, gold, cot, answer, ok) in enumerate(
            [
                (Q_RIGHT, "( 3.0 + 4.0 )", COT_RIGHT, "(3 + 4)", True),
                (Q_WRONG, "( 12.0 - 4.0 )", COT_WRONG, "(12 + 4)", False),
            ]
        ):
            verdict = "correct" if ok else "wrong"
            evaluation = Evaluation(text=f"It is {verdict}.", verdict=verdict, parsed=True)
            cots = [Cot(text=cot, answer=answer, parsed=True, correct=ok, evaluations=[evaluation])]
            out.append(
                Record(
                    id=f"{split}-{i}", split=split, question=q, gold=gold, cots=cots, teacher=info
                )
            )
    return out


def test_trained_student_is_evaluated_predicted_and_reported(tmp_path: Path) -> None:
    student = save_tiny_student(tmp_path / "init", seq2seq=False)
    data = tmp_path / "data"
    data.mkdir()
    rows = [
        {"question": Q_RIGHT, "answer": "( 3.0 + 4.0 )"},
        {"question": Q_WRONG, "answer": "( 12.0 - 4.0 )"},
    ]
    (data / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (data / "train.jsonl").write_text(json.dumps({"question": "1 + 1?", "answer": "2"}) + "\n")
    run = RunDir(tmp_path / "run")
    write_records(run.records, records())
    recipe = recipe_from_dict(
        {
            "run_dir": str(run.root),
            "task": {"name": "generic", "family": "equation", "path": str(data)},
            "train": {
                "method": "mind_mirror",
                "student": str(student),
                "explain_target": "cot",
                "max_steps": 250,
                "scheduler": "constant",
                "eval_steps": 250,
                "batch_size": 8,
                "learning_rate": 3e-3,
                "num_cots": 1,
                "num_evals": 1,
                "eval_max_new_tokens": 24,
            },
            "eval": {"num_samples": 3, "temperature": 0.5, "max_new_tokens": 24, "bootstrap": 100},
        }
    )
    train(recipe, run, quiet=True)

    metrics = evaluate(recipe, run, quiet=True)
    assert metrics["method"] == "mind_mirror"
    # Stage 2 trains reasoning only; the stage-1 student judges the samples (eval.judge: auto).
    assert metrics["judge"] == "stage-1 student"
    assert metrics["modes"]["cot"]["accuracy"] == 0.5
    assert metrics["modes"]["answer"]["parse_rate"] == 1.0
    mirror = metrics["modes"]["mirror"]
    assert (mirror["coverage"], mirror["selective_accuracy"]) == (0.5, 1.0)

    assert predict(run.root, [Q_RIGHT])[0].mode == "cot"  # serve.mode, the shared default
    right, wrong = predict(run.root, [Q_RIGHT, Q_WRONG], "mirror")
    assert (right.mode, right.verdict, right.abstained) == ("mirror", "correct", False)
    assert (wrong.verdict, wrong.abstained) == ("wrong", True)

    html = report(run).read_text()
    assert html.count("data:image/png;base64,") >= 3
