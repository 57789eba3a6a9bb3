"""The experiment grid's tables: the paper's comparison, paired differences, selective accuracy.

Pure functions from the cells' metrics (and per-question correctness) to dictionaries and
Markdown; ``experiment`` runs the cells and calls these, ``report`` draws the same cells.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from mindmirror.config import ExperimentConfig, Recipe
from mindmirror.records import Record
from mindmirror.reporting.figures import AGREEMENT_FIGURES, MODE_HEADERS, EvalSource
from mindmirror.reporting.metrics import paired_difference
from mindmirror.rundir import RunDir
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
    if method in ("standard", "step_by_step"):
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


def _cell_text(entry: dict[str, Any] | None) -> str:
    if entry is None:
        return "-"
    text = f"{entry['mean']:.3f}"
    return text + (f" ± {entry['std']:.3f}" if entry["std"] is not None else "")


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def markdown_table(rows: list[dict[str, Any]], modes: Sequence[str]) -> list[str]:
    """The comparison table as Markdown lines (accuracy on test, mean ± std over seeds)."""
    present = {m for r in rows for m in r["modes"]}
    shown = [m for m in MODE_HEADERS if m in modes or (m == "mirror_final" and m in present)]
    lines = [
        "| method | " + " | ".join(MODE_HEADERS[m] for m in shown) + " | seeds |",
        "|---|" + "---|" * (len(shown) + 1),
    ]
    for row in rows:
        if row["note"]:
            cells = [row["note"]] + [""] * (len(shown) - 1)
            lines.append(f"| {row['label']} | " + " | ".join(cells) + " | - |")
            continue
        cells = [_cell_text(row["modes"].get(m)) for m in shown]
        seeds = ", ".join(str(s) for s in row["seeds"]) or "not run"
        lines.append(f"| {row['label']} | " + " | ".join(cells) + f" | {seeds} |")
    return lines


def selective_table(rows: list[dict[str, Any]]) -> list[str]:
    """Selective prediction per row and mode: accuracy at full coverage, on the most
    confident 80% and 50%, AURC, and for mirror modes the judge and its AUROC on the
    student's own sampled CoTs. Empty when no row has a confidence-ranked mode."""
    lines = [
        "| method | mode | judge | full coverage | most confident 80% | most confident 50% "
        "| AURC (lower is better) | AUROC of P(correct) on own CoTs |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        for mode, entry in row["modes"].items():
            at = entry.get("at_coverage") or {}
            lines.append(
                f"| {row['label']} | {mode} | {entry.get('judge') or '-'} | {entry['mean']:.3f} "
                f"| {_num(at.get('0.8'))} | {_num(at.get('0.5'))} | {_num(entry.get('aurc'))} "
                f"| {_num(entry.get('own_cots_auroc'))} |"
            )
    return lines if len(lines) > 2 else []


def _seeds_text(pair: dict[str, Any]) -> str:
    """The seeds a paired interval averaged: ``0, 1, 2`` when both rows used the same,
    else the second row's then the first's (``0 / 0, 1, 2``), in the order of the difference."""
    first, second = (", ".join(str(s) for s in pair[k]) for k in ("first_seeds", "second_seeds"))
    return first if first == second else f"{second} / {first}"


def paired_lines(pairs: list[dict[str, Any]]) -> list[str]:
    """The paired differences as a Markdown table."""
    if not pairs:
        return []
    lines = [
        "| difference | mode | seeds | mean | 95% interval | questions |",
        "|---|---|---|---|---|---|",
    ]
    for p in pairs:
        mark = " *" if p["low"] > 0 or p["high"] < 0 else ""
        lines.append(
            f"| {p['second']} − {p['first']} | {p['mode']} | {_seeds_text(p)} "
            f"| {p['diff']:+.3f}{mark} | [{p['low']:+.3f}, {p['high']:+.3f}] | {p['n']} |"
        )
    return lines


def _self_evaluation_line(label: str, agree: dict[str, Any], judge: str) -> str:
    return (
        f"- {label} ({judge}): on {agree['cots']} CoTs, agrees with the teacher's verdicts "
        f"{_num(agree['teacher'])}, with gold {_num(agree['gold'])}, AUROC of P(correct) "
        f"{_num(agree['auroc'])} (the teacher's own agreement with gold "
        f"{_num(agree['teacher_vs_gold'])})"
    )


def teacher_lines(run: RunDir, records: Sequence[Record], source: EvalSource) -> list[str]:
    """What the grid was taught from: split sizes, teacher accuracy, where verdicts came from."""
    train = [r for r in records if r.split == "train"]
    parsed = sum(sum(c.parsed for c in r.cots) for r in train)
    counts = {s: sum(r.split == s for r in records) for s in ("train", "validation", "test")}
    lines = [
        f"Teacher records: {counts['train']} train, {counts['validation']} validation, "
        f"{counts['test']} test questions; {parsed / max(1, len(train)):.1f} parsed CoTs per "
        "train question."
    ]
    if run.summary.is_file():
        summary = json.loads(run.summary.read_text(encoding="utf-8"))
        accuracy = summary.get("teacher_accuracy")
        lines.append(
            f"Teacher: {summary.get('model')} ({summary.get('backend')}), accuracy per CoT "
            + (f"{accuracy:.3f}" if isinstance(accuracy, float) else "-")
            + "."
        )
    lines.append(
        {
            "teacher": "Self-evaluations: the teacher's (the paper's method).",
            "gold": "Self-evaluations: gold verdicts (`evaluator: gold`: a CoT is judged correct "
            "when its answer matches gold; no critique). This is NOT the paper's method, which "
            "needs a live teacher to self-evaluate.",
            "none": "Self-evaluations: none in the records, so the self-evaluation rows are not "
            "run (teach with a live teacher and `teacher.num_evals` > 0).",
        }[source]
    )
    return lines


def markdown(
    recipe: Recipe,
    header: list[str],
    rows: list[dict[str, Any]],
    pairs: list[dict[str, Any]],
    questions: set[int],
) -> str:
    """The whole ``experiment.md``: setup, the comparison table, paired differences,
    selective prediction and the student's self-evaluation."""
    train, grid = recipe.train, recipe.experiment
    epochs = f"{train.epochs:g} epoch" + ("" if train.epochs == 1 else "s")
    length = f"max {train.max_steps} steps per stage" if train.max_steps else epochs
    if not train.max_steps and grid.equal_examples:
        length += " (divided by N in the CoT cells: equal examples)"
    if not train.max_steps and train.stage1_epochs:
        length += f", self-evaluation stage {train.stage1_epochs:g} epochs"
    modes = [*grid.modes, *(m for by_method in grid.modes_by_method.values() for m in by_method)]
    tested = ", ".join(str(q) for q in sorted(questions)) or "no"
    lines = [
        f"# Experiment: {recipe.name}",
        "",
        *header,
        "",
        f"Student: {train.student}, {'LoRA' if train.lora else 'full fine-tuning'}, "
        f"{length}, alpha {train.alpha}, labels {train.labels}, loss "
        f"{train.loss_norm}, explain target {train.explain_target}. Test accuracy (task's "
        f"scorer) on {tested} test questions, mean ± sample std over the seeds listed; answer "
        "= the paper's mode (`predict:`, greedy); mirror = ours (K sampled CoTs weighted by "
        "the judge's P(correct)), scored at full coverage; '-' = mode not applicable to the "
        "method or not scored.",
        "",
        *markdown_table(rows, modes),
    ]
    if pairs:
        lines += [
            "",
            "Paired differences on the same test questions (each question's correctness "
            "averaged over the seeds listed; rows that ran different seeds are also compared "
            "on the seeds both ran; bootstrap 95% interval over questions; * = the interval "
            "excludes 0):",
            "",
            *paired_lines(pairs),
        ]
    selective = selective_table(rows)
    if selective:
        lines += [
            "",
            "Selective prediction: answer only the questions the student is most confident "
            "about (answer/cot: token probability; vote: vote share; mirror: the judge's "
            "summed P(correct)). A useful self-evaluation makes the 50% column clearly higher "
            "than full coverage.",
            "",
            *selective,
        ]
    judged = []
    for r in rows:
        two = bool(r.get("self_evaluation_final"))
        if r.get("self_evaluation"):
            judged.append((r["label"], r["self_evaluation"], "stage-1 judge" if two else "itself"))
        if two:
            judged.append((r["label"], r["self_evaluation_final"], "final student, own verdicts"))
    if judged:
        lines += [
            "",
            "Student self-evaluation (`verdict:`) on teacher CoTs for the test questions, which "
            "it never trained on; mean over seeds:",
        ]
        lines += [_self_evaluation_line(*j) for j in judged]
    return "\n".join(lines)
