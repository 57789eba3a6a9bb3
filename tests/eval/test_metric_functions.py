"""Pure metric functions: bootstrap interval, risk-coverage, AURC, AUROC, agreement."""

from __future__ import annotations

import pytest

from mindmirror.errors import UserError
from mindmirror.evaluate import (
    accuracy_interval,
    agreement,
    aurc,
    auroc,
    check_modes,
    mode_metrics,
    risk_coverage,
)
from mindmirror.student.infer import Prediction


def test_bootstrap_interval_is_seeded_and_brackets_the_accuracy() -> None:
    hits = [True] * 30 + [False] * 10
    first = accuracy_interval(hits, resamples=500, seed=1)
    assert first == accuracy_interval(hits, resamples=500, seed=1)
    assert first["accuracy"] == 0.75
    assert first["low"] < 0.75 < first["high"]
    assert first["low"] > 0.55 and first["high"] < 0.9
    assert accuracy_interval([], resamples=10)["n"] == 0
    assert accuracy_interval([True, False], resamples=0)["low"] == 0.5


def test_risk_coverage_ranks_by_confidence() -> None:
    curve = risk_coverage([0.9, 0.1, 0.8, 0.2], [True, False, True, True])
    assert [p["coverage"] for p in curve] == [0.25, 0.5, 0.75, 1.0]
    assert [p["accuracy"] for p in curve] == [1.0, 1.0, 1.0, 0.75]
    assert aurc(curve) == pytest.approx(0.25 / 4)
    # The worst ranking has a larger area than the best one.
    worst = risk_coverage([0.1, 0.9, 0.2, 0.8], [True, False, True, True])
    assert aurc(worst) > aurc(curve)


def test_auroc_and_agreement() -> None:
    assert auroc([0.9, 0.8, 0.1], [True, True, False]) == 1.0
    assert auroc([0.5, 0.5], [True, False]) == 0.5
    assert auroc([0.3], [True]) is None
    assert agreement(["correct", "wrong"], ["correct", "correct"]) == 0.5
    assert agreement([], []) is None


def test_mode_metrics_for_mirror_report_coverage() -> None:
    preds = [
        Prediction("mirror", "q1", "7", "7", 0.9),
        Prediction("mirror", "q2", "5", "5", 0.1, abstained=True),
        Prediction("mirror", "q3", None, None, 0.0, abstained=True),
    ]
    m = mode_metrics(preds, [True, False, False], seconds=2.0, resamples=100)
    assert m["accuracy"] == pytest.approx(1 / 3)
    assert m["parse_rate"] == pytest.approx(2 / 3)
    assert m["answers_per_s"] == 1.5
    assert m["coverage"] == pytest.approx(1 / 3)
    assert m["selective_accuracy"] == 1.0
    assert m["risk_coverage"][0] == {"coverage": pytest.approx(1 / 3), "accuracy": 1.0}


def test_unknown_mode_is_a_user_error() -> None:
    with pytest.raises(UserError, match="unknown mode 'mirrror'"):
        check_modes(["answer", "mirrror"])
