"""``mindmirror teach --estimate``: the expected bill of a recipe, without any request."""

from __future__ import annotations

import json
from pathlib import Path

from mindmirror.config import recipe_from_dict
from mindmirror.teacher.estimate import within_budget
from tests.cli.test_cli_errors import generic_recipe, mindmirror, write_recipe


def test_estimate_requests_nothing_and_counts_every_prompt(tmp_path: Path) -> None:
    # An endpoint nobody listens on: the estimate must not need it.
    recipe = generic_recipe(
        tmp_path,
        base_url="http://127.0.0.1:9/v1",
        model="m",
        num_cots=3,
        num_evals=2,
        price_input_per_mtok=1.0,
        price_output_per_mtok=2.0,
        adaptive_cots={"rule": "margin", "margin": 2, "first": 2, "step": 1},
        budget={"usd": 1.0},
    )
    path = write_recipe(tmp_path / "r.yaml", recipe)
    result = mindmirror("teach", str(path), "--estimate", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "teach --estimate: 12 questions" in result.stdout
    teacher = tmp_path / "run" / "teacher"
    assert sorted(p.name for p in teacher.iterdir()) == ["estimate.json"]
    estimate = json.loads((teacher / "estimate.json").read_text())
    assert estimate["tokenizer"].startswith("characters / 4")
    assert estimate["requests_per_sample"] is False
    fixed, least, most = (estimate[k] for k in ("fixed", "adaptive_least", "adaptive_most"))
    # n samples a request: one CoT request per question, one evaluation request per CoT.
    assert (fixed["cots"]["requests"], fixed["evaluations"]["requests"]) == (12, 36)
    assert (least["cots"]["requests"], least["evaluations"]["requests"]) == (12, 24)
    # At most: a second round for every question (the prompt sent again), all 3 CoTs.
    assert (most["cots"]["requests"], most["evaluations"]["requests"]) == (24, 36)
    assert most["cots"]["prompt_tokens"] == 2 * fixed["cots"]["prompt_tokens"]
    assert least["total"]["usd"] < fixed["total"]["usd"] < most["total"]["usd"]
    total = fixed["total"]
    usd = (total["prompt_tokens"] * 1.0 + total["completion_tokens"] * 2.0) / 1e6
    assert abs(total["usd"] - usd) < 1e-6
    assert estimate["questions_within_budget"] == 12


def test_questions_within_budget_count_whole_waves(tmp_path: Path) -> None:
    """At 100 tokens a question, a budget that pays for 10 of 12 questions teaches one wave of
    8 (teach keeps no question of the wave it ran out in), none with waves of 16."""
    total = {"prompt_tokens": 600, "completion_tokens": 600, "usd": 0.0}
    result = {"questions": 12, "fixed": {"total": total}}
    for concurrency, tokens, expected in ((1, 1050, 8), (8, 1050, 0), (1, 1200, 12), (1, 700, 0)):
        data = generic_recipe(tmp_path, budget={"tokens": tokens}, concurrency=concurrency)
        assert within_budget(recipe_from_dict(data).teacher, result) == expected, tokens
