"""``answer`` mode's confidence, recalibrated on validation (issue 25; ``train.answer_confidence``).

A distilled student is sure of wrong equations: on the SVAMP protocol its greedy answers'
geometric-mean token probability averages above 0.9 while half of them are wrong (ECE about
0.45-0.51). It still ranks answers (AUROC 0.71-0.83 on test), so the fix is a map from that
probability to P(right) that keeps its order: Platt scaling, a logistic regression
(scikit-learn) of "the answer is right" on the probability's logit, fitted on the validation
questions' greedy answers. A slope that is not positive would turn the order round, so such a
fit is refused (the token probability does not rank on validation) and ``answer`` keeps its raw
probability. The abstention threshold is chosen there too, for a target accuracy, as the
combined confidence's is (``confidence.choose_threshold``).

The fit is kept as JSON beside the final student (``answer_confidence.json``), applied with
``math`` alone; ``mindmirror export --format hf`` copies it (a GGUF file carries the weights
only), and ``eval``, ``predict`` and ``serve`` load it with the student. ``serve`` calibrates
greedy answers only: a sampled answer's probability is taken under the sampling distribution,
outside what the map was fitted on. Its figures (``fit_figures``) are in-sample: the
questions the threshold was chosen on, which are also those the final checkpoint was chosen
on (unless ``train.val_limit`` chose it on a part of them).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mindmirror.errors import UserError
from mindmirror.files import write_atomic
from mindmirror.progress import log_console
from mindmirror.reporting.calibration import ranking_and_calibration
from mindmirror.student.confidence import choose_threshold, threshold_figures

if TYPE_CHECKING:
    from mindmirror.config import Recipe
    from mindmirror.records import Record
    from mindmirror.rundir import RunDir
    from mindmirror.student.infer import Prediction, Student
    from mindmirror.tasks.base import Task

#: The file beside a final student that holds its ``answer`` confidence.
ANSWER_CONFIDENCE_FILE = "answer_confidence.json"
#: Token probabilities are clipped into [EPS, 1 - EPS] before the logit (1.0 happens).
EPS = 1e-6


def logit(probability: float) -> float:
    """log(p / (1 - p)), with ``p`` clipped into [EPS, 1 - EPS]."""
    p = min(max(probability, EPS), 1.0 - EPS)
    return math.log(p / (1.0 - p))


@dataclass(frozen=True)
class AnswerCalibration:
    """P(right) = sigmoid(slope * logit(token probability) + intercept), and the threshold
    under which ``answer`` abstains; ``fitted_on``: the validation questions of the fit."""

    slope: float
    intercept: float
    threshold: float
    target_accuracy: float
    fitted_on: int

    def confidence(self, probability: float) -> float:
        """The calibrated confidence of an answer whose token probability is ``probability``."""
        z = self.slope * logit(probability) + self.intercept
        return 1.0 / (1.0 + math.exp(-z)) if z >= 0 else math.exp(z) / (1.0 + math.exp(z))

    def save(self, path: Path) -> None:
        """Write the calibration as JSON (atomically)."""
        write_atomic(path, json.dumps(asdict(self), indent=2) + "\n")

    @classmethod
    def load(cls, path: Path) -> AnswerCalibration:
        """Read a calibration written by ``save``; UserError naming the file when it is not
        one (unreadable, not JSON, other fields, a slope that is not positive)."""
        fix = "delete it (answer then returns the raw token probability) or train again"
        try:
            data = json.loads(path.read_text())
            model = cls(**data)
            valid = model.slope > 0 and all(
                math.isfinite(float(v)) for v in (model.slope, model.intercept, model.threshold)
            )
        except (OSError, ValueError, TypeError) as error:
            raise UserError(f"{path}: not an answer calibration ({error}); {fix}") from None
        if not valid:
            raise UserError(f"{path}: an answer calibration needs a finite positive slope; {fix}")
        return model


def fit_answer_calibration(
    probability: Sequence[float], correct: Sequence[bool], target_accuracy: float
) -> AnswerCalibration:
    """Platt-scale ``probability`` (validation answers' token probabilities) against
    ``correct`` and choose the threshold for ``target_accuracy`` on the same answers.

    Raises:
        UserError: fewer than two answers, only right (or only wrong) ones, or a fit whose
            slope is not positive (the probability does not rank answers on validation).
    """
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    if len(probability) < 2 or len(set(correct)) < 2:
        raise UserError(
            f"answer calibration needs validation answers both right and wrong "
            f"({len(probability)} answers, {sum(correct)} right); teach more validation questions"
        )
    x = np.array([[logit(p)] for p in probability])
    fit = LogisticRegression().fit(x, np.asarray(correct, dtype=int))
    slope, intercept = float(fit.coef_[0][0]), float(fit.intercept_[0])
    if slope <= 0:
        raise UserError(
            f"answer calibration: on the {len(probability)} validation answers a higher token "
            f"probability does not mean a right answer more often (slope {slope:.3g}); answer "
            "keeps its raw token probability"
        )
    model = AnswerCalibration(slope, intercept, 0.0, target_accuracy, len(probability))
    scores = [model.confidence(p) for p in probability]
    return replace(model, threshold=choose_threshold(scores, correct, target_accuracy))


def calibrated_answers(
    predictions: Sequence[Prediction], model: AnswerCalibration
) -> list[Prediction]:
    """Copies of ``answer`` predictions whose confidence is the calibrated one; each abstains
    when it has no answer or its confidence is under the threshold."""
    out = []
    for prediction in predictions:
        conf = model.confidence(prediction.confidence)
        abstain = prediction.canonical is None or conf < model.threshold
        out.append(replace(prediction, confidence=conf, abstained=abstain))
    return out


def fit_figures(
    model: AnswerCalibration, probability: Sequence[float], correct: Sequence[bool]
) -> dict[str, Any]:
    """The fit on its own validation answers: accuracy, the threshold and the coverage and
    accuracy above it, ranking and calibration of the raw and the calibrated confidence."""
    scores = [model.confidence(p) for p in probability]
    return {
        **threshold_figures(scores, correct, model.threshold),
        "raw": ranking_and_calibration(list(probability), list(correct)),
        "calibrated": ranking_and_calibration(scores, list(correct)),
    }


def validation_questions(records: list[Record]) -> list[Record]:
    """The records' validation questions, each id once, in the order they first appear."""
    return list({r.id: r for r in records if r.split == "validation"}.values())


def validation_answers(
    final: Student, records: list[Record], task: Task, recipe: Recipe
) -> tuple[list[str], list[float], list[bool]]:
    """The records' validation questions (ids, once each) answered greedily in ``answer``
    mode as ``eval`` answers (``recipe.eval``): each answer's raw token probability and
    whether it is right."""
    from mindmirror.student.infer import infer

    questions = validation_questions(records)
    choices = [tuple(r.choices) if r.choices else None for r in questions]
    raw = replace(final, answer_confidence=None)  # the probability the calibration maps
    answers = infer(
        raw, task, [r.question for r in questions], "answer", recipe.eval, choices=choices
    )
    correct = [
        bool(task.is_correct(a.answer, r.gold, opts))
        for a, r, opts in zip(answers, questions, choices, strict=True)
    ]
    return [r.id for r in questions], [a.confidence for a in answers], correct


def answer_confidence_fit(
    folder: Path,
    trained: dict[str, Any],
    records: list[Record],
    task: Task,
    recipe: Recipe,
    fit_path: Path,
) -> dict[str, Any]:
    """Fit ``answer`` mode's calibration of the final student at ``folder`` (``trained``: the
    result of the stage that made it) on the records' validation questions and save it
    there; return its figures, also written to ``fit_path`` with the validation answers.
    Those answers are read back when the same training answered the same questions with
    the same settings, so another target accuracy only fits again. A fit that cannot be made
    (see ``fit_answer_calibration``) removes any earlier one and says why under ``skipped``;
    one whose threshold answers no validation question says so under ``warning``."""
    cfg = recipe.train.answer_confidence
    assert cfg is not None
    ids = [r.id for r in validation_questions(records)]
    settings = {
        # Which training made the student: another one (a stage trained again) answers again.
        "student": trained["best"],
        "train_seconds": trained["train_seconds"],
        "questions": hashlib.sha256("\n".join(ids).encode()).hexdigest()[:16],
        "answer_max_tokens": recipe.eval.answer_max_tokens,
        "max_input_tokens": recipe.eval.max_input_tokens,
    }
    before = json.loads(fit_path.read_text()) if fit_path.is_file() else {}
    answers = before.get("answers") or {}
    if answers.get("settings") != settings:
        answers = _answer_validation(folder, records, task, recipe, settings)
    probability, correct = answers["probability"], [c == "1" for c in answers["correct"]]
    fit: dict[str, Any] = {
        "validation_questions": len(correct),
        "target_accuracy": cfg.target_accuracy,
        "seconds": answers["seconds"],
    }
    target = folder / ANSWER_CONFIDENCE_FILE
    try:
        model = fit_answer_calibration(probability, correct, cfg.target_accuracy)
    except UserError as error:
        target.unlink(missing_ok=True)
        fit["skipped"] = str(error)
    else:
        model.save(target)
        fit |= {"slope": model.slope, "intercept": model.intercept}
        fit |= fit_figures(model, probability, correct)
        if not fit["coverage_at_threshold"]:
            fit["warning"] = (
                f"no threshold reaches accuracy {cfg.target_accuracy} on the {len(correct)} "
                "validation answers: answer abstains on every question; lower "
                "train.answer_confidence.target_accuracy"
            )
    write_atomic(fit_path, json.dumps({**fit, "answers": answers}, indent=2) + "\n")
    return fit


def _answer_validation(
    folder: Path, records: list[Record], task: Task, recipe: Recipe, settings: dict[str, Any]
) -> dict[str, Any]:
    """Load the student at ``folder`` and answer the validation questions; the answers as
    ``answer_confidence_fit`` keeps them (``settings``: what made them)."""
    from mindmirror.student.infer import Student
    from mindmirror.student.model import load_student

    started = time.perf_counter()
    model, tok, kind = load_student(folder)
    _, probability, correct = validation_answers(Student(model, tok, kind), records, task, recipe)
    return {
        "settings": settings,
        "seconds": time.perf_counter() - started,
        "probability": probability,
        "correct": "".join("1" if ok else "0" for ok in correct),
    }


def calibrate_final_student(
    recipe: Recipe,
    run: RunDir,
    records: list[Record],
    task: Task,
    trained: dict[str, Any],
    quiet: bool,
) -> dict[str, Any] | None:
    """``train``'s last step: fit ``answer`` mode's calibration beside the final student
    (``trained``: the result of the stage that made it) and return its figures, or, with
    ``train.answer_confidence`` off, remove an earlier run's calibration from a reused student
    and return None. The main process answers the validation questions, the others read them
    back."""
    # Imported here: it loads the training stack, which eval, predict and serve never need.
    from mindmirror.student.processes import main_process_first

    folder = run.root / trained["best"]
    if recipe.train.answer_confidence is None:
        if int(os.environ.get("RANK", "0")) == 0:
            (folder / ANSWER_CONFIDENCE_FILE).unlink(missing_ok=True)
        return None
    with main_process_first():
        fit = answer_confidence_fit(
            folder, trained, records, task, recipe, run.student / "answer_confidence_fit.json"
        )
    for problem in ("skipped", "warning"):
        if problem in fit:
            log_console(quiet=quiet).print(f"[yellow]answer calibration[/]: {fit[problem]}")
    return fit
