"""Record generation: CoT and evaluation records, the summary, import runs and start-up checks."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from mindmirror.config import Recipe, recipe_from_dict
from mindmirror.embedded import free_port
from mindmirror.errors import UserError
from mindmirror.records import Cot, Evaluation, Record, TeacherInfo, read_records
from mindmirror.rundir import RunDir
from mindmirror.tasks.base import Example
from mindmirror.tasks.families import EquationTask
from mindmirror.teacher.summary import summarize, summary_table
from mindmirror.teacher.teach import gold_evaluation, make_cot, teach, teacher_evaluation
from tests.conftest import shared_path
from tests.fault_proxy import fault_proxy

TASK = EquationTask("svamp")
EXAMPLE = Example(
    "q", "train", "Luke scored 84 points in 2 rounds. Points per round?", "( 84 / 2 )"
)
INFO = TeacherInfo(model="m", backend="openai")


def recipe(run_dir: Path, **teacher: Any) -> Recipe:
    data = {
        "name": "t",
        "run_dir": str(run_dir),
        "task": {"name": "svamp", "path": str(shared_path("svamp", "dss"))},
        "teacher": teacher,
    }
    return recipe_from_dict(data)


def test_make_cot_statuses() -> None:
    ok = make_cot(TASK, EXAMPLE, "84 / 2 = 42. The answer is (84 / 2).")
    assert (ok.status, ok.answer, ok.parsed, ok.correct) == ("ok", "(84 / 2)", True, True)
    wrong = make_cot(TASK, EXAMPLE, "The answer is (84 * 2).")
    assert (wrong.status, wrong.correct) == ("ok", False)
    unparsed = make_cot(TASK, EXAMPLE, "I do not know.")
    assert (unparsed.status, unparsed.parsed, unparsed.correct) == ("unparsed", False, False)
    failed = make_cot(TASK, EXAMPLE, None)
    assert (failed.status, failed.text, failed.correct) == ("error", "", None)


def test_gold_evaluator_verdicts() -> None:
    right = gold_evaluation(make_cot(TASK, EXAMPLE, "The answer is (84 / 2)."))
    assert right == Evaluation(text="", verdict="correct", parsed=True, source="gold")
    assert gold_evaluation(make_cot(TASK, EXAMPLE, "The answer is 41.")).verdict == "wrong"
    # A CoT whose answer did not parse is wrong under gold.
    assert gold_evaluation(make_cot(TASK, EXAMPLE, "No idea.")).verdict == "wrong"
    no_gold = Example("n", "test", "What?", None)
    assert gold_evaluation(make_cot(TASK, no_gold, "The answer is 3.")).verdict is None


def test_teacher_evaluation_records() -> None:
    assert teacher_evaluation("Fine.\nEvaluation result: the given answer is wrong.").verdict == (
        "wrong"
    )
    rambling = teacher_evaluation("It looks plausible.")
    assert (rambling.verdict, rambling.parsed) == (None, False)
    assert rambling.text == "It looks plausible."
    failed = teacher_evaluation(None)
    assert (failed.text, failed.parsed) == ("", False)


def _cot(correct: bool | None, status: str, verdicts: list[str | None]) -> Cot:
    evaluations = [
        Evaluation(text="" if v == "failed" else f"v {v}", verdict=None, parsed=False)
        if v in (None, "failed")
        else Evaluation(text=f"v {v}", verdict=v, parsed=True)  # type: ignore[arg-type]
        for v in verdicts
    ]
    return Cot(
        text="" if status == "error" else "t",
        answer="1" if status == "ok" else None,
        parsed=status == "ok",
        correct=correct,
        status=status,  # type: ignore[arg-type]
        evaluations=evaluations,
    )


def test_summary_numbers_on_a_small_hand_made_run() -> None:
    records = [
        Record(
            id="q1",
            split="train",
            question="Q1",
            gold="4",
            teacher=INFO,
            cots=[
                _cot(True, "ok", ["correct", "wrong"]),
                _cot(False, "ok", ["wrong"]),
                _cot(False, "unparsed", [None, "failed"]),
                _cot(None, "error", []),
            ],
        ),
        Record(
            id="q2",
            split="validation",
            question="Q2",
            gold="2",
            teacher=INFO,
            cots=[_cot(False, "ok", ["correct"]), _cot(False, "ok", ["uncertain"])],
        ),
        Record(id="q3", split="train", question="Q3", gold=None, teacher=INFO,
               cots=[_cot(None, "ok", ["correct"])]),
        Record(id="q4", split="train", question="Q4", gold="1", teacher=INFO, cots=[]),
    ]  # fmt: skip
    summary = summarize(records, {"train": 3, "validation": 1})
    assert summary["questions"] == {"train": 3, "validation": 1}
    assert (summary["cots"], summary["cots_ok"], summary["cots_unparsed"]) == (7, 5, 1)
    assert summary["cots_error"] == 1 and summary["questions_without_cots"] == 1
    assert summary["parse_rate"] == round(5 / 6, 4)
    # Graded CoTs: q1's ok, ok, unparsed and q2's two; one of the five is correct.
    assert summary["teacher_accuracy"] == 0.2
    # Questions with gold: q1 (solved), q2 (not), q4 (no CoTs at all).
    assert summary["questions_with_correct"] == round(1 / 3, 4)
    assert summary["evaluations"] == 8 and summary["evaluations_failed"] == 1
    assert summary["verdicts"] == {"correct": 3, "wrong": 2, "uncertain": 1, "unparsed": 2}
    # Agreement over parsed verdicts of graded CoTs: q1 (agree, disagree, agree),
    # q2 (disagree, agree: "uncertain" is not "correct" and the CoT is wrong).
    assert summary["verdict_agreement"] == 0.6
    assert summary["by_split"]["validation"]["teacher_accuracy"] == 0.0
    assert summary["by_split"]["train"]["cots"] == 5
    assert summary_table(summary).row_count > 10


def test_teach_imports_palm_cots_with_gold_evaluator(tmp_path: Path) -> None:
    run = RunDir(tmp_path / "run")
    cfg = recipe(
        run.root,
        backend="import",
        evaluator="gold",
        num_cots=3,
        num_evals=2,
        **{"import": {"format": "dss", "path": str(shared_path("svamp", "dss"))}},
    )
    summary = teach(cfg, run, quiet=True)
    records = read_records(run.records)
    assert len(records) == sum(summary["questions"].values()) == 800  # train + carved validation
    assert {r.split for r in records} == {"train", "validation"}
    assert all(len(r.cots) == 1 for r in records)  # DSS has one CoT per question
    assert all(len(c.evaluations) == 1 and c.evaluations[0].source == "gold"
               for r in records for c in r.cots)  # fmt: skip
    correct = sum(bool(c.correct) for r in records for c in r.cots)
    assert summary["verdicts"]["correct"] == correct
    assert summary["verdict_agreement"] == 1.0 and summary["requests"] == 0
    assert summary["imported"]["entries_unmatched"] == 200  # the DSS test split: not taught
    assert 0.6 < summary["teacher_accuracy"] < 0.9  # PaLM-540B few-shot on SVAMP
    assert records[0].teacher.backend == "import" and records[0].teacher.evaluator == "gold"
    assert json.loads(run.summary.read_text()) == summary
    assert "backend: import" in run.recipe.read_text()
    assert not run.cache.exists()  # nothing was requested


def test_teach_imports_tot_cots_with_teacher_evaluations(tmp_path: Path) -> None:
    run = RunDir(tmp_path / "run")
    cfg = recipe(
        run.root,
        backend="import",
        num_cots=4,
        num_evals=3,
        splits=["train", "validation", "test"],
        **{"import": {"format": "tot", "path": str(shared_path("svamp", "minds_mirror_samples"))}},
    )
    teach(cfg, run, quiet=True)
    taught = [r for r in read_records(run.records) if r.cots]
    assert len(taught) == 4
    for record in taught:
        assert len(record.cots) == 4
        for cot in record.cots:
            assert len(cot.evaluations) == 3
            assert all(ev.source == "teacher" and ev.parsed for ev in cot.evaluations)


def test_import_without_evaluations_needs_a_live_evaluator(tmp_path: Path) -> None:
    run = RunDir(tmp_path / "run")
    cfg = recipe(
        run.root,
        backend="import",
        evaluator="teacher",
        **{"import": {"format": "mcc_kd", "path": str(shared_path("svamp", "mcc_kd"))}},
    )
    with pytest.raises(
        UserError, match=r"holds no evaluations: set teacher\.import\.evaluate_with"
    ):
        teach(cfg, run, quiet=True)
    assert not run.root.exists()


def test_missing_import_file_writes_nothing(tmp_path: Path) -> None:
    run = RunDir(tmp_path / "run")
    cfg = recipe(
        run.root,
        backend="import",
        evaluator="gold",
        **{"import": {"format": "jsonl", "path": str(tmp_path / "absent.jsonl")}},
    )
    with pytest.raises(UserError, match="import path not found"):
        teach(cfg, run, quiet=True)
    assert not run.root.exists()


def test_unreachable_endpoint_writes_nothing(tmp_path: Path) -> None:
    run = RunDir(tmp_path / "run")
    url = f"http://127.0.0.1:{free_port()}/v1"
    cfg = recipe(run.root, backend="openai", base_url=url, model="m", timeout_s=5)
    with pytest.raises(UserError, match="cannot reach"):
        teach(cfg, run, quiet=True)
    assert not run.root.exists()


def test_rejected_key_writes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The proxy answers 401 itself (as OpenAI does), so no model server is needed."""
    monkeypatch.setenv("MINDMIRROR_TEST_KEY", "wrong-key")
    run = RunDir(tmp_path / "run")
    with fault_proxy(f"http://127.0.0.1:{free_port()}/v1", api_key="right-key") as proxy:
        cfg = recipe(
            run.root, backend="openai", base_url=proxy.url, model="m",
            api_key_env="MINDMIRROR_TEST_KEY",
        )  # fmt: skip
        with pytest.raises(UserError, match=r"MINDMIRROR_TEST_KEY was rejected \(401\)") as err:
            teach(cfg, run, quiet=True)
    assert "wrong-key" not in str(err.value)
    assert not run.root.exists()
