"""The experiment grid's tables: the paper's comparison, paired differences, selective accuracy.

Pure functions from the cells' metrics (and per-question correctness) to dictionaries;
``reporting.grid_markdown`` writes them as Markdown. ``experiment`` runs the cells and calls
these, ``report`` draws the same cells.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from mindmirror.config import ExperimentConfig
from mindmirror.config.evaluation import FIXED_N_METHODS
from mindmirror.reporting.figures import AGREEMENT_FIGURES, MODE_HEADERS, EvalSource
from mindmirror.reporting.metrics import paired_difference
from mindmirror.student.rows import METHODS

#: Per cell and mode, each test question's correctness: ``{mode: {question id: correct}}``.
Correctness = dict[str, dict[str, bool]]
#: What identifies a row's cells: ``(method, num_cots, variant)``; variant "" for the grid's own
#: rows, an extra row's name (``experiment.extra_rows``) for the others.
RowKey = tuple[str, int, str]


@dataclass(frozen=True)
class Row:
    """One line of the paper's table: a method at one N, or a note where it cannot run;
    ``variant`` names an extra row (other recipe settings), "" for the grid's own."""

    label: str
    method: str
    num_cots: int
    note: str | None = None
    variant: str = ""


def row_key(row: dict[str, Any]) -> RowKey:
    """The key of a row of ``row_results`` (the cells it averages)."""
    return row["method"], row["num_cots"], row["variant"]


def method_num_cots(method: str, cfg: ExperimentConfig) -> list[int]:
    """The Ns a method runs at (see ``ExperimentConfig``): one where N does not apply."""
    ns = sorted(set(cfg.num_cots_by_method.get(method, cfg.num_cots)))
    if method in FIXED_N_METHODS:
        return [1]
    if method == "distill":
        return [ns[-1]]
    if method == "multi_cot":
        return [n for n in ns if n > 1]
    return ns


def table_rows(cfg: ExperimentConfig, source: EvalSource, distill_label: str) -> list[Row]:
    """The table's lines in the paper's order, for the methods and Ns of the grid."""
    rows: list[Row] = []
    for method in cfg.methods:
        for n in method_num_cots(method, cfg):
            rows += _method_rows(method, n, source, distill_label)
    rows += [Row(x.label, x.method, x.num_cots, variant=x.name) for x in cfg.extra_rows]
    return sorted(rows, key=row_order)


def row_order(row: Row) -> tuple[int, int, bool, str]:
    """The paper's order: by method, then N; a note first; extra rows after their method's."""
    return METHODS.index(row.method), row.num_cots, row.note is None, row.variant


def _cots(n: int) -> str:
    return f"{n} CoT" if n == 1 else f"{n} CoTs"


def _method_rows(method: str, n: int, source: EvalSource, distill_label: str) -> list[Row]:
    if method == "standard":
        return [Row("Standard fine-tuning (gold answers)", method, n)]
    if method == "distill":
        if distill_label == "first":
            return [Row("Standard distillation (first teacher answer)", method, n)]
        return [Row(f"Standard distillation, majority of {_cots(n)} (ours)", method, n)]
    if method == "step_by_step":
        return [Row("1 CoT (Distilling Step-by-Step)", method, n)]
    if method == "multi_cot":
        return [Row(_cots(n), method, n)]
    label = f"{_cots(n)} with self-evaluation" + (", joint" if method != "mind_mirror" else "")
    if source == "teacher":
        return [Row(label, method, n)]
    missing = Row(
        f"{label} (teacher verdicts)",
        method,
        n,
        note="needs teacher self-evaluations; the records have none",
    )
    if source == "none":
        return [missing]
    return [
        missing,
        Row(f"{label} (gold verdicts, not the paper's teacher self-evaluation)", method, n),
    ]


def seed_aggregate(values: list[float]) -> dict[str, Any]:
    """Mean, sample std (None for one value) and the values themselves, over a row's seeds."""
    return {
        "mean": statistics.fmean(values),
        "std": statistics.stdev(values) if len(values) > 1 else None,
        "values": values,
    }


def _mean_of(values: Sequence[float | None]) -> float | None:
    kept = [v for v in values if v is not None]
    return statistics.fmean(kept) if kept else None


def row_results(row: Row, results: dict[Any, dict[str, Any]]) -> dict[str, Any]:
    """Per mode: mean, std and per-seed accuracies over the row's finished cells, with the
    mean AURC, selective accuracies and (mirror modes) coverage and own-CoT AUROC."""
    base = {
        "label": row.label,
        "method": row.method,
        "num_cots": row.num_cots,
        "variant": row.variant,
        "note": row.note,
    }
    if row.note is not None:
        return {**base, "seeds": [], "modes": {}}
    mine = sorted(
        (
            (c, m)
            for c, m in results.items()
            if (c.method, c.num_cots, c.variant) == (row.method, row.num_cots, row.variant)
        ),
        key=lambda cm: cm[0].seed,
    )
    modes: dict[str, Any] = {}
    for mode in MODE_HEADERS:
        scored = [m["modes"][mode] for _, m in mine if mode in m.get("modes", {})]
        if not scored:
            continue
        entry = seed_aggregate([v["accuracy"] for v in scored])
        entry["aurc"] = _mean_of([v.get("aurc") for v in scored])
        coverages = sorted({c for v in scored for c in v.get("at_coverage") or {}})
        entry["at_coverage"] = {
            c: _mean_of([(v.get("at_coverage") or {}).get(c) for v in scored]) for c in coverages
        }
        if mode.startswith("mirror"):
            entry["coverage"] = _mean_of([v.get("coverage") for v in scored])
            entry["own_cots_auroc"] = _mean_of(
                [(v.get("own_cots") or {}).get("auroc") for v in scored]
            )
            entry["judge"] = scored[0].get("judge")
        modes[mode] = entry
    return {
        **base,
        "seeds": [c.seed for c, _ in mine],
        "modes": modes,
        "self_evaluation": _self_evaluation([m.get("self_evaluation") for _, m in mine]),
        "self_evaluation_final": _self_evaluation(
            [m.get("self_evaluation_final") for _, m in mine]
        ),
    }


def _self_evaluation(per_seed: list[dict[str, Any] | None]) -> dict[str, Any] | None:
    """Mean over seeds of the student's verdict agreement on held-out teacher CoTs (with the
    teacher, with gold, AUROC of P(correct)); None when no seed measured it."""
    measured = [s for s in per_seed if s]
    if not measured:
        return None
    out: dict[str, Any] = {"cots": measured[0]["cots"], "seeds": len(measured)}
    for key in AGREEMENT_FIGURES:
        out[key] = _mean_of([s.get(key) for s in measured])
    return out


def question_scores(cells: Sequence[Correctness], mode: str) -> dict[str, float]:
    """Each question's correctness in ``mode`` averaged over a row's seeds (questions scored
    by every seed only)."""
    scored = [c[mode] for c in cells if mode in c]
    if not scored:
        return {}
    shared = set(scored[0]).intersection(*scored[1:])
    return {q: statistics.fmean(float(c[q]) for c in scored) for q in sorted(shared)}


def paired_differences(
    rows: list[dict[str, Any]],
    correctness: dict[RowKey, dict[int, Correctness]],
    *,
    resamples: int = 1000,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """Every pair of table rows, in every mode both have: the later row minus the earlier, on
    the same test questions, with a paired bootstrap 95% interval over questions.

    ``correctness`` maps a row's key (``row_key``) to ``{seed: Correctness}``. Scores are
    each question's correctness averaged over the row's seeds that scored the mode. Where the
    two rows' seeds differ, a second interval uses only the seeds both ran: a one-seed cell
    against another row's mean over three seeds mixes the method with which seeds happened to
    run (one weak seed moves the mean); on the seeds both ran, that is gone.
    ``first_seeds`` and ``second_seeds`` name the seeds each interval averaged. Mirror modes
    pair by judge (see ``comparable_modes``); ``mode`` then names both, the second's first.
    """
    scored = [r for r in rows if r["note"] is None and r["seeds"]]
    out = []
    for i, first in enumerate(scored):
        for second in scored[i + 1 :]:
            by_a = correctness.get(row_key(first), {})
            by_b = correctness.get(row_key(second), {})
            for mode_a, mode_b in comparable_modes(first, second):
                pair = {
                    "first": first["label"],
                    "second": second["label"],
                    "mode": mode_a if mode_a == mode_b else f"{mode_b} / {mode_a}",
                }
                seeds_a = [s for s in sorted(by_a) if mode_a in by_a[s]]
                seeds_b = [s for s in sorted(by_b) if mode_b in by_b[s]]
                for use_a, use_b in _seed_choices(seeds_a, seeds_b):
                    diff = _paired(
                        question_scores([by_a[s] for s in use_a], mode_a),
                        question_scores([by_b[s] for s in use_b], mode_b),
                        resamples=resamples,
                        seed=seed,
                    )
                    if diff is not None:
                        out.append({**pair, "first_seeds": use_a, "second_seeds": use_b, **diff})
    return out


def _seed_choices(a: list[int], b: list[int]) -> list[tuple[list[int], list[int]]]:
    """The seeds to average for each row: each row's own, then, where they differ, the seeds
    both ran (none when they share no seed)."""
    shared = sorted(set(a) & set(b))
    return [(a, b), (shared, shared)] if shared and a != b else [(a, b)]


def comparable_modes(first: dict[str, Any], second: dict[str, Any]) -> list[tuple[str, str]]:
    """``(first's mode, second's mode)`` for every mode the two rows measure alike: the same
    mode, except that mirror modes pair by judge. A jointly trained student's `mirror` is judged
    by the student itself, like a two-stage student's `mirror_final`, not its `mirror` (judged
    by the stage-1 student)."""

    def kind(row: dict[str, Any], mode: str) -> tuple[str, Any]:
        return mode.removesuffix("_final"), row["modes"][mode].get("judge")

    return [
        (mode_a, mode_b)
        for mode_a in MODE_HEADERS
        if mode_a in first["modes"]
        for mode_b in MODE_HEADERS
        if mode_b in second["modes"] and kind(first, mode_a) == kind(second, mode_b)
    ]


def _paired(
    a: dict[str, float], b: dict[str, float], *, resamples: int, seed: int
) -> dict[str, float] | None:
    """``paired_difference`` of b minus a on the questions both scored; None if none are."""
    shared = sorted(set(a) & set(b))
    if not shared:
        return None
    return paired_difference(
        [a[q] for q in shared], [b[q] for q in shared], resamples=resamples, seed=seed
    )
