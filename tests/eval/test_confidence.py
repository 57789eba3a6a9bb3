"""The combined confidence and its calibration figures: pure numbers, no model."""

from __future__ import annotations

import dataclasses
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
from mindmirror.reporting.metrics import auroc, risk_coverage, selective_accuracy
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
    model = fit_confidence(rows, right, target_accuracy=0.9, samples=5)
    scores = [model.confidence(r) for r in rows]
    assert auroc(scores, right) > 0.95
    assert ece(scores, right) < 0.1
    answered = [ok for s, ok in zip(scores, right, strict=True) if s >= model.threshold]
    assert sum(answered) / len(answered) >= 0.9
    model.save(tmp_path / "c.json")
    assert "coef" in json.loads((tmp_path / "c.json").read_text())
    assert ConfidenceModel.load(tmp_path / "c.json") == model
    with pytest.raises(UserError, match="both right and wrong"):
        fit_confidence(rows[:3], [True] * 3, 0.9, 5)
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(UserError, match="not a confidence model"):
        ConfidenceModel.load(tmp_path / "bad.json")


def plain_model(samples: int = 1) -> ConfidenceModel:
    """The judge's P(correct) alone, threshold 0.5, fitted on ``samples`` CoTs per question."""
    coef = (10.0, 0.0, 0.0, 0.0, 0.0)
    return ConfidenceModel(FEATURES, (0.0,) * 5, (1.0,) * 5, coef, -5.0, 0.5, 0.8, 9, samples)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("[1, 2]", "not a confidence model"),  # JSON, but a list
        ("{not json", "not a confidence model"),
        (None, "not a confidence model"),  # a folder: unreadable
        ("features", "features"),  # a feature this version does not compute
        ("coef", "features"),  # fewer coefficients than features
        ("samples", "not a confidence model"),  # an older model without its K
    ],
)
def test_a_bad_confidence_file_is_one_user_error(
    tmp_path: Path, content: str | None, message: str
) -> None:
    path = tmp_path / "confidence.json"
    data = dataclasses.asdict(plain_model())
    if content is None:
        path.mkdir()
    elif content == "features":
        path.write_text(json.dumps({**data, "features": ["judge", "vote", *FEATURES[2:]]}))
    elif content == "coef":
        path.write_text(json.dumps({**data, "coef": [1.0, 2.0]}))
    elif content == "samples":
        path.write_text(json.dumps({k: v for k, v in data.items() if k != "samples"}))
    else:
        path.write_text(content)
    with pytest.raises(UserError, match=message):
        ConfidenceModel.load(path)


def test_the_confidence_is_refused_for_another_k(tmp_path: Path) -> None:
    model = plain_model(samples=4)
    model.save(tmp_path / "c.json")
    assert ConfidenceModel.load(tmp_path / "c.json").samples == 4
    model.check_samples(4, "eval.num_samples")
    with pytest.raises(UserError, match=r"fitted on 4 sampled CoTs per question, eval\.num_s"):
        model.check_samples(5, "eval.num_samples")


def test_calibrated_predictions_abstain_under_the_threshold() -> None:
    model = plain_model()
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


def test_two_modes_are_paired_each_on_its_own_answers() -> None:
    # vote: right on 10 of 40 questions, ranked perfectly; mirror: right on 20, ranked too.
    vote_right = [i % 4 == 0 for i in range(40)]
    mirror_right = [i % 2 == 0 for i in range(40)]
    vote_conf = [0.9 if ok else 0.1 for ok in vote_right]
    mirror_conf = [0.9 if ok else 0.1 for ok in mirror_right]
    at_half = paired_metric(
        _selective_half, [vote_conf], [mirror_conf], [vote_right], second_correct=[mirror_right]
    )
    assert at_half["diff"] == pytest.approx(0.5) and at_half["low"] > 0
    # Scored against vote's outcomes, mirror's ranking would look no better than vote's.
    same = paired_metric(_selective_half, [vote_conf], [mirror_conf], [vote_right])
    assert same["diff"] == pytest.approx(0.0)
    with pytest.raises(ValueError):
        paired_metric(auroc, [[0.1]], [[0.2]], [[True]], second_correct=[[True, False]])
    with pytest.raises(ValueError, match="its question"):
        paired_metric(auroc, [[0.1, 0.2]], [[0.2, 0.1]], [[True, False]], [[0]])


def _selective_half(conf: list[float], right: list[bool]) -> float | None:
    return selective_accuracy(risk_coverage(conf, right), 0.5)


def test_question_groups_may_be_a_numpy_array() -> None:
    q = np.array([[0, 0, 1, 1]])
    y = [[True, False, True, False]]
    perfect = [[1.0, 0.0, 1.0, 0.0]]
    out = paired_metric(auroc, [[0.5] * 4], perfect, y, q, resamples=20)
    assert out["diff"] == pytest.approx(0.5) and out["n"] == 2 and isinstance(out["n"], int)
