"""Training rows for every method of the paper, built from teacher records (pure functions).

A row is one (task prefix, input, target, weight). Short targets (``predict:``, ``verdict:``)
weigh ``alpha`` and long ones (``explain:``, ``critique:``) ``1 - alpha``: the paper's loss
``alpha * L(short) + (1 - alpha) * L(long)`` becomes a per-row weight inside one mixed batch.

Methods and their stages:

============================  =====================================  ============================
method                        stage ``evaluation`` (self-eval)        stage ``reasoning``
============================  =====================================  ============================
``standard``                  -                                      predict -> gold (weight 1)
``distill``                   -                                      predict -> teacher majority
``step_by_step``              -                                      predict + explain, 1 CoT
``multi_cot``                 -                                      predict + explain, N CoTs
``mind_mirror``               verdict + critique, N CoTs x M evals   as ``multi_cot``
``mind_mirror_joint``         -  (one stage ``joint``: both row sets mixed)
============================  =====================================  ============================

Choices made here (the paper's behaviour unless a ``train:`` option says otherwise):

- CoTs of the reasoning stage: the first ``num_cots`` CoTs *whose answer parsed*; unparsed CoTs
  are skipped and counted (``RowStats.cots_unparsed``): the published code kept them with the
  answer ``' '``, teaching the student to answer nothing. ``step_by_step`` uses one CoT.
- ``explain:`` targets: ``explain_target: rationale`` (published) is the CoT before its answer
  sentence, so with gold labels the explain target never carries a wrong teacher answer;
  ``cot`` keeps the answer sentence (needed by the ``cot``/``vote``/``mirror`` inference modes,
  which read the answer from the student's own CoT).
- ``distill``'s label: ``distill_label: first`` (published) is the first parsed CoT's answer;
  ``majority`` the most frequent answer (task's canonical form), ties to the earliest CoT.
- ``labels: teacher`` (the paper's setting): each CoT contributes one ``predict:`` row whose
  target is *that CoT's* answer, as that CoT wrote it.
- ``labels: gold``: the ``predict:`` target is gold; the CoTs (``explain:`` targets) are
  unchanged, wrong ones included, as in Distilling Step-by-Step.
- Self-evaluation stage: *every* CoT of the record (parsed or not: a CoT without an answer is
  still something to judge) and the first ``num_evals`` evaluations of each, independent of
  the reasoning stage's ``num_cots`` (the published "1 CoT with self-evaluation" trains stage 1
  on all 5 x 5). Evaluations without a parsed verdict are skipped and counted. ``critique:``
  targets are the evaluation without its final verdict line (the verdict is ``verdict:``'s
  target); the gold evaluator's empty critique gives no ``critique:`` row.

Deduplication (``dedupe``, off by default as in the published code): every (question, CoT)
pair carries a ``predict:`` row, so N agreeing CoTs give N identical ``predict:`` rows, and M
agreeing evaluations M identical ``verdict:`` rows. ``dedupe`` merges identical (prefix,
input, target) rows into one row whose ``count`` and ``weight`` are the sums. The loss
(``losses.py``) counts a merged row ``count`` times, so one epoch has the same total loss with
fewer rows; it is *not* the same optimisation (fewer, differently composed steps under AdamW,
clipping and length-grouped batches), which is why it is an option.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

from mindmirror.records import Cot, Record
from mindmirror.student.formats import (
    CRITIQUE,
    EXPLAIN,
    PREDICT,
    SHORT_TASKS,
    VERDICT,
    critique_target,
    evaluation_input,
    rationale,
    reasoning_input,
    verdict_target,
)
from mindmirror.tasks.base import Task

Method = Literal[
    "standard", "distill", "step_by_step", "multi_cot", "mind_mirror", "mind_mirror_joint"
]
METHODS: tuple[Method, ...] = (
    "standard",
    "distill",
    "step_by_step",
    "multi_cot",
    "mind_mirror",
    "mind_mirror_joint",
)
Stage = Literal["evaluation", "reasoning", "joint"]
Labels = Literal["teacher", "gold"]
ExplainTarget = Literal["rationale", "cot"]
DistillLabel = Literal["first", "majority"]


@dataclass(frozen=True)
class Row:
    """One training example: ``input`` -> ``target`` under ``prefix``.

    ``count`` is how many of the paper's rows this row stands for (more than 1 only after
    ``dedupe``); ``weight`` is ``count`` times the task's loss weight (``alpha`` or
    ``1 - alpha``; 1 for single-task methods). ``example`` names the published trainer's item
    the row belongs to (a question, a (question, CoT) or a (question, CoT, evaluation)): the
    rows of one example are trained in the same step (``batching.py``).
    """

    prefix: str
    input: str
    target: str
    weight: float
    question_id: str
    count: float = 1.0
    example: str = ""


@dataclass
class RowStats:
    """What building rows kept and skipped (reported in ``student/train.json``)."""

    questions: int = 0
    questions_skipped: int = 0
    cots_used: int = 0
    cots_unparsed: int = 0
    evals_used: int = 0
    evals_unparsed: int = 0
    rows_before_dedupe: int = 0
    rows: int = 0
    by_prefix: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class RowSpec:
    """How to turn records into rows (the ``train:`` settings that matter here)."""

    method: Method
    labels: Labels = "teacher"
    num_cots: int = 5
    num_evals: int = 5
    alpha: float = 0.5
    dedupe: bool = False
    explain_target: ExplainTarget = "rationale"
    distill_label: DistillLabel = "first"


def stages(method: Method) -> list[Stage]:
    """Training stages of a method, in order (``mind_mirror`` has two)."""
    if method == "mind_mirror":
        return ["evaluation", "reasoning"]
    if method == "mind_mirror_joint":
        return ["joint"]
    return ["reasoning"]


def short_or_long_weight(prefix: str, alpha: float) -> float:
    """``alpha`` for short targets (predict, verdict), ``1 - alpha`` for long ones."""
    return alpha if prefix in SHORT_TASKS else 1.0 - alpha


def used_cots(record: Record, limit: int) -> tuple[list[Cot], int]:
    """The first ``limit`` parsed CoTs of a record, and how many unparsed ones were passed."""
    used: list[Cot] = []
    unparsed = 0
    for cot in record.cots:
        if len(used) == limit:
            break
        if cot.parsed and cot.answer is not None:
            used.append(cot)
        else:
            unparsed += 1
    return used, unparsed


def judged_cots(record: Record) -> list[Cot]:
    """The CoTs the self-evaluation stage judges: all but failed requests, parsed or not."""
    return [c for c in record.cots if c.status != "error" and c.text.strip()]


def first_answer(cots: list[Cot]) -> str | None:
    """The first parsed CoT's answer: the published standard-distillation label."""
    return next((c.answer for c in cots if c.parsed and c.answer is not None), None)


def majority_answer(cots: list[Cot], task: Task, choices: tuple[str, ...] | None) -> str | None:
    """Most frequent answer (by canonical form) over parsed CoTs; ties -> the earliest CoT's."""
    answers = [c.answer for c in cots if c.parsed and c.answer is not None]
    keys = [task.canonical(a, choices) or a.strip() for a in answers]
    if not keys:
        return None
    counts = Counter(keys)
    best = max(counts.values())
    # Counter keeps first-seen order and max() the first maximum: the earliest tied CoT wins.
    winner = next(k for k in counts if counts[k] == best)
    return answers[keys.index(winner)]


def _choices(record: Record) -> tuple[str, ...] | None:
    return tuple(record.choices) if record.choices else None


def _row(prefix: str, text_in: str, target: str, weight: float, qid: str, example: str) -> Row:
    return Row(
        prefix=prefix,
        input=text_in,
        target=target,
        weight=weight,
        question_id=qid,
        example=example,
    )


def reasoning_rows(record: Record, task: Task, spec: RowSpec, stats: RowStats) -> list[Row]:
    """``predict:``/``explain:`` rows of one question (all reasoning methods)."""
    choices = _choices(record)
    predict_in = reasoning_input(PREDICT, record.question)
    if spec.method == "standard":
        if record.gold is None:
            stats.questions_skipped += 1
            return []
        return [_row(PREDICT, predict_in, task.answer_text(record.gold), 1.0, record.id, record.id)]
    limit = 1 if spec.method == "step_by_step" else spec.num_cots
    if spec.method == "distill":
        limit = len(record.cots)
    cots, unparsed = used_cots(record, limit)
    stats.cots_unparsed += unparsed
    if spec.method == "distill":
        if spec.distill_label == "first":
            label = first_answer(cots)
        else:
            label = majority_answer(cots, task, choices)
        if label is None:
            stats.questions_skipped += 1
            return []
        return [_row(PREDICT, predict_in, task.answer_text(label), 1.0, record.id, record.id)]
    if not cots and (spec.labels == "teacher" or record.gold is None):
        stats.questions_skipped += 1
        return []
    stats.cots_used += len(cots)
    w_short = short_or_long_weight(PREDICT, spec.alpha)
    w_long = short_or_long_weight(EXPLAIN, spec.alpha)
    # The published item: one (question, CoT) example with its predict and explain rows.
    examples = [f"{record.id}#cot{k}" for k in range(max(1, len(cots)))]
    if spec.labels == "gold" and record.gold is not None:
        # The paper pairs every CoT with a predict row; with gold labels all share one target.
        gold = task.answer_text(record.gold)
        rows = [_row(PREDICT, predict_in, gold, w_short, record.id, ex) for ex in examples]
    else:
        rows = [
            _row(PREDICT, predict_in, task.answer_text(c.answer or ""), w_short, record.id, ex)
            for c, ex in zip(cots, examples, strict=False)
        ]
    explain_in = reasoning_input(EXPLAIN, record.question)
    for c, ex in zip(cots, examples, strict=False):
        target = rationale(c.text) if spec.explain_target == "rationale" else c.text
        rows.append(_row(EXPLAIN, explain_in, target, w_long, record.id, ex))
    return rows


def evaluation_rows(record: Record, spec: RowSpec, stats: RowStats) -> list[Row]:
    """``verdict:``/``critique:`` rows of one question: every CoT x its first M evaluations."""
    cots = judged_cots(record)
    rows: list[Row] = []
    w_short = short_or_long_weight(VERDICT, spec.alpha)
    w_long = short_or_long_weight(CRITIQUE, spec.alpha)
    for k, cot in enumerate(cots):
        for j, evaluation in enumerate(cot.evaluations[: spec.num_evals]):
            if not evaluation.parsed or evaluation.verdict is None:
                stats.evals_unparsed += 1
                continue
            stats.evals_used += 1
            example = f"{record.id}#cot{k}#eval{j}"
            verdict_in = evaluation_input(VERDICT, record.question, cot.text)
            target = verdict_target(evaluation.verdict)
            rows.append(_row(VERDICT, verdict_in, target, w_short, record.id, example))
            critique = critique_target(evaluation.text)
            if critique:
                critique_in = evaluation_input(CRITIQUE, record.question, cot.text)
                rows.append(_row(CRITIQUE, critique_in, critique, w_long, record.id, example))
    if not rows:
        stats.questions_skipped += 1
    return rows


def dedupe_rows(rows: Iterable[Row]) -> list[Row]:
    """Merge identical (prefix, input, target) rows, summing weights and counts; first-seen
    order kept."""
    merged: dict[tuple[str, str, str], Row] = {}
    for row in rows:
        key = (row.prefix, row.input, row.target)
        seen = merged.get(key)
        if seen is None:
            merged[key] = row
        else:
            merged[key] = Row(
                prefix=row.prefix,
                input=row.input,
                target=row.target,
                weight=seen.weight + row.weight,
                question_id=seen.question_id,
                count=seen.count + row.count,
                example=seen.example,
            )
    return list(merged.values())


def build_rows(
    records: Iterable[Record], task: Task, spec: RowSpec, stage: Stage
) -> tuple[list[Row], RowStats]:
    """Rows of one training stage from the *train* records (other splits are ignored)."""
    stats = RowStats()
    rows: list[Row] = []
    for record in records:
        if record.split != "train":
            continue
        stats.questions += 1
        if stage == "evaluation":
            rows += evaluation_rows(record, spec, stats)
        elif stage == "reasoning":
            rows += reasoning_rows(record, task, spec, stats)
        else:
            # Joint: both skills in one stage; a question is counted once.
            skipped = stats.questions_skipped
            reasoning = reasoning_rows(record, task, spec, stats)
            evaluation = evaluation_rows(record, spec, stats)
            stats.questions_skipped = skipped + int(not reasoning and not evaluation)
            rows += reasoning + evaluation
    stats.rows_before_dedupe = len(rows)
    if spec.dedupe:
        rows = dedupe_rows(rows)
    stats.rows = len(rows)
    stats.by_prefix = dict(Counter(row.prefix for row in rows))
    return rows, stats
