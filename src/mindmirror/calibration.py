"""Calibration and paired comparisons of confidences (numbers in, numbers out).

ECE and Brier say whether a confidence means what it says (0.8 right 80% of the time); AUROC
and AURC say whether it ranks right answers above wrong ones. ``paired_metric`` compares two
confidences of the *same* questions by resampling questions together (seeded bootstrap).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from mindmirror.metrics import aurc, auroc, risk_coverage


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


def paired_metric(
    metric: Metric,
    first: Sequence[float],
    second: Sequence[float],
    correct: Sequence[bool],
    *,
    resamples: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> dict[str, float | int | None]:
    """``metric(second) - metric(first)`` on the same questions, with a paired percentile
    bootstrap interval (questions resampled together; resamples where the metric is undefined,
    e.g. AUROC with one class, are dropped). Returns ``{"diff", "low", "high", "n"}``."""
    if not len(first) == len(second) == len(correct):
        raise ValueError("paired confidences need the same questions")
    a, b = metric(first, correct), metric(second, correct)
    diff = None if a is None or b is None else b - a
    n = len(correct)
    result: dict[str, float | int | None] = {"diff": diff, "low": diff, "high": diff, "n": n}
    if diff is None or resamples <= 0 or n == 0:
        return result
    x, z, y = (np.asarray(v) for v in (first, second, correct))
    rng = np.random.default_rng(seed)
    deltas = []
    for idx in rng.integers(0, n, size=(resamples, n)):
        outcome = y[idx].tolist()
        left, right = metric(x[idx].tolist(), outcome), metric(z[idx].tolist(), outcome)
        if left is not None and right is not None:
            deltas.append(right - left)
    if deltas:
        tail = (1.0 - level) / 2 * 100
        low, high = np.percentile(deltas, [tail, 100 - tail])
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
