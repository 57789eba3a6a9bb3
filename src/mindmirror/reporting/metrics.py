"""Pure metric functions over scored predictions: accuracy with a seeded bootstrap interval,
paired differences, risk-coverage, AURC, selective accuracy, AUROC, parse rate, agreement.

Nothing here loads a model or reads a run: numbers in, numbers out (numpy only, no torch).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from mindmirror.student.infer import Prediction


def _denoised(value: float) -> float:
    """Means of per-seed averages (thirds, say) carry float noise such as -5e-19 where the
    exact value is 0: rounded away, so noise never decides whether an interval excludes zero
    (+ 0.0 turns the -0.0 that rounding leaves into 0.0, which prints as +0.000)."""
    return round(float(value), 12) + 0.0


def mean_interval(
    values: Sequence[float], *, resamples: int = 1000, seed: int = 0, level: float = 0.95
) -> tuple[float, float, float]:
    """Mean of ``values`` and its percentile-bootstrap interval (seeded, so reruns give the same
    bounds): ``(mean, low, high)``; the bounds equal the mean when ``resamples`` is 0, and all
    three are 0 for an empty input."""
    n = len(values)
    if n == 0:
        return 0.0, 0.0, 0.0
    array = np.asarray(values, dtype=float)
    mean = _denoised(array.mean())
    if resamples <= 0:
        return mean, mean, mean
    rng = np.random.default_rng(seed)
    means = array[rng.integers(0, n, size=(resamples, n))].mean(axis=1)
    tail = (1.0 - level) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return mean, _denoised(low), _denoised(high)


def accuracy_interval(
    correct: Sequence[bool], *, resamples: int = 1000, seed: int = 0, level: float = 0.95
) -> dict[str, float]:
    """Accuracy with a percentile-bootstrap interval: ``{"accuracy", "low", "high", "n"}``
    (see ``mean_interval``)."""
    acc, low, high = mean_interval(
        [float(c) for c in correct], resamples=resamples, seed=seed, level=level
    )
    return {"accuracy": acc, "low": low, "high": high, "n": len(correct)}


def paired_difference(
    first: Sequence[float],
    second: Sequence[float],
    *,
    resamples: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> dict[str, float]:
    """Mean of ``second - first`` over the same questions, with a paired percentile-bootstrap
    interval (questions resampled together, so question difficulty cancels out).

    ``first`` and ``second`` hold one score per question in the same order (e.g. correctness,
    or its mean over seeds). Returns ``{"diff", "low", "high", "n"}``.
    """
    if len(first) != len(second):
        raise ValueError("paired scores need the same questions")
    delta = [b - a for a, b in zip(first, second, strict=True)]
    diff, low, high = mean_interval(delta, resamples=resamples, seed=seed, level=level)
    return {"diff": diff, "low": low, "high": high, "n": len(delta)}


def risk_coverage(confidence: Sequence[float], correct: Sequence[bool]) -> list[dict[str, float]]:
    """Accuracy when answering only the most confident questions, at every coverage k/n.

    Questions are ranked by confidence, highest first. Questions of equal confidence have no
    order, so inside a tie the curve holds the *expected* accuracy over random orders (the
    tie's hits spread evenly over its positions): the curve, AURC and selective accuracy do
    not depend on the order the questions came in. Point k holds ``coverage = k/n`` and the
    accuracy over the top k.
    """
    if len(confidence) != len(correct):
        raise ValueError("confidence and correct must have the same length")
    ties: dict[float, list[bool]] = defaultdict(list)
    for conf, ok in zip(confidence, correct, strict=True):
        ties[conf].append(bool(ok))
    n = len(confidence)
    points: list[dict[str, float]] = []
    hits = 0.0
    for conf in sorted(ties, reverse=True):
        group = ties[conf]
        share = sum(group) / len(group)
        for _ in group:
            hits += share
            k = len(points) + 1
            points.append({"coverage": k / n, "accuracy": hits / k})
    return points


def aurc(curve: Sequence[dict[str, float]]) -> float:
    """Area under the risk-coverage curve: mean selective risk (1 - accuracy) over coverages.

    Lower is better; a perfect ranking of an accuracy-a model reaches the minimum possible.
    """
    if not curve:
        return 0.0
    return float(np.mean([1.0 - p["accuracy"] for p in curve]))


#: Coverages at which selective accuracy is reported (answer only the most confident share).
COVERAGES = (0.5, 0.8)


def selective_accuracy(curve: Sequence[dict[str, float]], coverage: float) -> float | None:
    """Accuracy over the most confident ``coverage`` share of questions (the first curve point
    at or above that coverage); None for an empty curve."""
    if not curve:
        return None
    k = max(1, math.ceil(coverage * len(curve) - 1e-9))
    return curve[k - 1]["accuracy"]


def aurc_interval(
    confidence: Sequence[float],
    correct: Sequence[bool],
    *,
    resamples: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> tuple[float, float]:
    """Percentile-bootstrap interval of AURC over questions (seeded); ``(aurc, aurc)`` when
    ``resamples`` is 0."""
    point = aurc(risk_coverage(confidence, correct))
    n = len(correct)
    if resamples <= 0 or n == 0:
        return point, point
    conf, hits = np.asarray(confidence, dtype=float), np.asarray(correct, dtype=bool)
    rng = np.random.default_rng(seed)
    values = [
        aurc(risk_coverage(conf[idx].tolist(), hits[idx].tolist()))
        for idx in rng.integers(0, n, size=(resamples, n))
    ]
    tail = (1.0 - level) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail])
    return float(low), float(high)


def auroc(scores: Sequence[float], labels: Sequence[bool]) -> float | None:
    """Probability that a random positive outscores a random negative (ties count half).

    None when one class is absent (the number is undefined then).
    """
    pos = [s for s, y in zip(scores, labels, strict=True) if y]
    neg = [s for s, y in zip(scores, labels, strict=True) if not y]
    if not pos or not neg:
        return None
    p, q = np.asarray(pos)[:, None], np.asarray(neg)[None, :]
    return float(((p > q).sum() + 0.5 * (p == q).sum()) / (len(pos) * len(neg)))


def parse_rate(predictions: Sequence[Prediction]) -> float:
    """Share of predictions whose output held an answer the task could read."""
    if not predictions:
        return 0.0
    return sum(p.canonical is not None for p in predictions) / len(predictions)


def agreement(left: Sequence[Any], right: Sequence[Any]) -> float | None:
    """Share of positions where the two sequences agree; None when empty."""
    if len(left) != len(right):
        raise ValueError("agreement needs sequences of the same length")
    if not left:
        return None
    return sum(a == b for a, b in zip(left, right, strict=True)) / len(left)


def mode_metrics(
    predictions: Sequence[Prediction],
    correct: Sequence[bool],
    seconds: float,
    *,
    resamples: int = 1000,
    seed: int = 0,
    abstains: bool = False,
) -> dict[str, Any]:
    """All metrics of one mode: accuracy at full coverage with its interval, parse rate,
    answers/s, the risk-coverage curve, AURC with its interval, and the selective accuracy at
    each of ``COVERAGES``; ``mirror`` modes, and a mode that ``abstains`` (a calibrated
    ``answer``), add the coverage and accuracy of the questions it did not abstain on."""
    result: dict[str, Any] = accuracy_interval(correct, resamples=resamples, seed=seed)
    result["parse_rate"] = parse_rate(predictions)
    result["seconds"] = seconds
    result["answers_per_s"] = len(predictions) / seconds if seconds > 0 else None
    confidence = [p.confidence for p in predictions]
    curve = risk_coverage(confidence, correct)
    result["aurc"] = aurc(curve)
    result["aurc_low"], result["aurc_high"] = aurc_interval(
        confidence, correct, resamples=resamples, seed=seed
    )
    result["at_coverage"] = {f"{c:g}": selective_accuracy(curve, c) for c in COVERAGES}
    result["risk_coverage"] = curve
    answered = [c for p, c in zip(predictions, correct, strict=True) if not p.abstained]
    if abstains or any(p.mode.startswith("mirror") for p in predictions):
        result["coverage"] = len(answered) / len(predictions) if predictions else 0.0
        result["selective_accuracy"] = sum(answered) / len(answered) if answered else None
    return result
