"""Identical requests of one run (two identical CoTs of a question) get cache keys of their
own: each copy is evaluated separately and every paid sample is kept; plain keys are unchanged
so that existing caches stay valid."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from mindmirror.config import TeacherConfig, recipe_from_dict
from mindmirror.records import read_records
from mindmirror.requests.cache import ResponseCache, cache_key
from mindmirror.requests.engine import RequestEngine
from mindmirror.requests.types import Prompt, Reply, Sampling
from mindmirror.rundir import RunDir
from mindmirror.teacher.teach import own_samples, teach
from tests.cli.test_cli_errors import generic_recipe
from tests.scripted_teacher import is_evaluation, scripted_teacher

SAMPLING = Sampling(0.7, 1.0, 64)
MESSAGES = [{"role": "user", "content": "What is 2 + 3?"}]


def test_a_plain_key_is_the_one_earlier_versions_computed() -> None:
    # Computed by the cache_key of commit 00ff2e5, before requests could be told apart.
    old = "b26b09529693ae7aec191728b2036466b556f136fd3fa46b9d4d7d427bd048fb"
    assert cache_key("m", MESSAGES, SAMPLING, 1, "eval_v2") == old
    assert cache_key("m", MESSAGES, SAMPLING, 1, "eval_v2", "eval/q/1") != old


def test_only_the_repeats_of_a_request_get_an_instance() -> None:
    def prompt(key: tuple[str, ...], content: str) -> Prompt:
        return Prompt(key, [{"role": "user", "content": content}], 1, SAMPLING, "eval_v2")

    prompts = own_samples(
        [
            prompt(("eval", "q", "0"), "same CoT"),
            prompt(("eval", "q", "1"), "other CoT"),
            prompt(("eval", "q", "2"), "same CoT"),
            prompt(("eval", "q", "3"), "same CoT"),
        ]
    )
    assert [p.instance for p in prompts] == [None, None, "eval/q/2", "eval/q/3"]


class EchoBackend:
    """Unit-test backend: one text per call."""

    model = "m"

    async def complete(self, messages: Any, n: int, sampling: Sampling, seed: Any = None) -> Reply:
        return Reply(["x"] * n)


def test_the_engine_refuses_two_prompts_on_one_cache_key(tmp_path: Path) -> None:
    twins = [Prompt((str(i),), MESSAGES, 1, SAMPLING, "v") for i in range(2)]
    engine = RequestEngine(
        EchoBackend(), ResponseCache(tmp_path / "c.sqlite"), TeacherConfig(), quiet=True
    )
    with pytest.raises(ValueError, match="repeats another's request"):
        engine.run_sync(twins, "CoTs")


def _rows(path: Path) -> int:
    with sqlite3.connect(path) as db:
        return int(db.execute("SELECT COUNT(*) FROM samples").fetchone()[0])


def test_identical_cots_are_evaluated_separately_and_nothing_paid_is_lost(tmp_path: Path) -> None:
    """The teacher writes the same CoT twice for every question; each copy's evaluation is
    paid for, cached under its own key, and found again by a re-run."""
    numbered = {"evaluations": 0}

    def answer(body: dict[str, Any]) -> tuple[int, str]:
        if not is_evaluation(body):
            return 200, "The answer is 5."
        numbered["evaluations"] += 1
        verdict = "Evaluation result: the given answer is wrong."
        return 200, f"Critique {numbered['evaluations']}.\n{verdict}"

    run = RunDir(tmp_path / "run")
    with scripted_teacher(answer) as teacher:
        data = generic_recipe(
            tmp_path, base_url=teacher.url, model="m", num_cots=2, num_evals=1, use_n=False
        )
        first = teach(recipe_from_dict(data), run, quiet=True)
        paid = len(teacher.bodies)
        assert (teacher.count(evaluations=False), teacher.count(evaluations=True)) == (24, 24)
        assert _rows(run.cache) == paid  # every paid sample kept
        again = teach(recipe_from_dict(data), run, quiet=True)
        assert len(teacher.bodies) == paid and again["cache_hits"] == paid
    assert first["samples_new"] == paid
    for record in read_records(run.records):
        one, two = record.cots
        assert one.text == two.text
        assert one.evaluations[0].text != two.evaluations[0].text


def test_copies_in_different_waves_get_keys_of_their_own_and_a_run_without_budget_finds_them(
    tmp_path: Path,
) -> None:
    """Under an evaluation template without the question, every question's CoT "The answer is
    5." makes the same evaluation request: the copies in the second wave of a budget run are
    told apart from those of the first (each paid, each its own critique), with the keys of a
    run without a budget, which then finds every one of them in the cache."""
    template = tmp_path / "eval_blind.txt"
    template.write_text(
        "=== system ===\nYou are a careful grader.\n=== user ===\nGiven answer: {cot}\n"
    )
    numbered = {"evaluations": 0}

    def answer(body: dict[str, Any]) -> tuple[int, str]:
        if not is_evaluation(body):
            return 200, "The answer is 5."
        numbered["evaluations"] += 1
        return 200, f"Critique {numbered['evaluations']}.\nEvaluation result: the answer is wrong."

    run = RunDir(tmp_path / "run")
    with scripted_teacher(answer) as teacher:
        data = generic_recipe(
            tmp_path,
            base_url=teacher.url,
            model="m",
            num_evals=1,
            use_n=False,
            few_shot=0,
            concurrency=1,  # waves of 8: the 12 questions take two
            eval_prompt=str(template),
            splits=["train", "validation"],
            budget={"tokens": 10**6},
        )
        data["task"]["val_fraction"] = 0.25
        budgeted = teach(recipe_from_dict(data), run, quiet=True)
        assert teacher.count(evaluations=True) == 12
        critiques = [r.cots[0].evaluations[0].text for r in read_records(run.records)]
        assert len(critiques) == len(set(critiques)) == 12
        del data["teacher"]["budget"]
        paid = len(teacher.bodies)
        unbudgeted = teach(recipe_from_dict(data), run, quiet=True)
        assert len(teacher.bodies) == paid
    assert not budgeted["budget_exhausted"] and budgeted["samples_new"] == 24
    assert unbudgeted["samples_new"] == 0 and unbudgeted["cache_hits"] == 24 == _rows(run.cache)
