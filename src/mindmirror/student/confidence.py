"""One confidence a user can act on: the judge's P(correct) combined with the signals it
competes with, calibrated on validation (issue 25).

Per question, relative to the answer a mode chose (its ``canonical``), ``question_features``
reads:

- ``judge``: the judge's mean P(correct) over the sampled CoTs that reached that answer;
- ``vote_share``: the share of the K sampled CoTs that reached it;
- ``answer_prob``: the greedy ``predict:`` answer's geometric-mean token probability when the
  answer head gives the same answer, else 0 (it does not back the chosen answer);
- ``logprob``: the mean token log-probability of the CoTs that reached it;
- ``length``: their mean length in words (wrong CoTs tend to be longer).

``fit_confidence`` fits a logistic regression (scikit-learn) on standardised features of the
validation questions against "the chosen answer is right", and chooses the abstention
threshold there: the lowest confidence at which the answered validation questions reach the
target accuracy. The model is kept as JSON (coefficients, feature names, threshold, and K: the
sampled CoTs per question it was fitted on), never a pickle, and applied here with numpy
alone. ``vote_share`` only takes the values of k/K, so a model is refused for another K.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from mindmirror.errors import UserError

if TYPE_CHECKING:
    from mindmirror.student.infer import Prediction

FEATURES = ("judge", "vote_share", "answer_prob", "logprob", "length")
#: The file beside a judge that holds its run's combined confidence.
CONFIDENCE_FILE = "confidence.json"
#: A floor for log-probabilities of CoTs whose log-probability is unknown or -inf.
LOGPROB_FLOOR = -20.0


def question_features(prediction: Prediction, answer: Prediction | None) -> dict[str, float]:
    """The features of one question's chosen answer (see the module docstring); every one 0
    (``length`` too) when no sampled CoT reached an answer."""
    samples = prediction.samples
    chosen = prediction.canonical
    backers = [s for s in samples if chosen is not None and s.canonical == chosen]
    if not backers:
        return dict.fromkeys(FEATURES, 0.0) | {"logprob": LOGPROB_FLOOR}
    logprobs = [
        s.logprob if s.logprob is not None and math.isfinite(s.logprob) else LOGPROB_FLOOR
        for s in backers
    ]
    agrees = answer is not None and answer.canonical == prediction.canonical
    return {
        "judge": float(np.mean([s.p_correct for s in backers])),
        "vote_share": len(backers) / len(samples),
        "answer_prob": answer.confidence if agrees and answer is not None else 0.0,
        "logprob": max(LOGPROB_FLOOR, float(np.mean(logprobs))),
        "length": float(np.mean([len(s.text.split()) for s in backers])),
    }


@dataclass(frozen=True)
class ConfidenceModel:
    """A fitted logistic regression over standardised ``features`` and its threshold;
    ``samples``: K, the sampled CoTs per question of the questions it was fitted on."""

    features: tuple[str, ...]
    mean: tuple[float, ...]
    scale: tuple[float, ...]
    coef: tuple[float, ...]
    intercept: float
    threshold: float
    target_accuracy: float
    fitted_on: int
    samples: int

    def confidence(self, values: dict[str, float]) -> float:
        """P(the chosen answer is right) for one question's features."""
        x = (np.array([values[f] for f in self.features]) - self.mean) / self.scale
        return float(1.0 / (1.0 + np.exp(-(float(np.dot(self.coef, x)) + self.intercept))))

    def save(self, path: Path) -> None:
        """Write the model as JSON."""
        path.write_text(json.dumps(asdict(self), indent=2) + "\n")

    def check_samples(self, samples: int, where: str) -> None:
        """UserError unless ``samples`` CoTs per question is the K the model was fitted on
        (``where``: the setting that gave ``samples``)."""
        if samples != self.samples:
            raise UserError(
                f"the combined confidence was fitted on {self.samples} sampled CoTs per "
                f"question, {where} is {samples}: set it to {self.samples}, or train "
                "train.own_judge again with this K"
            )

    @classmethod
    def load(cls, path: Path) -> ConfidenceModel:
        """Read a model written by ``save``; UserError naming the file when it is not one
        (unreadable, not JSON, other fields, or features other than ``FEATURES``)."""
        fix = "delete it (mirror then judges without it) or train train.own_judge again"
        try:
            data = json.loads(path.read_text())
            model = cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})
            sizes = {len(model.mean), len(model.scale), len(model.coef)}
        except (OSError, ValueError, TypeError, AttributeError) as error:
            raise UserError(f"{path}: not a confidence model ({error}); {fix}") from None
        if model.features != FEATURES or sizes != {len(FEATURES)}:
            raise UserError(
                f"{path}: a confidence model of {len(model.coef)} coefficients for features "
                f"{list(model.features)}, this version reads {list(FEATURES)}; {fix}"
            )
        return model


def choose_threshold(
    confidence: Sequence[float], correct: Sequence[bool], target_accuracy: float
) -> float:
    """The lowest confidence t such that the questions at or above t are right at least
    ``target_accuracy`` of the time; above every confidence (abstain always) when none is."""
    order = sorted(zip(confidence, correct, strict=True), key=lambda pair: -pair[0])
    best, hits = math.nextafter(1.0, 2.0), 0
    for k, (conf, ok) in enumerate(order, 1):
        hits += ok
        last_of_tie = k == len(order) or order[k][0] != conf
        if last_of_tie and hits / k >= target_accuracy:
            best = conf
    return float(best)


def threshold_figures(
    scores: Sequence[float], correct: Sequence[bool], threshold: float
) -> dict[str, float | None]:
    """What a threshold does on the questions it was chosen on: their accuracy, the threshold,
    the share of them answered (confidence at or above it) and the accuracy of those."""
    answered = [ok for s, ok in zip(scores, correct, strict=True) if s >= threshold]
    return {
        "validation_accuracy": sum(correct) / len(correct),
        "threshold": threshold,
        "coverage_at_threshold": len(answered) / len(scores),
        "accuracy_at_threshold": sum(answered) / len(answered) if answered else None,
    }


def fit_confidence(
    rows: Sequence[dict[str, float]],
    correct: Sequence[bool],
    target_accuracy: float,
    samples: int,
) -> ConfidenceModel:
    """Fit the combined confidence on validation questions' features and outcomes (each
    question's features read from ``samples`` sampled CoTs).

    Raises:
        UserError: fewer than two questions, or only right (or only wrong) answers.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    if len(rows) < 2 or len(set(correct)) < 2:
        raise UserError(
            f"the combined confidence needs validation questions answered both right and wrong "
            f"({len(rows)} questions, {sum(correct)} right); teach more validation questions"
        )
    x = np.array([[row[f] for f in FEATURES] for row in rows], dtype=float)
    scaler = StandardScaler().fit(x)
    model = LogisticRegression().fit(scaler.transform(x), np.asarray(correct, dtype=int))
    scale = np.where(scaler.scale_ > 0, scaler.scale_, 1.0)
    fitted = ConfidenceModel(
        features=FEATURES,
        mean=tuple(float(v) for v in scaler.mean_),
        scale=tuple(float(v) for v in scale),
        coef=tuple(float(v) for v in model.coef_[0]),
        intercept=float(model.intercept_[0]),
        threshold=0.0,
        target_accuracy=target_accuracy,
        fitted_on=len(rows),
        samples=samples,
    )
    scores = [fitted.confidence(row) for row in rows]
    return replace(fitted, threshold=choose_threshold(scores, correct, target_accuracy))


def calibrated(
    predictions: Sequence[Prediction],
    answers: Sequence[Prediction | None],
    model: ConfidenceModel,
) -> list[Prediction]:
    """Copies of ``predictions`` whose confidence is the combined one; each abstains when it
    has no answer or its confidence is under the model's threshold."""
    result = []
    for prediction, answer in zip(predictions, answers, strict=True):
        conf = model.confidence(question_features(prediction, answer))
        abstain = prediction.canonical is None or conf < model.threshold
        result.append(replace(prediction, confidence=conf, abstained=abstain))
    return result
