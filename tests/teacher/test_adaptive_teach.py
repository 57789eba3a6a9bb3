"""``teach`` with adaptive CoTs and evaluations, a run budget, shared evaluations of duplicate
CoTs and provider-cached prompt tokens, against a real loopback endpoint (the scripted
teacher): what is requested, what the records hold, and that nothing is paid for twice."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from mindmirror.config import recipe_from_dict
from mindmirror.errors import UserError
from mindmirror.records import read_records
from mindmirror.rundir import RunDir
from mindmirror.teacher.teach import teach
from tests.cli.test_cli_errors import generic_recipe
from tests.scripted_teacher import Answer, is_evaluation, scripted_teacher

QUESTION = re.compile(r"What is (\d+) \+ 1\?")


def _question(body: dict[str, Any]) -> int:
    """The question number of a request (the last user turn names it)."""
    found = QUESTION.findall(body["messages"][-1]["content"])
    return int(found[-1])


def scripted(disagree_cots: bool = True, disagree_verdicts: bool = True) -> Answer:
    """Even questions: every CoT says the gold answer and every verdict is correct. Odd ones
    (when asked to disagree): each CoT a new answer, verdicts alternating."""
    calls: Counter[tuple[bool, int]] = Counter()

    def answer(body: dict[str, Any]) -> tuple[int, str]:
        number = _question(body)
        evaluation = is_evaluation(body)
        calls[(evaluation, number)] += 1
        odd = number % 2 == 1
        if not evaluation:
            value = number + 1 + (calls[(False, number)] if odd and disagree_cots else 0)
            return 200, f"{number} plus 1 is {value}. The answer is {value}."
        flip = odd and disagree_verdicts and calls[(True, number)] % 2 == 0
        return (
            200,
            f"Checked.\nEvaluation result: the given answer is {'wrong' if flip else 'correct'}.",
        )

    return answer


def _recipe(tmp_path: Path, url: str, **teacher: Any) -> Any:
    data = generic_recipe(
        tmp_path,
        base_url=url,
        model="m",
        use_n=False,
        concurrency=1,
        max_retries=0,
        few_shot=0,
        splits=["train", "validation"],
        **teacher,
    )
    data["task"]["val_fraction"] = 0.25
    return recipe_from_dict(data)


def _by_question(tmp_path: Path) -> dict[int, Any]:
    records = read_records(RunDir(tmp_path / "run").records)
    return {int(QUESTION.search(r.question).group(1)): r for r in records}  # type: ignore[union-attr]


def test_adaptive_cots_stop_on_agreement_and_continue_on_disagreement(tmp_path: Path) -> None:
    recipe = _recipe(tmp_path, "", num_cots=5, num_evals=0, adaptive_cots={})
    with scripted_teacher(scripted()) as teacher:
        recipe.teacher.base_url = teacher.url
        summary = teach(recipe, RunDir(tmp_path / "run"), quiet=True)
        asked = Counter(_question(body) for body in teacher.bodies)
    records = _by_question(tmp_path)
    assert len(records) == 12
    for number, record in records.items():
        # margin 2, first 2: two agreeing CoTs settle a question; disagreeing ones get all 5.
        expected = 5 if number % 2 else 2
        assert len(record.cots) == expected, number
        assert asked[number] == expected
    assert summary["adaptive_cots"] is True
    assert summary["cots"] == 6 * 2 + 6 * 5


def test_adaptive_evaluations_only_while_verdicts_disagree(tmp_path: Path) -> None:
    recipe = _recipe(
        tmp_path, "", num_cots=1, num_evals=5, adaptive_evals={"rule": "margin", "margin": 2}
    )
    with scripted_teacher(scripted(disagree_cots=False)) as teacher:
        recipe.teacher.base_url = teacher.url
        teach(recipe, RunDir(tmp_path / "run"), quiet=True)
    for number, record in _by_question(tmp_path).items():
        verdicts = [ev.verdict for ev in record.cots[0].evaluations]
        if number % 2 == 0:
            assert verdicts == ["correct", "correct"]
        else:  # correct, wrong, correct, wrong, correct: never a lead of 2
            assert verdicts == ["correct", "wrong", "correct", "wrong", "correct"]


def test_fixed_recipe_requests_everything_once(tmp_path: Path) -> None:
    recipe = _recipe(tmp_path, "", num_cots=3, num_evals=2)
    with scripted_teacher(scripted()) as teacher:
        recipe.teacher.base_url = teacher.url
        teach(recipe, RunDir(tmp_path / "run"), quiet=True)
        assert (teacher.count(evaluations=False), teacher.count(evaluations=True)) == (36, 72)


def test_duplicate_cots_share_evaluations_when_asked(tmp_path: Path) -> None:
    """Agreeing CoTs of even questions are identical texts: evaluated once with the option
    (every copy still gets the evaluations), once per copy without it (the published way)."""
    counts = {}
    for share in (False, True):
        run = tmp_path / f"share-{share}"
        recipe = _recipe(tmp_path, "", num_cots=3, num_evals=1, share_duplicate_evals=share)
        recipe.run_dir = str(run)
        with scripted_teacher(scripted(disagree_cots=False)) as teacher:
            recipe.teacher.base_url = teacher.url
            teach(recipe, RunDir(run), quiet=True)
            counts[share] = teacher.count(evaluations=True)
        for record in read_records(RunDir(run).records):
            assert all(len(cot.evaluations) == 1 for cot in record.cots)
    assert counts == {False: 36, True: 12}


def _keys_requested(bodies: list[dict[str, Any]]) -> list[tuple[int, bool, int]]:
    return [(_question(b), is_evaluation(b), b["seed"]) for b in bodies]


def test_budget_stops_cleanly_and_a_larger_one_resumes_paying_nothing_twice(
    tmp_path: Path,
) -> None:
    run = RunDir(tmp_path / "run")
    requested: list[tuple[int, bool, int]] = []
    with scripted_teacher(scripted()) as teacher:
        small = _recipe(
            tmp_path,
            teacher.url,
            num_cots=2,
            num_evals=1,
            eval_max_tokens=8,
            budget={"tokens": 400},
        )
        first = teach(small, run, quiet=True)
        requested += _keys_requested(teacher.bodies)
        taught = read_records(run.records)
        again = teach(small, run, quiet=True)  # the same budget: nothing new
        assert len(teacher.bodies) == len(requested)
        teacher.bodies.clear()
        large = _recipe(
            tmp_path,
            teacher.url,
            num_cots=2,
            num_evals=1,
            eval_max_tokens=8,
            budget={"tokens": 10**6},
        )
        last = teach(large, run, quiet=True)
        requested += _keys_requested(teacher.bodies)
    assert first["budget_exhausted"] and again["budget_exhausted"]
    assert not last["budget_exhausted"]
    # The first run taught whole waves only, with every split of its first wave covered.
    assert 0 < len(taught) < 12 and len(taught) % 8 == 0
    assert {r.split for r in taught} == {"train", "validation"}
    assert all(len(r.cots) == 2 and all(len(c.evaluations) == 1 for c in r.cots) for r in taught)
    assert first["budget"]["unit"] == "tokens" and first["budget"]["spent"] <= 400
    # Every sample was paid for once over the three runs, and the last records are complete.
    assert len(requested) == len(set(requested)) == 12 * (2 + 2)
    assert len(read_records(run.records)) == 12
    assert last["samples_new"] + last["cache_hits"] == 12 * 4


def test_provider_cached_prompt_tokens_are_counted_and_priced(tmp_path: Path) -> None:
    with scripted_teacher(scripted(), cached_tokens=4) as teacher:
        recipe = _recipe(
            tmp_path,
            teacher.url,
            num_cots=1,
            num_evals=0,
            price_input_per_mtok=1e6,
            price_cached_input_per_mtok=0.0,
            price_output_per_mtok=0.0,
        )
        summary = teach(recipe, RunDir(tmp_path / "run"), quiet=True)
    # 12 requests of 5 prompt tokens, 4 of them cached at $0: $1 each for the other one.
    assert summary["tokens_in"] == 60 and summary["prompt_tokens_cached"] == 48
    assert summary["cost_usd_this_run"] == pytest.approx(12.0)


def test_bad_adaptive_and_budget_values_are_one_line_errors(tmp_path: Path) -> None:
    for teacher, needle in (
        ({"num_cots": 2, "adaptive_cots": {"first": 3}}, "adaptive_cots.first=3 is more than"),
        ({"budget": {"usd": 1.0, "tokens": 5}}, "exactly one of budget.usd or budget.tokens"),
        ({"adaptive_evals": {"rule": "beta", "threshold": 0.4}}, "threshold"),
        ({"adaptive_cots": {"rule": "vote"}}, "rule"),
        ({"budget": {"tokens": 5}, "batch": True}, "teacher.budget does not cap Batch API"),
    ):
        with pytest.raises(UserError) as caught:
            recipe_from_dict(generic_recipe(tmp_path, **teacher))
        message = str(caught.value)
        assert needle in message and "\n" not in message, message
    assert json.dumps(generic_recipe(tmp_path))  # the base recipe itself is valid
    recipe_from_dict(generic_recipe(tmp_path))


def test_a_failure_in_a_small_late_round_is_judged_with_the_rounds_before(
    tmp_path: Path,
) -> None:
    """Question 1's CoTs disagree, so it alone draws rounds 2 to 4, one sample each; the one
    of round 2 fails. 1 failed of the 27 CoT samples is under max_failed_share=0.5: a warning,
    not the 'no records written' of a round judged alone (1 of 1)."""
    calls: Counter[int] = Counter()

    def answer(body: dict[str, Any]) -> tuple[int, str]:
        number = _question(body)
        calls[number] += 1
        if number != 1:
            return 200, f"The answer is {number + 1}."
        if calls[number] == 3:
            return 500, "overloaded"
        return 200, f"The answer is {calls[number]}."

    recipe = _recipe(tmp_path, "", num_cots=5, num_evals=0, adaptive_cots={})
    with scripted_teacher(answer) as teacher:
        recipe.teacher.base_url = teacher.url
        summary = teach(recipe, RunDir(tmp_path / "run"), quiet=True)
    assert summary["samples_failed"] == 1 and summary["cots"] == 11 * 2 + 5
    cots = _by_question(tmp_path)[1].cots
    assert [cot.status for cot in cots] == ["ok", "ok", "error", "ok", "ok"]


def test_a_budget_too_small_for_one_wave_is_a_one_line_error(tmp_path: Path) -> None:
    """Nothing can be taught: a UserError naming the wave and the estimate, no records."""
    run = RunDir(tmp_path / "run")
    with scripted_teacher(scripted()) as teacher:
        recipe = _recipe(tmp_path, teacher.url, num_cots=2, num_evals=1, budget={"tokens": 40})
        with pytest.raises(UserError) as caught:
            teach(recipe, run, quiet=True)
    message = str(caught.value)
    assert "\n" not in message and "first wave of 8 questions" in message, message
    assert "WAVE_MIN=8" in message and "teach --estimate` expects about" in message
    assert not run.records.exists()
