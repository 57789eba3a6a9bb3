"""The combined confidence and its calibration figures: pure numbers, no model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from mindmirror.errors import UserError
from mindmirror.reporting.calibration import (
    aurc_of,
    brier,
    ece,
    paired_metric,
    ranking_and_calibration,
)
from mindmirror.reporting.metrics import auroc
from mindmirror.student.confidence import (
    FEATURES,
    ConfidenceModel,
    calibrated,
    choose_threshold,
    fit_confidence,
    question_features,
)
from mindmirror.student.infer import Judged, Prediction, mirror_prediction


def judged(canonical: str | None, p: float, words: int = 5, lp: float = -1.0) -> Judged:
    text = " ".join(["w"] * words)
    return Judged(text, canonical, canonical, {"correct": p, "wrong": 1 - p}, lp)


def test_features_describe_the_chosen_answer_and_its_backers() -> None:
    samples = [judged("7", 0.9, 4, -0.5), judged("7", 0.5, 6, -1.5), judged("8", 0.1, 30, -3)]
    pred = mirror_prediction("q", samples, 0.0)
    answer = Prediction("answer", "q", "7", "7", confidence=0.6)
    f = question_features(pred, answer)
    assert pred.canonical == "7"
    assert f == pytest.approx(
        {"judge": 0.7, "vote_share": 2 / 3, "answer_prob": 0.6, "logprob": -1.0, "length": 5.0}
    )
    # An answer head that disagrees backs nothing; no answer at all gives the floor values.
    assert question_features(pred, Prediction("answer", "q", "8", "8", 0.9))["answer_prob"] == 0
    empty = question_features(mirror_prediction("q", [judged(None, 0.9)], 0.0), None)
    assert empty["vote_share"] == 0 and empty["judge"] == 0


def test_threshold_is_the_lowest_reaching_the_target_accuracy() -> None:
    conf = [0.9, 0.8, 0.7, 0.6, 0.5]
    right = [True, True, False, True, False]
    assert choose_threshold(conf, right, 0.75) == 0.6  # top 4: 3/4 right
    assert choose_threshold(conf, right, 1.0) == 0.8
    # Ties are kept or dropped together; no threshold reaches it: abstain on everything.
    assert choose_threshold([0.5, 0.5], [True, False], 0.9) > 1.0


def test_fit_learns_the_informative_feature_and_round_trips_as_json(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    rows, right = [], []
    for _ in range(200):
        ok = bool(rng.random() < 0.5)
        row = dict.fromkeys(FEATURES, 0.0) | {"judge": rng.normal(0.7 if ok else 0.3, 0.1)}
        row["length"] = float(rng.integers(5, 50))  # noise
        rows.append(row)
        right.append(ok)
    model = fit_confidence(rows, right, target_accuracy=0.9)
    scores = [model.confidence(r) for r in rows]
    assert auroc(scores, right) > 0.95
    assert ece(scores, right) < 0.1
    answered = [ok for s, ok in zip(scores, right, strict=True) if s >= model.threshold]
    assert sum(answered) / len(answered) >= 0.9
    model.save(tmp_path / "c.json")
    assert "coef" in json.loads((tmp_path / "c.json").read_text())
    assert ConfidenceModel.load(tmp_path / "c.json") == model
    with pytest.raises(UserError, match="both right and wrong"):
        fit_confidence(rows[:3], [True] * 3, 0.9)
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(UserError, match="not a confidence model"):
        ConfidenceModel.load(tmp_path / "bad.json")


def test_calibrated_predictions_abstain_under_the_threshold() -> None:
    model = ConfidenceModel(FEATURES, (0.0,) * 5, (1.0,) * 5, (10.0, 0, 0, 0, 0), -5.0, 0.5, 0.8, 9)
    sure = mirror_prediction("q", [judged("7", 0.9)], 0.0)
    unsure = mirror_prediction("q", [judged("7", 0.1)], 0.0)
    out = calibrated([sure, unsure], [None, None], model)
    assert out[0].confidence == pytest.approx(1 / (1 + np.exp(-4)))
    assert [p.abstained for p in out] == [False, True]


def test_calibration_figures_and_paired_intervals() -> None:
    assert brier([1.0, 0.0], [True, False]) == 0.0
    assert brier([0.5, 0.5], [True, False]) == 0.25
    assert ece([0.9] * 10, [True] * 9 + [False]) == pytest.approx(0.0)
    assert ece([0.9] * 10, [True] * 5 + [False] * 5) == pytest.approx(0.4)
    right = [True, False] * 20
    good = [0.9 if ok else 0.1 for ok in right]
    bad = [0.5] * 40
    diff = paired_metric(auroc, [bad], [good], [right], resamples=200)
    assert diff["diff"] == pytest.approx(0.5) and diff["low"] > 0 and diff["n"] == 40
    lower = paired_metric(aurc_of, [bad], [good], [right], resamples=200)
    assert lower["diff"] < 0 and lower["high"] < 0
    assert ranking_and_calibration(good, right)["auroc"] == 1.0
    with pytest.raises(ValueError):
        paired_metric(auroc, [[0.1]], [[0.1, 0.2]], [[True, False]])
    # Two seeds, several items per question: the mean difference, questions counted once.
    q = [[0, 0, 1, 1], [0, 1, 1, 1]]
    y = [[True, False, True, False], [True, False, True, True]]
    same = [[0.5] * 4, [0.5] * 4]
    perfect = [[1.0, 0.0, 1.0, 0.0], [1.0, 0.0, 1.0, 1.0]]
    two = paired_metric(auroc, same, perfect, y, q, resamples=50)
    assert two["diff"] == pytest.approx(0.5) and two["n"] == 2
