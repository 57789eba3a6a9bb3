"""`mindmirror report`: tables and plots of whatever a run directory holds.

Reads, when present: ``teacher/summary.json`` (teaching), ``student/*/curve.json`` (validation
curves), ``eval/metrics.json`` (this run's evaluation) and every ``**/eval/metrics.json`` below
the run directory (the cells of an experiment grid, each labelled by the ``method``,
``num_cots`` and ``seed`` its metrics carry). Sections whose inputs are missing are skipped.

Writes ``report.md`` (tables, plots linked from ``plots/``) and ``report.html`` (self-contained:
the same plots embedded as base64 PNG), plus ``plots/*.png``. Seeds of one (method, N) cell are
averaged; the error bar is then the standard error over seeds, and for a single seed the
bootstrap 95% interval of the evaluation.
"""

from __future__ import annotations

import json
import math
import statistics
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only: never needs a display
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from mindmirror.errors import UserError
from mindmirror.files import write_atomic
from mindmirror.reporting.documents import Section, html_document, markdown_document
from mindmirror.reporting.figures import AGREEMENT_FIGURES
from mindmirror.rundir import RunDir
from mindmirror.student.rows import METHODS

MODE_ORDER = ("answer", "cot", "vote", "mirror")
#: More series than this in one plot: distinct colours, the legend beside the axes, long labels
#: slanted (an experiment grid has a dozen or more).
CROWDED = 4


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise UserError(
            f"{path}: cannot read it as JSON ({error}); re-run the step that writes it"
        ) from None


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}" if math.isfinite(value) else "-"
    return str(value)


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_fmt(c) for c in row) + " |" for row in rows]
    return lines


def _save(fig: Figure, run: RunDir, name: str) -> str:
    run.plots.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(run.plots / name, dpi=110)
    plt.close(fig)
    return name


# --------------------------------------------------------------------------- teacher


def teacher_section(run: RunDir) -> Section | None:
    """Teacher quality and cost from ``teacher/summary.json``."""
    if not run.summary.is_file():
        return None
    s = _read_json(run.summary)
    rows = [
        ["model", s.get("model")],
        ["backend", s.get("backend")],
        ["evaluator", s.get("evaluator")],
        ["questions", ", ".join(f"{k} {v}" for k, v in (s.get("questions") or {}).items())],
        ["CoTs", s.get("cots")],
        ["parse rate", s.get("parse_rate")],
        ["teacher accuracy (CoTs)", s.get("teacher_accuracy")],
        ["questions with a correct CoT", s.get("questions_with_correct")],
        ["verdict agreement with gold", s.get("verdict_agreement")],
        ["tokens in / out", f"{s.get('tokens_in', 0)} / {s.get('tokens_out', 0)}"],
        ["cost (USD)", s.get("cost_usd")],
        ["wall time (s)", s.get("wall_s")],
    ]
    return Section("Teacher", _table(["", "value"], [r for r in rows if r[1] is not None]))


# ---------------------------------------------------------------------------- training


def training_section(run: RunDir) -> Section | None:
    """Validation curves of each training stage (``student/<stage>/curve.json``)."""
    curves = {p.parent.name: _read_json(p) for p in sorted(run.student.glob("*/curve.json"))}
    curves = {k: v for k, v in curves.items() if v}
    if not curves:
        return None
    section = Section("Training (validation)")
    fig, ax = plt.subplots(figsize=(6, 3.5))
    rows = []
    for stage, points in curves.items():
        for key in sorted({k for p in points for k in p if k.startswith("eval_")} - {"eval_loss"}):
            xs = [p.get("step", i) for i, p in enumerate(points) if key in p]
            ys = [p[key] for p in points if key in p]
            if key.endswith(("_runtime", "_per_second")):
                continue
            ax.plot(xs, ys, marker="o", label=f"{stage}: {key.removeprefix('eval_')}")
            rows.append([stage, key.removeprefix("eval_"), max(ys), ys[-1], len(ys)])
    ax.set_xlabel("step")
    ax.set_ylabel("validation metric")
    ax.legend(fontsize=7)
    section.lines = _table(["stage", "metric", "best", "last", "evaluations"], rows)
    section.plots.append(_save(fig, run, "training_curves.png"))
    return section


# ------------------------------------------------------------------------------ eval


def _label(m: dict[str, Any]) -> str:
    method = m.get("method") or m.get("name") or "student"
    return f"{method} (N={m['num_cots']})" if m.get("num_cots") else str(method)


@dataclass
class Cell:
    """Mean accuracy of one (method, N, mode) over seeds, with its error bar."""

    accuracy: float
    low: float
    high: float
    seeds: int


def _cells(metrics: list[dict[str, Any]]) -> dict[tuple[str, int | None, str], Cell]:
    grouped: dict[tuple[str, int | None, str], list[dict[str, Any]]] = defaultdict(list)
    for m in metrics:
        for mode, values in m.get("modes", {}).items():
            grouped[
                (m.get("method") or m.get("name") or "student", m.get("num_cots"), mode)
            ].append(values)
    cells = {}
    for key, runs in grouped.items():
        accs = [r["accuracy"] for r in runs]
        mean = statistics.fmean(accs)
        if len(runs) > 1:
            se = statistics.stdev(accs) / math.sqrt(len(accs))
            cells[key] = Cell(mean, mean - se, mean + se, len(runs))
        else:
            cells[key] = Cell(mean, runs[0].get("low", mean), runs[0].get("high", mean), 1)
    return cells


def _order(method: str) -> int:
    return METHODS.index(method) if method in METHODS else len(METHODS)


def accuracy_section(run: RunDir, metrics: list[dict[str, Any]]) -> Section | None:
    """Methods x modes: the comparison table and bars with their intervals."""
    cells = _cells(metrics)
    if not cells:
        return None
    modes = [m for m in MODE_ORDER if any(k[2] == m for k in cells)]
    groups = sorted({(k[0], k[1]) for k in cells}, key=lambda g: (_order(g[0]), g[1] or 0))
    section = Section("Test accuracy (methods x modes)")
    rows = []
    for method, n in groups:
        row: list[Any] = [method, n]
        for mode in modes:
            cell = cells.get((method, n, mode))
            row.append(
                "-" if cell is None else f"{cell.accuracy:.3f} [{cell.low:.3f}, {cell.high:.3f}]"
            )
        row.append(max((c.seeds for k, c in cells.items() if k[:2] == (method, n)), default=0))
        rows.append(row)
    section.lines = _table(["method", "N", *modes, "seeds"], rows)
    section.lines.append("")
    section.lines.append(
        "Intervals: bootstrap 95% for one seed; mean ± standard error over seeds otherwise."
    )
    fig, ax = plt.subplots(figsize=(max(6, 1.2 * len(groups) * len(modes) / 2), 3.8))
    width = 0.8 / max(1, len(modes))
    for j, mode in enumerate(modes):
        xs, ys, errs = [], [], [[], []]
        for i, (method, n) in enumerate(groups):
            cell = cells.get((method, n, mode))
            if cell is None:
                continue
            xs.append(i + (j - (len(modes) - 1) / 2) * width)
            ys.append(cell.accuracy)
            errs[0].append(max(0.0, cell.accuracy - cell.low))
            errs[1].append(max(0.0, cell.high - cell.accuracy))
        ax.bar(xs, ys, width, yerr=errs, capsize=3, label=mode)
    ax.set_xticks(range(len(groups)))
    ax.set_xticklabels([f"{m}\nN={n}" if n else m for m, n in groups], fontsize=8)
    ax.set_ylabel("test accuracy")
    ax.set_ylim(0, 1)
    ax.legend(fontsize=8)
    section.plots.append(_save(fig, run, "accuracy_by_method.png"))
    return section


def num_cots_section(run: RunDir, metrics: list[dict[str, Any]]) -> Section | None:
    """Accuracy against the number of CoTs, for methods evaluated at several N.

    ``step_by_step`` is ``multi_cot`` at N = 1 (the grid trains no ``multi_cot-n1``), so its
    cells start the ``multi_cot`` line where that line has no N = 1 of its own; the table
    names the method each point was trained as.
    """
    cells = _cells(metrics)
    lines: dict[tuple[str, str], list[tuple[int, str, Cell]]] = defaultdict(list)
    for (method, n, mode), cell in cells.items():
        if n is not None and method != "step_by_step":
            lines[(method, mode)].append((n, method, cell))
    for (method, n, mode), cell in cells.items():
        multi = lines.get(("multi_cot", mode))
        if (method, n or 1) == ("step_by_step", 1) and multi and all(m != 1 for m, _, _ in multi):
            multi.append((1, method, cell))
    lines = {k: sorted(v, key=lambda p: p[0]) for k, v in lines.items() if len(v) > 1}
    if not lines:
        return None
    section = Section("Accuracy vs number of CoTs")
    fig, ax = plt.subplots(figsize=(6, 3.8))
    rows = []
    for (method, mode), points in sorted(lines.items(), key=lambda kv: (_order(kv[0][0]), kv[0])):
        ns = [n for n, _, _ in points]
        ys = [c.accuracy for _, _, c in points]
        err = [
            [c.accuracy - c.low for _, _, c in points],
            [c.high - c.accuracy for _, _, c in points],
        ]
        ax.errorbar(ns, ys, yerr=err, marker="o", capsize=3, label=f"{method} / {mode}")
        rows += [[method, mode, n, trained_as, c.accuracy, c.seeds] for n, trained_as, c in points]
    ax.set_xticks(sorted({n for points in lines.values() for n, _, _ in points}))
    ax.set_xlabel("CoTs per training question (N)")
    ax.set_ylabel("test accuracy")
    ax.legend(fontsize=7)
    section.lines = _table(["line", "mode", "N", "trained as", "accuracy", "seeds"], rows)
    section.plots.append(_save(fig, run, "accuracy_vs_num_cots.png"))
    return section


def _mode_results(
    metrics: list[dict[str, Any]], *, seeds: bool = True
) -> list[tuple[str, dict[str, Any]]]:
    """(label, mode values) for every mode of every run compared; labels name the run (method,
    N, seed) only when there are several, as in an experiment grid (``seeds=False``: not the
    seed, so one (method, N)'s seeds share a label)."""
    several = len(metrics) > 1
    out = []
    for m in metrics:
        named = seeds and several and m.get("seed") is not None
        seed = f", seed {m['seed']}" if named else ""
        for mode, values in m.get("modes", {}).items():
            out.append((f"{_label(m)}{seed} / {mode}" if several else mode, values))
    return out


def mean_curve(curves: list[list[dict[str, float]]], points: int = 101) -> tuple[Any, Any]:
    """``(coverages, accuracies)``: the mean over ``curves`` (risk-coverage lists, as
    ``risk_coverage`` returns) of each one's accuracy at ``points`` evenly spaced coverages,
    from the largest first coverage of any curve to 1 (linear between a curve's points)."""
    xs = np.linspace(max(c[0]["coverage"] for c in curves), 1.0, points)
    ys = [np.interp(xs, [p["coverage"] for p in c], [p["accuracy"] for p in c]) for c in curves]
    return xs, np.mean(ys, axis=0)


def risk_coverage_lines(metrics: list[dict[str, Any]]) -> list[tuple[str, Any, Any]]:
    """``(label, coverages, accuracies)`` per plotted line: one per mode of a single run; in a
    grid, one per (method, N, mode), its seeds' curves averaged (``mean_curve``), so that a
    3-seed grid of five rows draws a handful of lines, not one per seed."""
    groups: dict[str, list[list[dict[str, float]]]] = defaultdict(list)
    for label, values in _mode_results(metrics, seeds=False):
        if values.get("risk_coverage"):
            groups[label].append(values["risk_coverage"])
    lines = []
    for label, curves in groups.items():
        if len(curves) == 1:
            xs, ys = [p["coverage"] for p in curves[0]], [p["accuracy"] for p in curves[0]]
        else:
            xs, ys = mean_curve(curves)
            label = f"{label}, mean of {len(curves)} seeds"
        lines.append((label, xs, ys))
    return lines


def risk_coverage_section(run: RunDir, metrics: list[dict[str, Any]]) -> Section | None:
    """Risk-coverage curves of every scored mode: accuracy answering the most confident x%
    (seeds averaged in the plot, each seed a row of the table)."""
    curves = [(label, v) for label, v in _mode_results(metrics) if v.get("risk_coverage")]
    if not curves:
        return None
    section = Section("Selective prediction (risk-coverage)")
    lines = risk_coverage_lines(metrics)
    crowded = len(lines) > CROWDED
    fig, ax = plt.subplots(figsize=(6 + 3 * crowded, 3.8))
    colours = plt.get_cmap("tab20").colors
    for i, (label, xs, ys) in enumerate(lines):
        ax.plot(xs, ys, label=label, color=colours[i % len(colours)], linewidth=1.2)
    rows = []
    for label, v in curves:
        coverage, selective = v.get("coverage"), v.get("selective_accuracy")
        rows.append([label, v.get("accuracy"), v.get("aurc"), coverage, selective])
    ax.set_xlabel("coverage (share of questions answered, most confident first)")
    ax.set_ylabel("accuracy on answered")
    ax.set_ylim(0, 1.02)
    if crowded:
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    else:
        ax.legend(fontsize=8)
    section.lines = _table(
        [
            "student / mode",
            "accuracy (full coverage)",
            "AURC (lower is better)",
            "mirror coverage",
            "accuracy when not abstaining",
        ],
        rows,
    )
    section.plots.append(_save(fig, run, "risk_coverage.png"))
    return section


def teacher_vs_student_section(run: RunDir, metrics: list[dict[str, Any]]) -> Section | None:
    """Teacher accuracy and cost beside the students' accuracy and speed on test."""
    if not metrics or not run.summary.is_file():
        return None
    summary = _read_json(run.summary)
    test = (summary.get("by_split") or {}).get("test") or {}
    teacher_acc = test.get("teacher_accuracy", summary.get("teacher_accuracy"))
    where = "test" if "teacher_accuracy" in test else "taught splits"
    rows: list[list[Any]] = [
        [
            f"teacher {summary.get('model', '')} ({where}, per CoT)",
            teacher_acc,
            None,
            summary.get("cost_usd"),
        ],
    ]
    for label, v in _mode_results(metrics):
        rows.append([f"student / {label}", v.get("accuracy"), v.get("answers_per_s"), 0.0])
    section = Section("Teacher vs student")
    section.lines = _table(["who", "accuracy", "answers/s", "cost (USD)"], rows)
    judged = [m for m in metrics if m.get("self_evaluation")]
    if judged:
        several = len(metrics) > 1
        header = ["student", "CoTs", "agrees with teacher", "agrees with gold"]
        header += ["AUROC P(correct)", "teacher vs gold", "teacher verdicts from"]
        table = []
        for m in judged:
            a = m["self_evaluation"]
            label = _label(m) + (f", seed {m['seed']}" if several and "seed" in m else "")
            source = ", ".join(a.get("teacher_source") or []) or "-"
            table.append([label, a["cots"], *(a.get(k) for k in AGREEMENT_FIGURES), source])
        section.lines += [
            "",
            "Student self-evaluation (`verdict:`) on held-out teacher CoTs (test questions):",
            "",
            *_table(header, table),
        ]
    # Full labels (N, seed, mode) so that a grid's bars can be told apart; slanted to fit.
    labels = [r[0] for r in rows]
    values = [r[1] if isinstance(r[1], float | int) else 0.0 for r in rows]
    fig, ax = plt.subplots(figsize=(max(6.0, 0.45 * len(rows)), 3.5 + 1.5 * (len(rows) > CROWDED)))
    ax.bar(range(len(rows)), values, color=["#888"] + ["C0"] * (len(rows) - 1))
    ax.set_xticks(range(len(rows)))
    ax.set_xticklabels(labels, fontsize=7, rotation=40, ha="right")
    ax.set_ylabel("accuracy")
    ax.set_ylim(0, 1)
    section.plots.append(_save(fig, run, "teacher_vs_student.png"))
    return section


# ----------------------------------------------------------------------------- output


def _all_metrics(run: RunDir) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """This run's own metrics, and the list to compare (grid cells, or this run alone).

    Only the grid's own cells (``cells/<cell>/``) are compared: a run nested in the run
    directory (a bench's reference grid on other teacher data) has its own report.
    """
    own_path = run.evaluation / "metrics.json"
    own = _read_json(own_path) if own_path.is_file() else None
    cells = [_read_json(p) for p in sorted(run.cells.glob("*/eval/metrics.json"))]
    return own, cells or ([own] if own else [])


def build_sections(run: RunDir) -> list[Section]:
    """Every section whose inputs exist, in reading order."""
    _, compared = _all_metrics(run)
    parts = [
        accuracy_section(run, compared),
        num_cots_section(run, compared),
        risk_coverage_section(run, compared),
        teacher_vs_student_section(run, compared),
        teacher_section(run),
        training_section(run),
    ]
    return [p for p in parts if p is not None]


def report(run: RunDir) -> Path:
    """Write ``report.md``, ``report.html`` and ``plots/*.png``; return the HTML's path.

    Raises:
        UserError: the run directory does not exist, or it holds nothing to report yet.
    """
    if not run.root.is_dir():
        raise UserError(f"run directory not found: {run.root}")
    sections = build_sections(run)
    if not sections:
        raise UserError(
            f"{run.root}: nothing to report yet; run `mindmirror teach`, `train` or `eval` first"
        )
    title = f"mindmirror report: {run.root.name}"
    write_atomic(run.root / "report.md", markdown_document(title, sections))
    out = run.root / "report.html"
    write_atomic(out, html_document(title, sections, run.plots))
    return out


def main_table(run: RunDir) -> str:
    """The methods x modes table as Markdown (what the demo prints at the end); '' if none."""
    _, compared = _all_metrics(run)
    section = accuracy_section(run, compared)
    return "\n".join(section.lines) if section else ""
