"""The own-CoT judge's validation questions: which choose the judge, which fit the combined
confidence (issue 25).

With ``train.own_judge.split_validation`` (the default) the validation questions are split in
two halves, seeded by the recipe's seed: the judge's checkpoint is chosen on the first half's
own CoTs, and the combined confidence (``mindmirror.student.confidence``) is fitted, and its
threshold chosen, on the second half's ``mirror`` answers. The validation figures reported
with the fit are on the questions it was fitted on (in-sample for the fit), but not on those
the judge was chosen on; without the split they are in-sample for both, and say so.
"""

from __future__ import annotations

import json
import random
import time
from pathlib import Path
from typing import Any

from mindmirror.config import Recipe
from mindmirror.errors import UserError
from mindmirror.records import Record
from mindmirror.reporting.calibration import ranking_and_calibration
from mindmirror.student.confidence import (
    CONFIDENCE_FILE,
    fit_confidence,
    question_features,
    threshold_figures,
)
from mindmirror.student.formats import VERDICT, evaluation_input
from mindmirror.student.infer import Judged, Student, infer, mirror_prediction
from mindmirror.tasks.base import Task

#: What the reported validation figures are, with and without the split.
HELD_OUT = (
    "in-sample for the fit: the questions the confidence was fitted and its threshold chosen "
    "on; held out from the choice of the judge's checkpoint"
)
IN_SAMPLE = (
    "in-sample: the questions the confidence was fitted and its threshold chosen on, and the "
    "judge's checkpoint chosen on (train.own_judge.split_validation false)"
)


def split_validation(samples: list[dict[str, Any]], recipe: Recipe) -> tuple[list[str], list[str]]:
    """The validation question ids (in sample order) the judge is chosen on and those the
    confidence is fitted on: two seeded halves (the first one the larger), or every question
    for both when ``split_validation`` is off."""
    cfg = recipe.train.own_judge
    assert cfg is not None
    ids = list(dict.fromkeys(s["id"] for s in samples if s["split"] == "validation"))
    if not cfg.split_validation:
        return ids, ids
    shuffled = ids.copy()
    random.Random(recipe.seed).shuffle(shuffled)
    judge = set(shuffled[: (len(ids) + 1) // 2])
    return [i for i in ids if i in judge], [i for i in ids if i not in judge]


def fit_validation_confidence(
    final: Student,
    judge: Student,
    samples: list[dict[str, Any]],
    ids: list[str],
    records: list[Record],
    task: Task,
    recipe: Recipe,
    target: Path,
) -> dict[str, Any]:
    """Judge the own CoTs of the validation questions ``ids`` with ``judge``, vote as
    ``mirror`` does, fit the combined confidence on those answers and save it to ``target``;
    return its figures on those questions (the threshold, calibration and ranking, coverage at
    the threshold; ``figures`` says what they are in-sample for)."""
    from mindmirror.student.own_judge import own_sampling

    cfg = recipe.train.own_judge
    assert cfg is not None
    sampling = own_sampling(recipe)
    head = {
        "validation_questions": len(ids),
        "target_accuracy": cfg.target_accuracy,
        "samples": sampling.num_samples,
        "figures": HELD_OUT if cfg.split_validation else IN_SAMPLE,
    }
    if len(ids) < 2:
        # Nothing to fit on: mirror keeps its own confidence.
        target.unlink(missing_ok=True)
        split = " (half of them with train.own_judge.split_validation)"
        return {
            **head,
            "skipped": f"the combined confidence needs at least 2 validation questions to fit "
            f"on{split if cfg.split_validation else ''}, got {len(ids)}; teach more",
        }
    by_id = {r.id: r for r in records}
    questions = [by_id[i] for i in ids]
    choices = [tuple(r.choices) if r.choices else None for r in questions]
    mine = [[s for s in samples if s["id"] == i and s["split"] == "validation"] for i in ids]
    inputs = [
        evaluation_input(VERDICT, r.question, s["text"])
        for r, ss in zip(questions, mine, strict=True)
        for s in ss
    ]
    probs = iter(
        judge.generator.verdict_probs(
            inputs, batch_size=sampling.batch_size, max_input_tokens=sampling.max_input_tokens
        )
    )
    answers = infer(
        final, task, [r.question for r in questions], "answer", recipe.eval, choices=choices
    )
    rows, correct = [], []
    for record, opts, ss, answer in zip(questions, choices, mine, answers, strict=True):
        judged = [
            Judged(
                text=s["text"],
                answer=s["answer"],
                canonical=task.canonical(s["answer"], opts) if s["answer"] else None,
                probs=next(probs),
                logprob=s["logprob"],
            )
            for s in ss
        ]
        prediction = mirror_prediction(record.question, judged, 0.0)
        rows.append(question_features(prediction, answer))
        correct.append(bool(task.is_correct(prediction.answer, record.gold, opts)))
    try:
        model = fit_confidence(rows, correct, cfg.target_accuracy, sampling.num_samples)
    except UserError as error:
        # Nothing to calibrate on (all right or all wrong): mirror keeps its own confidence.
        target.unlink(missing_ok=True)
        return {**head, "skipped": str(error)}
    model.save(target)
    scores = [model.confidence(row) for row in rows]
    return {
        **head,
        **threshold_figures(scores, correct, model.threshold),
        **{f"validation_{k}": v for k, v in ranking_and_calibration(scores, correct).items()},
    }


def confidence_fit(
    final: Student,
    samples: list[dict[str, Any]],
    ids: list[str],
    records: list[Record],
    task: Task,
    recipe: Recipe,
    best: Path,
    fit_path: Path,
    settings: dict[str, Any],
) -> dict[str, Any]:
    """The fit of the combined confidence beside the judge ``best`` (``confidence_fit.json``
    at ``fit_path``), read back when it was made with the same ``settings`` (the judge's
    training, the target accuracy, the split, the samples), else made again."""
    from mindmirror.student.model import load_student

    if fit_path.is_file():
        fit = json.loads(fit_path.read_text())
        if fit.get("settings") == settings:
            return fit
    started = time.perf_counter()
    model, tok, kind = load_student(best)
    judge = Student(model, tok, kind)
    fit = fit_validation_confidence(
        final, judge, samples, ids, records, task, recipe, best / CONFIDENCE_FILE
    )
    fit["seconds"] = time.perf_counter() - started
    fit["settings"] = settings
    fit_path.write_text(json.dumps(fit, indent=2) + "\n")
    return fit
