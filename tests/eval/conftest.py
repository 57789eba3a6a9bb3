"""Fixtures of the eval tests: tiny students that memorised a few rows (seconds to fit), and a
tiny experiment grid on hand-made teacher records."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from mindmirror.config import Recipe, dump_recipe, recipe_from_dict
from mindmirror.records import Cot, Evaluation, Record, TeacherInfo, write_records
from mindmirror.rundir import RunDir
from mindmirror.student.formats import (
    EXPLAIN,
    PREDICT,
    VERDICT,
    evaluation_input,
    reasoning_input,
    verdict_target,
)
from mindmirror.student.infer import Student
from mindmirror.student.model import save_student
from mindmirror.tasks.families import EquationTask
from tests.eval.tiny import fit_tiny, tiny_model, tiny_tokenizer
from tests.student.conftest import corpus, save_tiny_student, toy_records

Q_RIGHT = "Tom has 3 apples and buys 4 more. How many apples does he have?"
Q_WRONG = "A box holds 12 pens. 4 are red. How many are not red?"
COT_RIGHT = "3 + 4 = 7. The answer is (3 + 4)."
COT_WRONG = "12 + 4 = 16. The answer is (12 + 4)."


@dataclass
class Fitted:
    """A tiny student that learnt: Q_RIGHT -> a right CoT judged correct, Q_WRONG -> a wrong
    CoT judged wrong."""

    student: Student
    task: EquationTask


def memorised_pairs() -> list[tuple[str, str]]:
    """The rows the fitted students memorise (the same formats training uses)."""
    return [
        (reasoning_input(EXPLAIN, Q_RIGHT), COT_RIGHT),
        (reasoning_input(EXPLAIN, Q_WRONG), COT_WRONG),
        (reasoning_input(PREDICT, Q_RIGHT), "The answer is (3 + 4)."),
        (reasoning_input(PREDICT, Q_WRONG), "The answer is (12 + 4)."),
        (evaluation_input(VERDICT, Q_RIGHT, COT_RIGHT), verdict_target("correct")),
        (evaluation_input(VERDICT, Q_WRONG, COT_WRONG), verdict_target("wrong")),
    ]


def fitted(seq2seq: bool) -> Fitted:
    """Fit a tiny student of the given kind on ``memorised_pairs``."""
    tok = tiny_tokenizer(seq2seq)
    model = fit_tiny(tiny_model(seq2seq, len(tok)), tok, memorised_pairs(), steps=150)
    if not seq2seq:
        tok.padding_side = "left"
    kind = "seq2seq" if seq2seq else "causal"
    return Fitted(Student(model, tok, kind), EquationTask("svamp"))


@pytest.fixture(scope="package", autouse=True)
def one_thread() -> Iterator[None]:
    """Tiny models gain nothing from threads, and on a busy shared box torch's spinning worker
    threads slow them down many times over; restored when the package's tests end."""
    saved = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(saved)


@pytest.fixture(scope="package", params=["causal", "seq2seq"])
def fitted_student(one_thread: None, request: pytest.FixtureRequest) -> Fitted:
    """Each kind of tiny student, fitted once for this package."""
    return fitted(request.param == "seq2seq")


@pytest.fixture(scope="package")
def fitted_causal(one_thread: None) -> Fitted:
    """The causal tiny student alone."""
    return fitted(False)


def write_run(root: Path, fit: Fitted) -> tuple[Recipe, RunDir]:
    """A run directory as training leaves it: a generic task whose test split holds the two
    memorised questions, the fitted student saved as the final one, and held-out teacher
    records for the test questions (one right and one wrong CoT, each with its verdict)."""
    data = root / "data"
    data.mkdir(parents=True)
    rows = [
        {"question": Q_RIGHT, "answer": "( 3.0 + 4.0 )"},
        {"question": Q_WRONG, "answer": "( 12.0 - 4.0 )"},
    ]
    (data / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (data / "train.jsonl").write_text(json.dumps({"question": "1 + 1?", "answer": "2"}) + "\n")
    recipe = Recipe.model_validate(
        {
            "name": "tiny",
            "run_dir": str(root / "run"),
            "task": {"name": "generic", "family": "equation", "path": str(data)},
            # The memorised CoTs carry their answers, as `explain_target: cot` trains them.
            "train": {"explain_target": "cot"},
            "eval": {"num_samples": 3, "temperature": 0.5, "max_new_tokens": 24, "bootstrap": 200},
        }
    )
    run = RunDir(recipe.resolved_run_dir())
    run.root.mkdir(parents=True)
    run.recipe.write_text(dump_recipe(recipe))
    save_student(
        fit.student.model,
        fit.student.tokenizer,
        run.stage("stage2") / "best",
        kind=fit.student.kind,  # type: ignore[arg-type]
    )
    (run.student / "train.json").write_text(json.dumps({"final": "student/stage2/best"}))
    teacher = TeacherInfo(model="t", backend="import", evaluator="teacher")
    records = [
        Record(
            id=f"generic-test-{i}",
            split="test",
            question=q,
            gold=g,
            teacher=teacher,
            cots=[
                Cot(
                    text=c,
                    answer=a,
                    parsed=True,
                    correct=ok,
                    evaluations=[Evaluation(text="...", verdict=v, parsed=True)],
                )
            ],
        )
        for i, (q, g, c, a, ok, v) in enumerate(
            [
                (Q_RIGHT, "( 3.0 + 4.0 )", COT_RIGHT, "(3 + 4)", True, "correct"),
                (Q_WRONG, "( 12.0 - 4.0 )", COT_WRONG, "(12 + 4)", False, "wrong"),
            ]
        )
    ]
    write_records(run.records, records)
    return recipe, run


def grid_recipe(tmp_path: Path, student: Path) -> Recipe:
    """A generic equation task whose test file holds the toy test questions; a tiny grid."""
    data = tmp_path / "data"
    data.mkdir()
    tests = [r for r in toy_records() if r.split == "test"]
    rows = [{"question": r.question, "answer": r.gold} for r in tests]
    (data / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (data / "train.jsonl").write_text(json.dumps({"question": "1 + 1?", "answer": "2"}) + "\n")
    return recipe_from_dict(
        {
            "name": "grid",
            "run_dir": str(tmp_path / "run"),
            "task": {"name": "generic", "family": "equation", "path": str(data)},
            "teacher": {"backend": "import", "import": {"format": "jsonl", "path": "x"}},
            "train": {
                "student": str(student),
                "explain_target": "cot",
                "max_steps": 2,
                "eval_steps": 2,
                "batch_size": 8,
                "num_evals": 1,
                "eval_max_new_tokens": 6,
                "logging_steps": 1,
            },
            "eval": {"num_samples": 2, "max_new_tokens": 12, "answer_max_tokens": 6},
            "experiment": {
                "methods": ["step_by_step", "mind_mirror"],
                "num_cots": [1],
                "seeds": [0, 1],
                "modes": ["answer", "mirror"],
            },
        }
    )


@pytest.fixture
def grid(tmp_path: Path) -> tuple[Recipe, RunDir]:
    """The tiny grid's recipe and a run directory holding hand-made teacher records."""
    student = save_tiny_student("causal", tmp_path / "student", corpus())
    recipe = grid_recipe(tmp_path, student)
    run = RunDir(recipe.resolved_run_dir())
    write_records(run.records, toy_records())
    return recipe, run
