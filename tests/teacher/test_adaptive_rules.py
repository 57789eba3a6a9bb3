"""The stopping rules of adaptive teaching and the split-interleaved serving order (pure)."""

from __future__ import annotations

from typing import cast

import pytest

from mindmirror.config.teacher import AdaptiveConfig, TeacherConfig
from mindmirror.requests.engine import RequestEngine
from mindmirror.requests.types import EngineStats, Prompt, Sampling
from mindmirror.tasks.base import Example
from mindmirror.teacher.adaptive import beta_confidence, majority, next_count, settled, top_two
from mindmirror.teacher.rounds import WAVE_MIN, Failures, Key, draw, interleave, wave_size, waves


def test_beta_confidence_is_the_binomial_tail() -> None:
    # Beta(1, 1) is uniform: no votes, no information.
    assert beta_confidence(0, 0) == 0.5
    # Unanimous 3 and 4: 15/16 and 31/32 (1 - 2**-(n+1)).
    assert beta_confidence(3, 0) == pytest.approx(15 / 16)
    assert beta_confidence(4, 0) == pytest.approx(31 / 32)
    # 3 against 1: sum_{j<=3} C(5, j) / 32 = 26/32.
    assert beta_confidence(3, 1) == pytest.approx(26 / 32)
    # A tie is a coin flip whatever its size.
    assert beta_confidence(4, 4) == pytest.approx(0.5)
    with pytest.raises(ValueError):
        beta_confidence(-1, 0)


def test_top_two_and_majority_ignore_missing_votes() -> None:
    assert top_two(["5", None, "5", "7"]) == (2, 1)
    assert top_two([None, None]) == (0, 0)
    assert majority([None, "7", "5", "5"]) == "5"
    assert majority(["7", "5"]) == "7"  # a tie goes to the one drawn first
    assert majority([None]) is None


def test_margin_rule_settles_on_agreement_only() -> None:
    rule = AdaptiveConfig(rule="margin", margin=2, first=2, step=1)
    assert settled(["5", "5"], rule)
    assert not settled(["5", "6"], rule)
    assert not settled(["5"], rule)  # fewer than `first`
    assert not settled(["5", None], rule)  # an unparsed sample is no vote
    assert settled(["5", "6", "5", "5"], rule)


def test_beta_rule_threshold() -> None:
    rule = AdaptiveConfig(rule="beta", threshold=0.95, first=3, step=1)
    assert not settled(["5", "5", "5"], rule)  # 15/16 < 0.95
    assert settled(["5", "5", "5", "5"], rule)  # 31/32
    assert not settled(["5", "5", "5", "5", "6"], rule)


def test_next_count_rounds() -> None:
    rule = AdaptiveConfig(rule="margin", margin=2, first=2, step=2)
    assert next_count([], rule, 5) == 2
    assert next_count(["5", "5"], rule, 5) == 2  # settled: no more
    assert next_count(["5", "6"], rule, 5) == 4
    assert next_count(["5", "6", "7", "8"], rule, 5) == 5  # capped at the limit
    assert next_count(["5", "6", "7", "8", "9"], rule, 5) == 5
    assert next_count([], None, 5) == 5  # the fixed recipe: all at once
    assert next_count([], AdaptiveConfig(first=4), 3) == 3


def _examples(split: str, count: int) -> list[Example]:
    return [Example(f"{split}-{i}", split, f"q {split} {i}", "1") for i in range(count)]


def test_interleave_covers_every_split_in_proportion() -> None:
    examples = _examples("train", 8) + _examples("validation", 4) + _examples("test", 2)
    mixed = interleave(examples)
    assert sorted(e.id for e in mixed) == sorted(e.id for e in examples)
    first = mixed[:7]
    assert {e.split for e in first} == {"train", "validation", "test"}
    assert [e.split for e in first].count("train") == 4
    # Each split keeps its own order.
    assert [e.id for e in mixed if e.split == "validation"] == [f"validation-{i}" for i in range(4)]
    parts = list(waves(examples, 5))
    assert [len(p) for p in parts] == [5, 5, 4]
    assert list(waves(examples, None)) == [mixed]


def test_every_split_starts_in_the_first_wave() -> None:
    """GSM8K-sized splits: the first wave of 8 starts with a question of each split (a small
    split's first question rounded to a late place left the first wave without validation)."""
    examples = _examples("train", 7000) + _examples("validation", 400) + _examples("test", 1319)
    first = next(waves(examples, 8))
    assert [e.id for e in first[:3]] == ["train-0", "validation-0", "test-0"]
    mixed = interleave(examples)
    assert sorted(e.id for e in mixed) == sorted(e.id for e in examples)
    assert [e.id for e in mixed if e.split == "test"] == [f"test-{i}" for i in range(1319)]


def test_the_budget_field_tells_how_questions_are_served() -> None:
    """The recipe field's description (shown to users) names the real wave size."""
    description = TeacherConfig.model_fields["budget"].description or ""
    assert f"waves of at least {WAVE_MIN} " in description
    assert wave_size(1) == WAVE_MIN and "2 x concurrency if more" in description
    assert "interleaves the splits" in description and "larger one" in description


class _StoppedEngine:
    """One round whose sample 1 the budget skipped (None), then no more budget."""

    def __init__(self) -> None:
        self.last = EngineStats()
        self.last_error: str | None = None

    def run_sync(self, prompts: list[Prompt], description: str) -> dict[Key, list[str | None]]:
        self.last = EngineStats(samples=sum(p.n - p.first for p in prompts), budget_exhausted=True)
        return {p.key: ["a", None, "c"][: p.n] for p in prompts}


def test_a_round_the_budget_stopped_keeps_every_sample_in_its_place() -> None:
    """Sample 2 stays sample 2 (the older ``budget_usd`` cap stops a round mid-way): a skipped
    sample is None in its place, not dropped, so CoT indices match a resumed run's."""
    prompt = Prompt(("cot", "q"), [{"role": "user", "content": "q"}], 3, Sampling(0.7, 1.0, 8), "v")
    engine = cast(RequestEngine, _StoppedEngine())
    texts = draw(engine, [prompt], None, lambda _, text: text, "CoTs", Failures("CoTs", 0.5))
    assert texts == {("cot", "q"): ["a", None, "c"]}
