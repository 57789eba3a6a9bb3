"""The four inference modes: pure voting rules, then each mode on a fitted tiny student."""

from __future__ import annotations

import pytest

from mindmirror.config import EvalConfig
from mindmirror.student.infer import (
    Judged,
    infer,
    infer_modes,
    majority,
    mirror_prediction,
    weighted_vote,
)
from tests.eval.conftest import COT_RIGHT, COT_WRONG, Q_RIGHT, Q_WRONG, Fitted


def judged(answer: str | None, p_correct: float, p_wrong: float | None = None) -> Judged:
    wrong = 1.0 - p_correct if p_wrong is None else p_wrong
    probs = {"correct": p_correct, "wrong": wrong, "uncertain": 1.0 - p_correct - wrong}
    return Judged(text=f"The answer is {answer}.", answer=answer, canonical=answer, probs=probs)


def test_majority_counts_unparsed_samples_in_the_denominator() -> None:
    assert majority(["7", "7", "5", None]) == ("7", 0.5)
    assert majority(["5", "7"]) == ("5", 0.5)  # tie: first seen wins
    assert majority([None, None]) == (None, 0.0)


def test_weighted_vote_can_overturn_the_majority() -> None:
    answer, confidence = weighted_vote(["5", "5", "7"], [0.1, 0.1, 0.9])
    assert answer == "7"
    assert confidence == pytest.approx(0.3)


def test_mirror_abstains_when_every_sample_is_judged_wrong() -> None:
    samples = [judged("5", 0.2), judged("5", 0.1), judged("7", 0.35)]
    pred = mirror_prediction("q", samples, abstain_threshold=0.0)
    assert pred.abstained
    assert pred.canonical == "7"  # still reported, for accuracy at full coverage
    assert pred.verdict == "wrong"


def test_mirror_answers_with_its_most_trusted_cot_or_abstains_below_threshold() -> None:
    samples = [judged("7", 0.6, 0.3), judged("7", 0.9, 0.05), judged("5", 0.2)]
    pred = mirror_prediction("q", samples, abstain_threshold=0.0)
    assert not pred.abstained
    assert (pred.answer, pred.verdict) == ("7", "correct")
    assert pred.cot == samples[1].text
    assert pred.confidence == pytest.approx(0.5)
    assert 0.0 <= pred.confidence <= 1.0
    assert mirror_prediction("q", samples, abstain_threshold=0.6).abstained


def test_all_modes_on_a_fitted_student(fitted_student: Fitted) -> None:
    cfg = EvalConfig(num_samples=3, temperature=0.5, max_new_tokens=24, batch_size=4)
    runs = infer_modes(
        fitted_student.student,
        fitted_student.task,
        [Q_RIGHT, Q_WRONG],
        ["answer", "cot", "vote", "mirror"],
        cfg,
        seed=0,
    )
    assert list(runs) == ["answer", "cot", "vote", "mirror"]
    for mode, run in runs.items():
        assert [p.mode for p in run.predictions] == [mode, mode]
        assert all(0.0 <= p.confidence <= 1.0 for p in run.predictions)
        assert [p.canonical for p in run.predictions] == ["7", "16"]
        assert run.seconds > 0
    assert runs["answer"].predictions[0].cot is None
    assert runs["cot"].predictions[1].cot == COT_WRONG
    assert len(runs["vote"].predictions[0].samples) == 3
    right, wrong = runs["mirror"].predictions
    assert (right.verdict, right.abstained, right.cot) == ("correct", False, COT_RIGHT)
    # The student learnt that its CoT for Q_WRONG is wrong: mirror abstains, vote cannot.
    assert (wrong.verdict, wrong.abstained) == ("wrong", True)
    assert not runs["vote"].predictions[1].abstained
    assert right.confidence > wrong.confidence
    assert runs["vote"].predictions[0].samples[0].probs is None  # vote's samples stay unjudged


def test_infer_single_mode_keeps_choices_aligned(fitted_causal: Fitted) -> None:
    cfg = EvalConfig(max_new_tokens=24)
    preds = infer(fitted_causal.student, fitted_causal.task, [Q_WRONG], "cot", cfg, choices=[None])
    assert preds[0].to_dict()["samples"][0]["answer"] == "(12 + 4)"
