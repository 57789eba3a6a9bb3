"""Finished grid cells made without training: the files a cell's run directory holds after
``experiment`` (``eval/metrics.json``, ``eval/predictions.jsonl``, ``student/train.json``,
curves), written by the same functions evaluation uses, with seeded random answers."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

from mindmirror.evaluate import own_cot_judgement, prediction_rows
from mindmirror.reporting.metrics import mode_metrics
from mindmirror.rundir import RunDir
from mindmirror.student.infer import Judged, ModeRun, Prediction
from mindmirror.student.rows import stages
from mindmirror.tasks.base import Example

#: A sampled CoT as long as the real ones (the record must not keep it).
COT = "Tom has 3 apples and buys 4 more, so he has 3 + 4 = 7 apples in all. " * 6


def _sampled(rng: random.Random, skill: float, k: int, judged: bool) -> list[Judged]:
    samples = []
    for _ in range(k):
        answer = "7" if rng.random() < skill else str(rng.randint(1, 600))
        probs = None
        if judged:
            p = rng.random()
            probs = {"correct": p, "wrong": 1 - p, "uncertain": 0.0}
        samples.append(Judged(COT, answer, answer, probs))
    return samples


def fake_cell(
    run: RunDir,
    name: str,
    *,
    method: str,
    seed: int,
    modes: tuple[str, ...],
    skill: float,
    questions: int = 200,
    k: int = 5,
) -> RunDir:
    """A finished cell ``name`` of ``run``: every test question's gold is 7 and each answer
    is right with probability ``skill`` (seeded by the cell's name); confidences have 3
    decimals, so that a record keeps them exactly."""
    rng = random.Random(name)
    sub = run.cell(name)
    test = [Example(f"svamp-test-{i:04d}", "test", f"question {i}", "7") for i in range(questions)]
    metrics: dict[str, Any] = {
        "method": method,
        "num_cots": 1,
        "seed": seed,
        "questions": questions,
        "settings": {"bootstrap": 200, "num_samples": k, "modes": list(modes)},
        "engine": "llama_cpp",
        "verdict_fallbacks": {"student": 0, "judge": 3},
        "modes": {},
        "self_evaluation": None,
    }
    rows = []
    shared = [_sampled(rng, skill, k, judged=True) for _ in test]
    for mode in modes:
        preds = []
        for i, e in enumerate(test):
            if mode in ("answer", "cot"):
                answer = "7" if rng.random() < skill else "8"
                preds.append(Prediction(mode, e.question, answer, answer, round(rng.random(), 3)))
                continue
            samples = (
                shared[i]
                if mode != "vote"
                else [Judged(COT, s.answer, s.canonical) for s in shared[i]]
            )
            score = sum(s.p_correct for s in samples if s.canonical == "7") / k
            top = "7" if score > 0 else samples[0].canonical
            preds.append(
                Prediction(mode, e.question, top, top, round(rng.random(), 3), samples=samples)
            )
        correct = [p.canonical == "7" for p in preds]
        samples_ok = [[s.canonical == "7" for s in p.samples] for p in preds]
        mode_run = ModeRun(preds, 10.0 + seed)
        metrics["modes"][mode] = mode_metrics(preds, correct, 10.0 + seed, resamples=200)
        if mode.startswith("mirror"):
            metrics["modes"][mode]["judge"] = "stage-1 student"
            metrics["modes"][mode]["own_cots"] = own_cot_judgement(mode_run, samples_ok)
        rows += prediction_rows(mode_run, test, correct, samples_ok)
    sub.evaluation.mkdir(parents=True)
    (sub.evaluation / "metrics.json").write_text(json.dumps(metrics, indent=2))
    (sub.evaluation / "predictions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    fake_training(sub, method, validation=skill, seconds=100.0 + seed)
    return sub


def fake_training(
    sub: RunDir, method: str, *, validation: float, seconds: float, peak_mb: float | None = None
) -> None:
    """``student/train.json`` and the validation curves as training leaves them: each stage's
    best figure ``validation``, reached at the last of 3 evaluations; ``peak_mb`` the stages'
    peak memory (the stage's index added to it; None: a training from before it was kept)."""
    summary: dict[str, Any] = {"stages": {}, "precision": "bf16"}
    for index, stage in enumerate(stages(method)):  # type: ignore[arg-type]
        metric = "eval_verdict_agreement" if stage == "evaluation" else "eval_accuracy"
        curve = [
            {"step": 10 * (e + 1), "epoch": e + 1.0, metric: validation - 0.1 / (e + 1)}
            for e in range(2)
        ] + [{"step": 30, "epoch": 3.0, metric: validation}]
        if stage == "evaluation":  # the judge's ranking beside length alone, and a timing
            for point in curve:
                point.update(eval_verdict_auroc=validation, eval_length_auroc=0.68)
                point.update(eval_runtime=12.5)
        summary["stages"][stage] = {
            "best_metric": {metric: validation},
            "best_step": 30,
            "steps": 30,
            "train_seconds": seconds,
            "train_loss": 1.5,
            "precision": "bf16",
            "validation_items": 61,
            "rows": {"kept": 1000},
        }
        if peak_mb is not None:
            summary["stages"][stage].update(peak_rss_mb=peak_mb + index, peak_rss_scope="stage")
        sub.stage(stage).mkdir(parents=True, exist_ok=True)
        (sub.stage(stage) / "curve.json").write_text(json.dumps(curve))
    (sub.student / "train.json").write_text(json.dumps(summary))


def identity(sub: RunDir, method: str, seed: int, label: str, variant: str = "") -> dict[str, Any]:
    """What ``keep_record`` passes to ``cell_record`` for a cell of the tiny grids here."""
    return {
        "cell": sub.root.name,
        "method": method,
        "num_cots": 1,
        "seed": seed,
        "variant": variant,
        "label": label,
        "evaluations": "gold",
        "data_seed": 0,
    }


def size(path: Path) -> int:
    """A file's size in bytes."""
    return path.stat().st_size
