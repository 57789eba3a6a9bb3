"""The experiment grid's ``experiment.md``: the rows, paired differences and selective
prediction of ``reporting.tables`` as Markdown, with the setup and what the grid was taught from.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from mindmirror.config import Recipe
from mindmirror.records import Record
from mindmirror.reporting.figures import MODE_HEADERS, EvalSource
from mindmirror.rundir import RunDir


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


def _per_method_lines(by_method: dict[str, dict[str, Any]]) -> list[str]:
    """The ``train_by_method`` settings, which replace the line above in those methods' cells
    (the protocol tunes each method on validation: without them the header would describe a
    training no cell ran)."""
    if not by_method:
        return []
    each = "; ".join(
        f"{method}: " + ", ".join(f"{key} {value}" for key, value in settings.items())
        for method, settings in by_method.items()
    )
    return ["", f"Settings per method, replacing the above in that method's cells: {each}."]


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
        *_per_method_lines(grid.train_by_method),
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
