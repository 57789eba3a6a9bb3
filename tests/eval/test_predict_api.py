"""`predict`: the Python API, JSONL in and out, and its user errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import mindmirror.predict
from mindmirror.config import dump_recipe
from mindmirror.errors import UserError
from mindmirror.predict import Predictor, predict, predict_file
from mindmirror.student.loading import judge_folder, load_for_inference
from mindmirror.student.model import save_student
from tests.eval.conftest import COT_RIGHT, Q_RIGHT, Q_WRONG, Fitted, write_run


def test_python_api_from_a_run_directory(tmp_path: Path, fitted_causal: Fitted) -> None:
    _, run = write_run(tmp_path, fitted_causal)
    predictor = Predictor.load(run.root)
    assert predictor.mode == "cot"  # a student trained with CoTs: serve.mode, as `serve` uses
    right, wrong = predictor.predict([Q_RIGHT, Q_WRONG], mode="mirror")
    assert (right.answer, right.verdict, right.abstained, right.cot) == (
        "(3 + 4)",
        "correct",
        False,
        COT_RIGHT,
    )
    assert 0.0 <= wrong.confidence < right.confidence <= 1.0
    assert wrong.abstained
    (answer,) = predict(run.root, [Q_WRONG], mode="answer")
    assert (answer.mode, answer.canonical) == ("answer", "16")


def test_jsonl_in_jsonl_out(tmp_path: Path, fitted_causal: Fitted) -> None:
    _, run = write_run(tmp_path, fitted_causal)
    source = tmp_path / "questions.jsonl"
    source.write_text(
        json.dumps({"id": "a", "question": Q_RIGHT}) + "\n\n" + json.dumps({"question": Q_WRONG})
    )
    out = tmp_path / "out" / "answers.jsonl"
    assert predict_file(run.root, source, out, mode="cot", quiet=True) == 2
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["id"] for r in rows] == ["a", 1]
    assert [r["canonical"] for r in rows] == ["7", "16"]
    assert {"mode", "answer", "cot", "verdict", "confidence", "abstained"} <= set(rows[0])


def test_student_folder_needs_a_task(tmp_path: Path, fitted_causal: Fitted) -> None:
    _, run = write_run(tmp_path / "r", fitted_causal)
    folder = tmp_path / "alone"
    (run.stage("stage2") / "best").rename(folder)
    with pytest.raises(UserError, match="cannot tell the task"):
        Predictor.load(folder)
    with pytest.raises(UserError, match="unknown task 'maths'"):
        Predictor.load(folder, task="maths")
    predictor = Predictor.load(folder, task="svamp")
    assert predictor.mode == "cot"
    assert predictor.predict([Q_RIGHT])[0].canonical == "7"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"question": "ok"}\nnot json\n', "questions.jsonl:2: not a JSON object"),
        ('{"q": "x"}\n', 'questions.jsonl:1: needs a "question" field'),
        ("\n", "no questions in it"),
        ('{"question": ' + "[" * 100000 + "]" * 100000 + "}\n", "questions.jsonl:1: not a JSON"),
    ],
)
def test_malformed_question_files(
    tmp_path: Path, fitted_causal: Fitted, content: str, message: str
) -> None:
    _, run = write_run(tmp_path / "r", fitted_causal)
    source = tmp_path / "questions.jsonl"
    source.write_text(content)
    with pytest.raises(UserError, match=message):
        predict_file(run.root, source, tmp_path / "out.jsonl")
    assert not (tmp_path / "out.jsonl").exists()


def test_missing_paths_and_bad_mode(tmp_path: Path, fitted_causal: Fitted) -> None:
    with pytest.raises(UserError, match="student not found"):
        Predictor.load(tmp_path / "nope")
    _, run = write_run(tmp_path / "r", fitted_causal)
    with pytest.raises(UserError, match="questions file not found"):
        predict_file(run.root, tmp_path / "none.jsonl", tmp_path / "o.jsonl")
    with pytest.raises(UserError, match="unknown mode 'fast'"):
        predict(run.root, [Q_RIGHT], mode="fast")


def test_two_stage_runs_judge_with_their_self_evaluation_student(
    tmp_path: Path, fitted_causal: Fitted
) -> None:
    _, run = write_run(tmp_path, fitted_causal)
    assert judge_folder(run.root) is None  # the run trained no separate self-evaluation stage
    s = fitted_causal.student
    save_student(s.model, s.tokenizer, run.stage("evaluation") / "best", kind="causal")
    summary = {
        "final": "student/stage2/best",
        "stages": {"evaluation": {"best": "student/evaluation/best"}},
    }
    (run.student / "train.json").write_text(json.dumps(summary))
    expected = run.root / "student/evaluation/best"
    assert judge_folder(run.root) == expected
    assert judge_folder(run.stage("stage2") / "best") == expected
    assert judge_folder(run.stage("evaluation") / "best") is None  # not the final student
    assert load_for_inference(run.root).judge is not None
    assert load_for_inference(run.root, judge="final").judge is None
    assert mindmirror.predict.judge_folder is judge_folder  # still importable from predict


def test_mirror_needs_a_student_that_learnt_to_judge(tmp_path: Path, fitted_causal: Fitted) -> None:
    recipe, run = write_run(tmp_path, fitted_causal)
    recipe.train.method = "multi_cot"
    run.recipe.write_text(dump_recipe(recipe))
    predictor = Predictor.load(run.root)
    with pytest.raises(UserError, match=r"mode mirror needs a student that learnt to judge its"):
        predictor.predict([Q_RIGHT], mode="mirror")
    assert predictor.predict([Q_RIGHT], mode="cot")[0].cot == COT_RIGHT
