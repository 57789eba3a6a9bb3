"""The teacher judging CoTs it did not write (own_judge.labels: teacher) on the real server."""

from __future__ import annotations

from pathlib import Path

import pytest

from mindmirror.config import Recipe, recipe_from_dict
from mindmirror.embedded import EMBEDDED_MODEL
from mindmirror.errors import UserError
from mindmirror.records import Cot, Record, TeacherInfo
from mindmirror.rundir import RunDir
from mindmirror.tasks import load_task
from mindmirror.teacher.judge_cots import CACHE, cot_judge, judge_cots

STUDENT = TeacherInfo(model="student", backend="import")


def own_cots(recipe: Recipe) -> list[Record]:
    """Two train questions of the recipe's task, each with a right and a wrong student CoT."""
    _, splits = load_task(recipe.task, recipe.seed)
    records = []
    for example in splits["train"][:2]:
        right = f"{example.rationale}" if example.rationale else f"The answer is {example.gold}."
        records.append(
            Record(
                id=example.id,
                split="train",
                question=example.question,
                gold=example.gold,
                cots=[
                    Cot(text=right, answer=example.gold, parsed=True, correct=True),
                    Cot(
                        text="The answer is (1 + 1).", answer="(1 + 1)", parsed=True, correct=False
                    ),
                ],
                teacher=STUDENT,
            )
        )
    return records


def labelled_recipe(tmp_path: Path, base_url: str, **teacher: object) -> Recipe:
    return recipe_from_dict(
        {
            "run_dir": str(tmp_path / "run"),
            "task": {"name": "arith"},
            "teacher": {
                "backend": "openai",
                "base_url": base_url,
                "model": EMBEDDED_MODEL,
                "num_evals": 2,
                "eval_max_tokens": 24,
                "few_shot": 1,
                "concurrency": 2,
                "timeout_s": 60,
                **teacher,
            },
            "train": {
                "method": "mind_mirror",
                "explain_target": "cot",
                "own_judge": {"labels": "teacher"},
            },
        }
    )


@pytest.mark.server
def test_the_teacher_judges_the_students_cots_once(llama_url: str, tmp_path: Path) -> None:
    recipe = labelled_recipe(tmp_path, llama_url)
    run = RunDir(recipe.resolved_run_dir())
    judge = cot_judge(recipe, run)
    assert judge is not None
    records = own_cots(recipe)
    judged, usage = judge(records)
    assert [r.id for r in judged] == [r.id for r in records]
    for before, after in zip(records, judged, strict=True):
        assert [c.text for c in after.cots] == [c.text for c in before.cots]
        for cot in after.cots:
            assert len(cot.evaluations) == 2
            assert all(e.source == "teacher" and e.text for e in cot.evaluations)
    assert judged[0].teacher.evaluator == "teacher" and judged[0].teacher.model == EMBEDDED_MODEL
    assert usage["samples_new"] == 8 and usage["tokens_in"] > 0
    assert (run.teacher / CACHE).is_file()
    # Asked again (a resumed run): every evaluation comes from the cache, none is paid twice.
    again, usage = judge(records)
    assert usage["samples_new"] == 0 and usage["cache_hits"] == 8
    assert again == judged
    # A budget that runs out stops it with one line: no judge is trained on part of the labels.
    poor = labelled_recipe(
        tmp_path, llama_url, num_evals=3, budget_usd=1e-4, price_output_per_mtok=1e5
    )
    with pytest.raises(UserError, match=r"budget \(teacher\.budget_usd\) ran out"):
        judge_cots(poor, records, run.teacher / CACHE, quiet=True)


def test_only_teacher_labels_ask_the_teacher(tmp_path: Path) -> None:
    recipe = labelled_recipe(tmp_path, "http://127.0.0.1:9/v1")
    gold = recipe.model_copy(
        update={
            "train": recipe.train.model_copy(
                update={"own_judge": recipe.train.own_judge.model_copy(update={"labels": "gold"})}
            )
        }
    )
    assert cot_judge(gold, RunDir(tmp_path / "run")) is None
    # An unreachable teacher is one line, before any request is counted.
    with pytest.raises(UserError):
        judge_cots(recipe, own_cots(recipe), tmp_path / "cache.sqlite", quiet=True)
