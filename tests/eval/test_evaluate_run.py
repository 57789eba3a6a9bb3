"""`evaluate` over a run directory: a saved tiny student, a real generic task, real records."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from pathlib import Path

import pytest

from mindmirror.errors import UserError
from mindmirror.evaluate import evaluate, summary_lines
from mindmirror.student.answer_confidence import ANSWER_CONFIDENCE_FILE, AnswerCalibration
from tests.eval.conftest import Fitted, write_run


def test_evaluate_writes_predictions_and_metrics(tmp_path: Path, fitted_student: Fitted) -> None:
    recipe, run = write_run(tmp_path, fitted_student)
    metrics = evaluate(recipe, run, quiet=True)

    saved = json.loads((run.evaluation / "metrics.json").read_text())
    assert saved == json.loads(json.dumps(metrics))
    assert (saved["name"], saved["split"], saved["questions"]) == ("tiny", "test", 2)
    if sys.platform == "linux":  # the scoring process's own peak, the loaded student's at least
        assert saved["peak_rss_mb"] > 0
    modes = saved["modes"]
    assert list(modes) == ["answer", "cot", "vote", "mirror"]
    for mode in ("answer", "cot", "vote"):
        # The student memorised a right CoT for one question and a wrong one for the other.
        assert modes[mode]["accuracy"] == 0.5
        assert modes[mode]["parse_rate"] == 1.0
        assert modes[mode]["answers_per_s"] > 0
        assert modes[mode]["low"] <= 0.5 <= modes[mode]["high"]
    mirror = modes["mirror"]
    assert (mirror["accuracy"], mirror["coverage"], mirror["selective_accuracy"]) == (0.5, 0.5, 1.0)
    # Its own verdicts rank the right answer first: full accuracy at half coverage.
    assert mirror["risk_coverage"][0] == {"coverage": 0.5, "accuracy": 1.0}
    assert mirror["aurc"] == 0.25
    assert mirror["at_coverage"] == {"0.5": 1.0, "0.8": 0.5}
    assert mirror["aurc_low"] <= mirror["aurc"] <= mirror["aurc_high"]
    # No separate stage-1 student here: the student judges itself, and says so.
    assert mirror["judge"] == "the student itself" and "mirror_final" not in modes
    # Its P(correct) on its own sampled CoTs ranks right samples above wrong ones.
    assert mirror["own_cots"]["samples"] == 6 and mirror["own_cots"]["auroc"] > 0.5

    agree = saved["self_evaluation"]
    assert (agree["cots"], agree["teacher"], agree["gold"], agree["auroc"]) == (2, 1.0, 1.0, 1.0)
    assert agree["teacher_source"] == ["teacher"]

    lines = (run.evaluation / "predictions.jsonl").read_text().splitlines()
    rows = [json.loads(line) for line in lines]
    assert len(rows) == 8
    mirror_rows = [r for r in rows if r["mode"] == "mirror"]
    assert [r["abstained"] for r in mirror_rows] == [False, True]
    assert [r["correct"] for r in mirror_rows] == [True, False]
    assert {"id", "gold", "question", "answer", "confidence", "verdict", "cot", "samples"} <= set(
        mirror_rows[0]
    )
    line = next(line for line in summary_lines(metrics) if "mirror:" in line)
    assert (
        "at full coverage" in line and "answers 50%" in line and "most confident 50% 100.0%" in line
    )


def test_a_calibrated_answer_mode_says_so_and_reports_its_coverage(
    tmp_path: Path, fitted_causal: Fitted
) -> None:
    recipe, run = write_run(tmp_path, fitted_causal)
    raw = evaluate(recipe, run, modes=["answer"], quiet=True)["modes"]["answer"]
    assert "coverage" not in raw and "calibration" not in raw
    raw_rows = [json.loads(x) for x in (run.evaluation / "predictions.jsonl").open()]
    # A calibration beside the final student (train.answer_confidence fits it there).
    model = AnswerCalibration(slope=2.0, intercept=-1.0, threshold=0.5, target_accuracy=0.8,
                              fitted_on=2)  # fmt: skip
    model.save(run.stage("stage2") / "best" / ANSWER_CONFIDENCE_FILE)
    calibrated = evaluate(recipe, run, modes=["answer"], quiet=True)["modes"]["answer"]
    assert calibrated["calibration"] == asdict(model)
    assert calibrated["accuracy"] == raw["accuracy"] and 0 <= calibrated["coverage"] <= 1
    rows = [json.loads(x) for x in (run.evaluation / "predictions.jsonl").open()]
    for row, before in zip(rows, raw_rows, strict=True):
        assert row["confidence"] == pytest.approx(model.confidence(before["confidence"]))
        assert row["abstained"] == (row["confidence"] < 0.5)
    answered = [r["correct"] for r in rows if not r["abstained"]]
    assert calibrated["coverage"] == len(answered) / len(rows)


def test_evaluate_one_mode_and_bad_mode(tmp_path: Path, fitted_causal: Fitted) -> None:
    recipe, run = write_run(tmp_path, fitted_causal)
    metrics = evaluate(recipe, run, modes=["cot"], quiet=False)
    assert list(metrics["modes"]) == ["cot"]
    with pytest.raises(UserError, match="unknown mode"):
        evaluate(recipe, run, modes=["vote", "best"], quiet=True)


def test_evaluate_without_a_trained_student_is_a_user_error(tmp_path: Path) -> None:
    from mindmirror.config import Recipe
    from mindmirror.rundir import RunDir

    data = tmp_path / "d"
    data.mkdir()
    (data / "test.jsonl").write_text(json.dumps({"question": "1 + 2?", "answer": "3"}) + "\n")
    (data / "train.jsonl").write_text(json.dumps({"question": "1 + 1?", "answer": "2"}) + "\n")
    recipe = Recipe.model_validate(
        {"task": {"name": "generic", "family": "number", "path": str(data)}}
    )
    run = RunDir(tmp_path / "empty")
    (run.student).mkdir(parents=True)
    with pytest.raises(UserError, match="no trained student"):
        evaluate(recipe, run, quiet=True)


def test_modes_that_read_the_cots_answer_are_skipped_for_rationale_students(
    tmp_path: Path, fitted_causal: Fitted
) -> None:
    """The paper's explain targets stop before the answer, so only `answer` mode applies."""
    recipe, run = write_run(tmp_path, fitted_causal)
    paper = recipe.model_copy(
        update={"train": recipe.train.model_copy(update={"explain_target": "rationale"})}
    )
    with pytest.raises(UserError, match="none of the modes cot applies"):
        evaluate(paper, run, modes=["cot"], quiet=True)
    metrics = evaluate(paper, run, modes=["answer", "vote"], quiet=True)
    assert set(metrics["modes"]) == {"answer"}
