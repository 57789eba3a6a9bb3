"""`mindmirror eval` over a run's test split, and the check of the student's self-evaluation.

``evaluate`` scores the run's final student (or ``eval.checkpoint``) on the TEST split in each
requested mode and writes ``eval/predictions.jsonl`` (one line per question and mode) and
``eval/metrics.json``; the metric functions it uses live in ``mindmirror.reporting.metrics``.

Checkpoints are chosen on validation by training; this module only reads test, once.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from mindmirror.config import EvalConfig, InferMode, Recipe
from mindmirror.errors import UserError
from mindmirror.files import open_atomic, write_json
from mindmirror.progress import log_console
from mindmirror.records import Record, read_records
from mindmirror.reporting.figures import applicable_modes
from mindmirror.reporting.metrics import agreement, auroc, mode_metrics
from mindmirror.rundir import RunDir
from mindmirror.student.formats import VERDICT, evaluation_input
from mindmirror.student.infer import (
    MODES,
    OWN_JUDGE_MODE,
    ModeRun,
    Student,
    infer_modes,
)
from mindmirror.tasks.base import Example, Task
from mindmirror.tasks.splits import question_key

console = log_console()


# ----------------------------------------------------------------- self-evaluation check


def sample_correctness(task: Task, mode_run: ModeRun, test: Sequence[Example]) -> list[list[bool]]:
    """Per question, whether each of its sampled CoTs is right (gold, the task's scorer)."""
    return [
        [bool(task.is_correct(s.answer, example.gold, example.choices)) for s in p.samples]
        for p, example in zip(mode_run.predictions, test, strict=True)
    ]


def own_cot_judgement(
    mode_run: ModeRun, correct: Sequence[Sequence[bool]]
) -> dict[str, Any] | None:
    """How well the judge's P(correct) ranks the student's *own* sampled CoTs by gold
    correctness (every sample of every question, ``correct`` from ``sample_correctness``):
    AUROC beside ``length_auroc`` (shorter CoTs, in words, ranked as more likely right: the
    bar a judge must pass), and the share of correct samples."""
    scores, shortness, labels = [], [], []
    for prediction, oks in zip(mode_run.predictions, correct, strict=True):
        scores += [sample.p_correct for sample in prediction.samples]
        shortness += [-float(len(sample.text.split())) for sample in prediction.samples]
        labels += list(oks)
    if not scores:
        return None
    return {
        "samples": len(scores),
        "correct_share": sum(labels) / len(labels),
        "auroc": auroc(scores, labels),
        "length_auroc": auroc(shortness, labels),
    }


def self_evaluation_agreement(
    student: Student,
    records: Sequence[Record],
    *,
    batch_size: int = 8,
    max_input_tokens: int = 512,
    quiet: bool = True,
) -> dict[str, Any] | None:
    """How the student's verdicts on held-out teacher CoTs match the teacher and gold.

    Uses every parsed CoT of the given (test) records. ``teacher`` compares the student's most
    likely verdict with each parsed teacher verdict; ``gold`` compares "student says correct"
    with the CoT's gold correctness; ``auroc`` ranks CoTs by the student's P(correct) against
    gold, ``length_auroc`` by their shortness alone. The teacher's own agreement with gold is
    given for reference. None without CoTs.
    """
    pairs = [(r, c) for r in records for c in r.cots if c.parsed and c.text.strip()]
    if not pairs:
        return None
    judge = student.judge_or_self
    probs = judge.generator.verdict_probs(
        [evaluation_input(VERDICT, r.question, c.text) for r, c in pairs],
        batch_size=batch_size,
        max_input_tokens=max_input_tokens,
        progress=None if quiet else "self-evaluating held-out teacher CoTs",
    )
    mine = [max(p, key=p.__getitem__) for p in probs]
    student_t, teacher_t, sources = [], [], set()
    for verdict, (_, cot) in zip(mine, pairs, strict=True):
        for evaluation in cot.evaluations:
            if evaluation.parsed and evaluation.verdict is not None:
                student_t.append(verdict)
                teacher_t.append(evaluation.verdict)
                sources.add(evaluation.source)
    gold = [
        (v, p, c) for v, p, (_, c) in zip(mine, probs, pairs, strict=True) if c.correct is not None
    ]
    teacher_vs_gold = [
        (e.verdict == "correct", c.correct)
        for _, c in pairs
        if c.correct is not None
        for e in c.evaluations
        if e.parsed and e.verdict is not None
    ]
    return {
        "cots": len(pairs),
        "questions": len({r.id for r, _ in pairs}),
        "teacher": agreement(student_t, teacher_t),
        "teacher_pairs": len(teacher_t),
        "teacher_source": sorted(sources),
        "gold": agreement([v == "correct" for v, _, _ in gold], [c.correct for _, _, c in gold]),
        "gold_cots": len(gold),
        "auroc": auroc([p["correct"] for _, p, _ in gold], [bool(c.correct) for _, _, c in gold]),
        # What CoT length alone reaches (shorter = more likely right): the bar a judge must pass.
        "length_auroc": auroc(
            [-float(len(judge.tokenizer(c.text)["input_ids"])) for _, _, c in gold],
            [bool(c.correct) for _, _, c in gold],
        ),
        "teacher_vs_gold": agreement(
            [a for a, _ in teacher_vs_gold], [b for _, b in teacher_vs_gold]
        ),
        "student_verdicts": {v: mine.count(v) for v in ("correct", "wrong", "uncertain")},
    }


# ------------------------------------------------------------------------------- evaluate


def check_modes(modes: Sequence[str]) -> list[InferMode]:
    """Validate mode names; UserError naming the bad one and the valid ones."""
    for mode in modes:
        if mode not in MODES:
            raise UserError(f"unknown mode {mode!r}: choose from {', '.join(MODES)}")
    return list(modes)  # type: ignore[arg-type]


def _held_out_records(run: RunDir, test: Sequence[Example]) -> list[Record]:
    """Test records with teacher CoTs (present only when teach ran with test in its splits),
    matched to the scored questions by id or by normalized question text."""
    if not run.records.is_file():
        return []
    ids = {e.id for e in test}
    keys = {question_key(e.question) for e in test}
    try:
        records = read_records(run.records)
    except UserError as error:
        raise UserError(f"{error}: re-run `mindmirror teach` to rewrite the records") from None
    return [
        r
        for r in records
        if r.split == "test" and (r.id in ids or question_key(r.question) in keys)
    ]


def cut_cot_warning(recipe: Recipe, modes: Sequence[str]) -> str | None:
    """Why the modes that sample CoTs would cut them before their answer, or None.

    The student learnt to write CoTs of up to ``train.max_target_tokens``; generating fewer
    cuts the longer ones before their answer, so they score as wrong and the judge sees CoTs
    unlike any it was trained on.
    """
    needed = recipe.train.max_target_tokens
    if not set(modes) & {"cot", "vote", "mirror"} or recipe.eval.max_new_tokens >= needed:
        return None
    return (
        f"eval.max_new_tokens ({recipe.eval.max_new_tokens}) is below "
        f"train.max_target_tokens ({needed}): CoTs the student writes may be cut before their "
        f"answer; set eval.max_new_tokens={needed}"
    )


def check_trained(run: RunDir, checkpoint: str | None) -> None:
    """UserError, before any model loads, when the run has no trained student to score."""
    if checkpoint is None and not (run.student / "train.json").is_file():
        raise UserError(
            f"no trained student in {run.root}: train first (`mindmirror train RECIPE`), or "
            "set eval.checkpoint to a student folder"
        )


def run_labels(recipe: Recipe) -> dict[str, Any]:
    """What identifies a run in reports: name, method, number of CoTs, seed."""
    train = getattr(recipe, "train", None)
    return {
        "name": recipe.name,
        "method": getattr(train, "method", None),
        "num_cots": getattr(train, "num_cots", None) or recipe.teacher.num_cots,
        "seed": recipe.seed,
        "task": recipe.task.name,
    }


def evaluate(
    recipe: Recipe,
    run: RunDir,
    modes: Sequence[str] | None = None,
    quiet: bool = False,
) -> dict[str, Any]:
    """Score the run's student on the test split in each mode; write predictions and metrics.

    Args:
        recipe: the resolved recipe (task, ``eval:`` settings, seed).
        run: the run directory holding the trained student (``student/train.json``).
        modes: modes to score (default ``recipe.eval.modes``).
        quiet: no progress bars.

    Returns:
        The metrics written to ``eval/metrics.json``.

    Raises:
        UserError: unknown mode, no trained student, a test split without gold answers.
    """
    from mindmirror.student.engines import generation_engine, servers_peak_rss_mb
    from mindmirror.student.loading import OWN_JUDGE_STAGE, judge_folder, load_for_inference
    from mindmirror.student.peak_memory import peak_rss_mb, reset_peak
    from mindmirror.tasks import load_task

    cfg = recipe.eval
    asked = check_modes(modes or cfg.modes)
    chosen = list(applicable_modes(recipe.train.method, asked, recipe.train.explain_target))
    if not chosen:
        raise UserError(
            f"none of the modes {', '.join(asked)} applies to a {recipe.train.method} student "
            f"trained with explain_target {recipe.train.explain_target}; use --modes answer"
        )
    if len(chosen) < len(asked) and not quiet:
        console.print(
            f"skipping modes {', '.join(m for m in asked if m not in chosen)}: they read the "
            f"answer from the student's own CoT, which a {recipe.train.method} student with "
            f"explain_target {recipe.train.explain_target} does not write"
        )
    cut = cut_cot_warning(recipe, chosen)
    if cut:
        console.print(f"[yellow]warning[/]: {cut}")
    task, splits = load_task(recipe.task, recipe.seed)
    test = list(splits.get("test", []))[: cfg.limit]
    if not test:
        raise UserError(f"task {recipe.task.name!r} has no test questions to evaluate")
    if any(e.gold is None for e in test):
        raise UserError("the test split has questions without gold answers; eval needs gold")
    method = recipe.train.method
    # Read before inference, so that bad records fail in seconds rather than after it.
    held_out = _held_out_records(run, test) if method.startswith("mind_mirror") else []
    check_trained(run, cfg.checkpoint)
    source = cfg.checkpoint or run.root
    reset_peak()  # the scoring's own peak, not a training's before it in this process
    student = load_for_inference(source, cfg.judge)
    separate = judge_folder(Path(source)) if cfg.judge == "auto" else None
    own = separate is not None and separate.parent.name == OWN_JUDGE_STAGE
    judge_names = {
        "mirror": ("own-CoT judge" if own else "stage-1 student")
        if student.judge
        else "the student itself",
        OWN_JUDGE_MODE: "the student itself",
    }
    if not quiet:
        console.print(f"[bold]eval[/]: {len(test)} test questions, modes {', '.join(chosen)}")
    # The server's samples are kept in the run, so a killed eval resumes where it stopped.
    with generation_engine(
        student, cfg, cache=run.evaluation / "samples.sqlite", quiet=quiet
    ) as served:
        runs = infer_modes(
            served,
            task,
            [e.question for e in test],
            chosen,
            cfg,
            choices=[e.choices for e in test],
            seed=recipe.seed,
            quiet=quiet,
        )
        agreements = _agreements(served, method, held_out, cfg, quiet)
        # What really generated (auto resolved): the answers/s figures depend on it.
        engine = (
            "transformers" if served.server is None else cfg.engine.replace("auto", "llama_cpp")
        )
        # Per judging student, the verdicts its server could not read (a verdict word split,
        # or too far down its list) and transformers gave instead; None: no server, so
        # transformers judged all of them.
        roles = {"student": served} | ({"judge": served.judge} if served.judge else {})
        fallbacks = {
            role: getattr(s.server, "judged_by_fallback", None) for role, s in roles.items()
        }
        servers_peak = servers_peak_rss_mb(served)  # asked before the servers stop
    metrics: dict[str, Any] = {
        **run_labels(recipe),
        "split": "test",
        "questions": len(test),
        "student": str(source),
        "judge": judge_names["mirror"],
        "engine": engine,
        "verdict_fallbacks": fallbacks,
        "settings": cfg.model_dump(mode="json"),
        # This process's; a llama.cpp engine's servers are other processes, counted apart
        # (None: no server, or one that does not report it).
        "peak_rss_mb": peak_rss_mb(),
        "server_peak_rss_mb": servers_peak,
        "modes": {},
    }
    rows: list[dict[str, Any]] = []
    for mode, mode_run in runs.items():
        correct = [
            bool(task.is_correct(p.answer, e.gold, e.choices))
            for p, e in zip(mode_run.predictions, test, strict=True)
        ]
        calibration = student.answer_confidence if mode == "answer" else None
        metrics["modes"][mode] = mode_metrics(
            mode_run.predictions,
            correct,
            mode_run.seconds,
            resamples=cfg.bootstrap,
            seed=recipe.seed,
            abstains=calibration is not None,
        )
        if calibration is not None:
            # Its confidence is the calibrated one (train.answer_confidence), not the raw.
            metrics["modes"][mode]["calibration"] = asdict(calibration)
        samples = sample_correctness(task, mode_run, test)
        if mode.startswith("mirror"):
            metrics["modes"][mode]["judge"] = judge_names[mode]
            metrics["modes"][mode]["own_cots"] = own_cot_judgement(mode_run, samples)
        rows.extend(prediction_rows(mode_run, test, correct, samples))
    metrics["self_evaluation"] = None
    metrics.update(agreements)
    run.evaluation.mkdir(parents=True, exist_ok=True)
    with open_atomic(run.evaluation / "predictions.jsonl") as handle:
        handle.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
    write_json(run.evaluation / "metrics.json", metrics)
    return metrics


def _agreements(
    student: Student, method: str, held_out: Sequence[Record], cfg: EvalConfig, quiet: bool
) -> dict[str, Any]:
    """``self_evaluation`` (and ``self_evaluation_final`` with a separate judge) of a
    self-evaluation method; nothing for the others."""
    if not method.startswith("mind_mirror"):
        # A student never trained on `verdict:` rows has no self-evaluation to measure.
        return {}
    judges = [("self_evaluation", student)]
    if student.judge is not None:
        judges.append(("self_evaluation_final", replace(student, judge=None)))
    return {
        key: self_evaluation_agreement(
            judge,
            held_out,
            batch_size=cfg.batch_size,
            max_input_tokens=cfg.max_input_tokens,
            quiet=quiet,
        )
        for key, judge in judges
    }


def prediction_rows(
    mode_run: ModeRun,
    test: Sequence[Example],
    correct: Sequence[bool],
    samples: Sequence[Sequence[bool]],
) -> list[dict[str, Any]]:
    """One line per question: its prediction and correctness, each sample's correctness too."""
    rows = []
    for p, e, ok, oks in zip(mode_run.predictions, test, correct, samples, strict=True):
        row = {"id": e.id, "gold": e.gold, "correct": ok, **p.to_dict()}
        row["samples"] = [{**s, "correct": c} for s, c in zip(row["samples"], oks, strict=True)]
        rows.append(row)
    return rows


def summary_lines(metrics: dict[str, Any]) -> list[str]:
    """A few human lines for the CLI: accuracy [interval], parse rate, answers/s per mode."""
    lines = []
    for mode, m in metrics.get("modes", {}).items():
        rate = f"{m['answers_per_s']:.2f}/s" if m.get("answers_per_s") else "-"
        selective = ", ".join(
            f"{float(c):.0%} {_pct(v)}" for c, v in (m.get("at_coverage") or {}).items()
        )
        line = (
            f"{mode:>12}: accuracy {m['accuracy']:.3f} [{m['low']:.3f}, {m['high']:.3f}] "
            f"at full coverage; most confident {selective}; parse {m['parse_rate']:.2f} {rate}"
        )
        if "coverage" in m:
            line += f"; answers {m['coverage']:.0%} (abstains on the rest)"
        if m.get("judge"):
            own = m.get("own_cots") or {}
            line += f"; judge: {m['judge']}, AUROC on own CoTs {_num(own.get('auroc'))}"
        lines.append(line)
    agree = metrics.get("self_evaluation")
    if agree:
        lines.append(
            f"self-evaluation on {agree['cots']} held-out CoTs: agrees with teacher "
            f"{_pct(agree['teacher'])}, with gold {_pct(agree['gold'])}"
        )
    return lines


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"
