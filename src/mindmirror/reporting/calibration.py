"""Calibration and paired comparisons of confidences (numbers in, numbers out).

ECE and Brier say whether a confidence means what it says (0.8 right 80% of the time); AUROC
and AURC say whether it ranks right answers above wrong ones. ``paired_metric`` compares two
confidences of the *same* questions by resampling questions together (seeded bootstrap).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from mindmirror.reporting.metrics import aurc, auroc, risk_coverage, selective_accuracy


def brier(confidence: Sequence[float], correct: Sequence[bool]) -> float | None:
    """Mean squared gap between the confidence and the 0/1 outcome (lower is better)."""
    if not confidence:
        return None
    p, y = np.asarray(confidence, dtype=float), np.asarray(correct, dtype=float)
    return float(np.mean((p - y) ** 2))


def ece(confidence: Sequence[float], correct: Sequence[bool], bins: int = 10) -> float | None:
    """Expected calibration error: over ``bins`` equal-width confidence bins, the share of
    questions in a bin times the gap between its mean confidence and its accuracy."""
    if not confidence:
        return None
    p, y = np.asarray(confidence, dtype=float), np.asarray(correct, dtype=float)
    which = np.minimum((p * bins).astype(int), bins - 1)
    total = 0.0
    for b in range(bins):
        inside = which == b
        if inside.any():
            total += inside.mean() * abs(p[inside].mean() - y[inside].mean())
    return float(total)


def aurc_of(confidence: Sequence[float], correct: Sequence[bool]) -> float:
    """AURC of one confidence (``metrics.aurc`` over its risk-coverage curve)."""
    return aurc(risk_coverage(confidence, correct))


Metric = Callable[[Sequence[float], Sequence[bool]], float | None]


def selective_at(coverage: float) -> Metric:
    """Selective accuracy at ``coverage`` as a metric of (confidence, correct)."""

    def metric(conf: Sequence[float], right: Sequence[bool]) -> float | None:
        return selective_accuracy(risk_coverage(conf, right), coverage)

    return metric


def paired_metric(
    metric: Metric,
    first: Sequence[Sequence[float]],
    second: Sequence[Sequence[float]],
    correct: Sequence[Sequence[bool]],
    question: Sequence[Sequence[int]] | None = None,
    *,
    second_correct: Sequence[Sequence[bool]] | None = None,
    resamples: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> dict[str, float | int | None]:
    """``metric(second) - metric(first)``, averaged over seeds, with a paired percentile
    bootstrap interval over *questions*.

    Each argument holds one sequence per seed, over the same items of that seed. ``question``
    gives each item's question index (several sampled CoTs of one question share it; default:
    one item per question, the same questions in every seed): a resample draws questions with
    replacement and takes all their items in every seed, so question difficulty cancels out
    between the two confidences and across seeds. ``second_correct``: the outcomes ``second``
    predicts where they differ from ``correct`` (two answer-choosing modes, each ranking its
    own answers to the same questions). Resamples where the metric is undefined
    (AUROC with one class) are dropped. Returns ``{"diff", "low", "high", "n"}`` (``n``:
    questions).
    """
    outcomes = correct if second_correct is None else second_correct
    if not len(first) == len(second) == len(correct) == len(outcomes) or not first:
        raise ValueError("paired confidences need the same seeds")
    for a, b, y, z in zip(first, second, correct, outcomes, strict=True):
        if not len(a) == len(b) == len(y) == len(z):
            raise ValueError("paired confidences need the same items")
    groups = [range(len(y)) for y in correct] if question is None else question
    if len(groups) != len(correct) or any(
        len(g) != len(y) for g, y in zip(groups, correct, strict=True)
    ):
        raise ValueError("every item needs its question")
    n = int(max((max(g, default=-1) for g in groups), default=-1)) + 1
    runs = [
        (
            np.asarray(a, dtype=float),
            np.asarray(b, dtype=float),
            np.asarray(y, dtype=bool),
            np.asarray(z, dtype=bool),
        )
        for a, b, y, z in zip(first, second, correct, outcomes, strict=True)
    ]
    members = [
        [np.flatnonzero(np.asarray(g) == q) for q in range(n)] for g in (list(g) for g in groups)
    ]

    def diff(pick: Sequence[int] | None) -> float | None:
        deltas = []
        for (a, b, y, z), by_q in zip(runs, members, strict=True):
            idx = np.concatenate([by_q[q] for q in pick]) if pick is not None else slice(None)
            left, right = (
                metric(a[idx].tolist(), y[idx].tolist()),
                metric(b[idx].tolist(), z[idx].tolist()),
            )
            if left is None or right is None:
                return None
            deltas.append(right - left)
        return float(np.mean(deltas))

    point = diff(None)
    result: dict[str, float | int | None] = {"diff": point, "low": point, "high": point, "n": n}
    if point is None or resamples <= 0 or n == 0:
        return result
    rng = np.random.default_rng(seed)
    draws = [diff(pick) for pick in rng.integers(0, n, size=(resamples, n)).tolist()]
    kept = [d for d in draws if d is not None]
    if kept:
        tail = (1.0 - level) / 2 * 100
        low, high = np.percentile(kept, [tail, 100 - tail])
        result.update(low=float(low), high=float(high))
    return result


def ranking_and_calibration(
    confidence: Sequence[float], correct: Sequence[bool]
) -> dict[str, float | None]:
    """AUROC, AURC, ECE and Brier of one confidence over the same questions."""
    return {
        "auroc": auroc(confidence, correct),
        "aurc": aurc_of(confidence, correct),
        "ece": ece(confidence, correct),
        "brier": brier(confidence, correct),
    }
