"""`mindmirror experiment`: the paper's comparison grid (methods x num_cots x seeds), one recipe.

Order of work, so that a killed experiment resumes where it stopped:

1. Teach once: reuse ``teacher/records.jsonl`` when it was made with this recipe's task and
   teacher (a different one is a UserError naming what differs), else run ``teach`` (whose
   cache makes a re-run free).
2. Each cell trains and evaluates in its own run directory ``cells/<method>-n<N>-s<seed>/``
   holding a link to (or copy of) the parent's records; the student side reads nothing else
   of the teacher. A cell is finished when its ``eval/metrics.json`` exists and holds every
   mode asked for, scored with the recipe's evaluation settings; finished cells are skipped,
   half-trained ones resume from their last checkpoint, and a re-run asking for one more mode
   scores only that mode.
3. ``experiment.json`` and ``experiment.md`` get the table in the paper's layout (standard
   fine-tuning, standard distillation, 1 CoT, N CoTs, 1 and N CoTs with self-evaluation, our
   ``mirror`` mode beside the paper's ``answer`` mode), mean +- std over seeds; then
   ``report`` draws the same cells.

Rows needing teacher self-evaluations say so instead of showing a number when the records
hold none, and gold verdicts (``evaluator: gold``) are labelled as not the paper's method.
"""

from __future__ import annotations

import filecmp
import json
import os
import shutil
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from rich.console import Console

from mindmirror.config import ExperimentConfig, Recipe, dump_recipe
from mindmirror.embedded import EMBEDDED_MODEL
from mindmirror.errors import UserError
from mindmirror.records import Record, read_records
from mindmirror.rundir import RunDir
from mindmirror.student.rows import METHODS

SCHEMA = "mindmirror.experiment/1"
SELF_EVAL_METHODS = ("mind_mirror", "mind_mirror_joint")
COT_METHODS = ("step_by_step", "multi_cot", *SELF_EVAL_METHODS)
MODE_HEADERS = {
    "answer": "answer (paper)",
    "cot": "cot",
    "vote": "vote",
    "mirror": "mirror (ours)",
}
#: Teacher settings that change how requests are made, never what the records hold.
OPERATIONAL_KEYS = (
    "base_url",
    "api_key_env",
    "concurrency",
    "rpm",
    "tpm",
    "timeout_s",
    "max_retries",
    "use_n",
    "send_seed",
    "price_input_per_mtok",
    "price_output_per_mtok",
    "budget_usd",
    "batch_size",
)
EvalSource = Literal["teacher", "gold", "none"]
# The figures of ``evaluate.self_evaluation_agreement`` that tables average over seeds and show.
AGREEMENT_FIGURES = ("teacher", "gold", "auroc", "teacher_vs_gold")


@dataclass(frozen=True)
class Cell:
    """One training + evaluation run of the grid."""

    method: str
    num_cots: int
    seed: int
    modes: tuple[str, ...]

    @property
    def name(self) -> str:
        """The cell's folder name under ``cells/``."""
        return f"{self.method}-n{self.num_cots}-s{self.seed}"


# ------------------------------------------------------------------------------- the grid


def applicable_modes(method: str, modes: Sequence[str]) -> tuple[str, ...]:
    """The requested modes that mean something for a method's student.

    Students of ``standard``/``distill`` never learnt ``explain:``, so only ``answer``;
    ``mirror`` needs a student that learnt ``verdict:`` (the self-evaluation methods).
    """
    allowed = {"answer"}
    if method in COT_METHODS:
        allowed |= {"cot", "vote"}
    if method in SELF_EVAL_METHODS:
        allowed.add("mirror")
    return tuple(m for m in modes if m in allowed)


def method_num_cots(method: str, num_cots: Sequence[int]) -> list[int]:
    """The Ns a method runs at (see ``ExperimentConfig``): one where N does not apply."""
    ns = sorted(set(num_cots))
    if method in ("standard", "step_by_step"):
        return [1]
    if method == "distill":
        return [ns[-1]]
    if method == "multi_cot":
        return [n for n in ns if n > 1]
    return ns


def plan_cells(cfg: ExperimentConfig, self_eval: bool = True) -> list[Cell]:
    """Every cell of the grid, seed-major so that a partial run already covers every method.

    ``self_eval=False`` leaves out the methods that need self-evaluations in the records.
    """
    cells = []
    seeds = {m: cfg.seeds_by_method.get(m, cfg.seeds) for m in cfg.methods}
    for seed in sorted({s for values in seeds.values() for s in values}):
        for method in cfg.methods:
            if seed not in seeds[method] or (method in SELF_EVAL_METHODS and not self_eval):
                continue
            modes = applicable_modes(method, cfg.modes)
            for n in method_num_cots(method, cfg.num_cots):
                cells.append(Cell(method, n, seed, modes))
    return cells


def data_seed(recipe: Recipe) -> int:
    """The seed of the task's questions, the same for every cell whatever its training seed."""
    return recipe.task.split_seed if recipe.task.split_seed is not None else recipe.seed


def cell_recipe(recipe: Recipe, cell: Cell, folder: Path) -> Recipe:
    """The parent recipe with the cell's method, N, training seed, modes and run directory."""
    data = recipe.model_dump(mode="json", by_alias=True)
    data["name"] = f"{recipe.name}-{cell.name}"
    data["run_dir"] = str(folder)
    data["seed"] = cell.seed
    data["task"]["split_seed"] = data_seed(recipe)
    data["train"].update(method=cell.method, num_cots=cell.num_cots)
    data["eval"]["modes"] = list(cell.modes)
    return Recipe.model_validate(data)


# ---------------------------------------------------------------------------- the records


def _teaching_settings(recipe: Recipe) -> dict[str, Any]:
    """What decides the records' content: the task, the data seed, the teacher."""
    teacher = recipe.teacher.model_dump(mode="json", by_alias=True)
    for key in OPERATIONAL_KEYS:
        teacher.pop(key, None)
    if teacher["backend"] == "embedded":
        # The CLI serves the embedded model over HTTP, so teach records it as `openai`.
        teacher.update(backend="openai", model=EMBEDDED_MODEL)
    task = recipe.task.model_dump(mode="json")
    task["split_seed"] = data_seed(recipe)
    return {"task": task, "teacher": teacher}


def _differences(before: dict[str, Any], now: dict[str, Any]) -> list[str]:
    keys = []
    for section in now:
        old, new = before.get(section, {}), now[section]
        keys += [f"{section}.{k}" for k in sorted({*old, *new}) if old.get(k) != new.get(k)]
    return keys


def _recorded_settings(run: RunDir) -> dict[str, Any] | None:
    """Teaching settings of the recipe that made the run's records (None when unknown)."""
    if not run.recipe.is_file():
        return None
    try:
        data = yaml.safe_load(run.recipe.read_text(encoding="utf-8")) or {}
        return _teaching_settings(Recipe.model_validate(data))
    except (yaml.YAMLError, ValueError):
        return None


def teaching_needed(recipe: Recipe, run: RunDir) -> bool:
    """Whether ``experiment`` will call the teacher (the CLI starts a teacher server only then).

    Raises:
        UserError: the run's records were made with another task or teacher.
    """
    if not run.records.is_file():
        return True
    before = _recorded_settings(run)
    now = _teaching_settings(recipe)
    if before is not None and before != now:
        raise UserError(
            f"{run.records} was made with other teaching settings "
            f"({', '.join(_differences(before, now))} differ); use another run_dir or delete "
            f"{run.teacher} to teach again"
        )
    return False


def evaluation_source(records: Sequence[Record]) -> EvalSource:
    """Where the self-evaluations that training would use come from.

    ``none`` unless both train and validation CoTs carry parsed verdicts (stage 1 trains on
    the first and chooses its checkpoint on the second); ``teacher`` when any is the teacher's.
    """
    sources: dict[str, set[str]] = {"train": set(), "validation": set()}
    for record in records:
        if record.split not in sources:
            continue
        for cot in record.cots:
            sources[record.split] |= {
                e.source for e in cot.evaluations if e.parsed and e.verdict is not None
            }
    if not sources["train"] or not sources["validation"]:
        return "none"
    return "teacher" if "teacher" in sources["train"] else "gold"


def _link_records(parent: RunDir, cell: RunDir) -> None:
    """Give the cell the parent's records: a hard link where possible, else a copy.

    An existing cell file must hold the same records, or the finished cell would be reported
    beside cells trained on other data.
    """
    if cell.records.is_file():
        if not filecmp.cmp(parent.records, cell.records, shallow=False):
            raise UserError(
                f"{cell.root} was trained on other teacher records than {parent.records}; "
                f"delete {cell.root.parent} to run the grid again"
            )
        return
    cell.teacher.mkdir(parents=True, exist_ok=True)
    try:
        os.link(parent.records, cell.records)
    except OSError:
        shutil.copyfile(parent.records, cell.records)


# ---------------------------------------------------------------------------- the cells


def cell_run(run: RunDir, cell: Cell) -> RunDir:
    """The run directory of one cell."""
    return RunDir(run.root / "cells" / cell.name)


def _scoring(recipe: Recipe) -> dict[str, Any]:
    """The evaluation settings that decide a score (the modes are compared one by one)."""
    settings = recipe.eval.model_dump(mode="json")
    settings.pop("modes")
    return settings


def scored_modes(recipe: Recipe, run: RunDir, cell: Cell) -> dict[str, Any] | None:
    """The cell's metrics when they were scored with this recipe's evaluation settings.

    None when the cell was never scored or was scored with other settings (then every mode is
    scored again); metrics missing some of ``cell.modes`` are returned as they are.
    """
    path = cell_run(run, cell).evaluation / "metrics.json"
    if not path.is_file():
        return None
    metrics = json.loads(path.read_text(encoding="utf-8"))
    settings = dict(metrics.get("settings") or {})
    settings.pop("modes", None)
    return metrics if settings == _scoring(recipe) else None


def finished(recipe: Recipe, run: RunDir, cell: Cell) -> bool:
    """Whether the cell holds scores of every mode it asks for, with this recipe's settings."""
    metrics = scored_modes(recipe, run, cell)
    return metrics is not None and set(cell.modes) <= set(metrics["modes"])


def _merge_scores(sub: RunDir, before: dict[str, Any], after: dict[str, Any], old: str) -> None:
    """Put back the modes scored earlier beside the ones just scored (metrics, predictions)."""
    after["modes"] = {**before["modes"], **after["modes"]}
    after["settings"]["modes"] = list(after["modes"])
    predictions = sub.evaluation / "predictions.jsonl"
    for path, text in (
        (predictions, old + predictions.read_text(encoding="utf-8")),
        (sub.evaluation / "metrics.json", json.dumps(after, indent=2, ensure_ascii=False) + "\n"),
    ):
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)


def run_cell(recipe: Recipe, run: RunDir, cell: Cell, quiet: bool = False) -> dict[str, Any]:
    """Train and evaluate one cell; return its metrics.

    Finished stages are not trained again, and modes already scored with the same evaluation
    settings are not scored again (a grid re-run with one more mode scores only that mode).
    """
    from mindmirror.evaluate import evaluate
    from mindmirror.student.train import train

    sub = cell_run(run, cell)
    _link_records(run, sub)
    before = scored_modes(recipe, run, cell)
    missing = [m for m in cell.modes if before is None or m not in before["modes"]]
    if before is not None and not missing:
        return before
    resolved = cell_recipe(recipe, cell, sub.root)
    sub.recipe.write_text(dump_recipe(resolved), encoding="utf-8")
    train(resolved, sub, quiet=quiet)
    old = ""
    if before is not None:
        old = (sub.evaluation / "predictions.jsonl").read_text(encoding="utf-8")
        old = "".join(
            line + "\n" for line in old.splitlines() if json.loads(line)["mode"] in before["modes"]
        )
    after = evaluate(resolved, sub, missing, quiet=quiet)
    if before is not None:
        _merge_scores(sub, before, after, old)
    return after


# ---------------------------------------------------------------------------- the table


@dataclass(frozen=True)
class Row:
    """One line of the paper's table: a method at one N, or a note where it cannot run."""

    label: str
    method: str
    num_cots: int
    note: str | None = None


def table_rows(cfg: ExperimentConfig, source: EvalSource) -> list[Row]:
    """The table's lines in the paper's order, for the methods and Ns of the grid."""
    rows: list[Row] = []
    for method in cfg.methods:
        for n in method_num_cots(method, cfg.num_cots):
            rows += _method_rows(method, n, source)
    return sorted(rows, key=lambda r: (METHODS.index(r.method), r.num_cots, r.note is None))


def _cots(n: int) -> str:
    return f"{n} CoT" if n == 1 else f"{n} CoTs"


def _method_rows(method: str, n: int, source: EvalSource) -> list[Row]:
    if method == "standard":
        return [Row("Standard fine-tuning (gold answers)", method, n)]
    if method == "distill":
        return [Row(f"Standard distillation (teacher majority of {_cots(n)})", method, n)]
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
    return [missing, Row(f"{label} (gold verdicts, not the paper's method)", method, n)]


def _aggregate(values: list[float]) -> dict[str, Any]:
    return {
        "mean": statistics.fmean(values),
        "std": statistics.stdev(values) if len(values) > 1 else None,
        "values": values,
    }


def row_results(row: Row, results: dict[Cell, dict[str, Any]]) -> dict[str, Any]:
    """Per mode: mean, std and per-seed accuracies over the row's finished cells."""
    if row.note is not None:
        return {
            "label": row.label,
            "method": row.method,
            "num_cots": row.num_cots,
            "note": row.note,
            "seeds": [],
            "modes": {},
        }
    mine = sorted(
        (
            (c, m)
            for c, m in results.items()
            if (c.method, c.num_cots) == (row.method, row.num_cots)
        ),
        key=lambda cm: cm[0].seed,
    )
    modes: dict[str, Any] = {}
    for mode in MODE_HEADERS:
        accs = [m["modes"][mode]["accuracy"] for _, m in mine if mode in m.get("modes", {})]
        if accs:
            modes[mode] = _aggregate(accs)
        cover = [m["modes"][mode].get("coverage") for _, m in mine if mode in m.get("modes", {})]
        if accs and mode == "mirror" and None not in cover:
            modes[mode]["coverage"] = statistics.fmean(cover)
    return {
        "label": row.label,
        "method": row.method,
        "num_cots": row.num_cots,
        "note": None,
        "seeds": [c.seed for c, _ in mine],
        "modes": modes,
        "self_evaluation": _self_evaluation([m.get("self_evaluation") for _, m in mine]),
    }


def _self_evaluation(per_seed: list[dict[str, Any] | None]) -> dict[str, Any] | None:
    """Mean over seeds of the student's verdict agreement on held-out teacher CoTs (with the
    teacher, with gold, AUROC of P(correct)); None when no seed measured it."""
    measured = [s for s in per_seed if s]
    if not measured:
        return None
    out: dict[str, Any] = {"cots": measured[0]["cots"], "seeds": len(measured)}
    for key in AGREEMENT_FIGURES:
        values = [s[key] for s in measured if s.get(key) is not None]
        out[key] = statistics.fmean(values) if values else None
    return out


def _self_evaluation_line(row: dict[str, Any]) -> str:
    agree = row["self_evaluation"]

    def fmt(key: str) -> str:
        return "-" if agree[key] is None else f"{agree[key]:.3f}"

    return (
        f"- {row['label']}: on {agree['cots']} CoTs, agrees with the teacher's verdicts "
        f"{fmt('teacher')}, with gold {fmt('gold')}, AUROC of P(correct) {fmt('auroc')} "
        f"(the teacher's own agreement with gold {fmt('teacher_vs_gold')})"
    )


def _cell_text(entry: dict[str, Any] | None) -> str:
    if entry is None:
        return "-"
    text = f"{entry['mean']:.3f}"
    return text + (f" ± {entry['std']:.3f}" if entry["std"] is not None else "")


def markdown_table(rows: list[dict[str, Any]], modes: Sequence[str]) -> list[str]:
    """The comparison table as Markdown lines (accuracy on test, mean ± std over seeds)."""
    shown = [m for m in MODE_HEADERS if m in modes]
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


def _teacher_lines(run: RunDir, records: Sequence[Record], source: EvalSource) -> list[str]:
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


def write_outputs(run: RunDir, result: dict[str, Any]) -> None:
    """``experiment.json`` and ``experiment.md`` in the run directory (atomic writes)."""
    for name, text in (
        ("experiment.json", json.dumps(result, indent=2, ensure_ascii=False) + "\n"),
        ("experiment.md", result["markdown"] + "\n"),
    ):
        tmp = run.root / f"{name}.tmp"
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, run.root / name)


def _markdown(
    recipe: Recipe,
    header: list[str],
    table: list[str],
    rows: list[dict[str, Any]],
    questions: set[int],
) -> str:
    train = recipe.train
    epochs = f"{train.epochs:g} epoch" + ("" if train.epochs == 1 else "s")
    length = f"max {train.max_steps} steps" if train.max_steps else epochs
    mirror = [r for r in rows if "coverage" in r["modes"].get("mirror", {})]
    tested = ", ".join(str(q) for q in sorted(questions)) or "no"
    lines = [
        f"# Experiment: {recipe.name}",
        "",
        *header,
        "",
        f"Student: {train.student}, {'LoRA' if train.lora else 'full fine-tuning'}, "
        f"{length} per stage, alpha {train.alpha}, labels {train.labels}. Test accuracy "
        f"(task's scorer) on {tested} test questions, mean ± sample std over the seeds listed; "
        "answer = "
        "the paper's mode (`predict:`, greedy); mirror = ours (K sampled CoTs weighted by the "
        "student's own verdicts); '-' = mode not applicable to the method or not scored.",
        "",
        *table,
    ]
    if mirror:
        lines += ["", "Mirror mode coverage (share of test questions answered, not abstained):"]
        lines += [f"- {r['label']}: {r['modes']['mirror']['coverage']:.3f}" for r in mirror]
    judged = [r for r in rows if r.get("self_evaluation")]
    if judged:
        lines += [
            "",
            "Student self-evaluation (`verdict:`) on teacher CoTs for the test questions, which "
            "it never trained on; mean over seeds:",
        ]
        lines += [_self_evaluation_line(r) for r in judged]
    return "\n".join(lines)


# ------------------------------------------------------------------------------ the whole


def experiment(recipe: Recipe, run: RunDir, quiet: bool = False) -> dict[str, Any]:
    """Run the recipe's grid (``experiment:``), write the table, then the report.

    Returns the content of ``experiment.json``: the grid, every cell's accuracies, the table
    rows (mean, std and per-seed values per mode) and ``markdown`` (``experiment.md``).

    Raises:
        UserError: an N above ``teacher.num_cots``, records made with other teaching settings,
            or any error of teach, train or eval (finished cells stay; re-run to resume).
    """
    from mindmirror.report import report
    from mindmirror.teacher.teach import teach

    cfg = recipe.experiment
    console = Console(stderr=True, quiet=quiet)
    if max(cfg.num_cots) > recipe.teacher.num_cots:
        raise UserError(
            f"experiment.num_cots asks for {max(cfg.num_cots)} CoTs per question but "
            f"teacher.num_cots is {recipe.teacher.num_cots}; raise teacher.num_cots or lower "
            "experiment.num_cots"
        )
    if teaching_needed(recipe, run):
        teach(recipe, run, quiet=quiet)
    elif not run.recipe.is_file():
        # Records placed here by hand: remember the settings they are used with from now on.
        run.recipe.write_text(dump_recipe(recipe), encoding="utf-8")
    records = read_records(run.records)
    source = evaluation_source(records)
    cells = plan_cells(cfg, self_eval=source != "none")
    results: dict[Cell, dict[str, Any]] = {}
    for index, cell in enumerate(cells, 1):
        done = finished(recipe, run, cell)
        console.print(
            f"[bold]cell {index}/{len(cells)}[/] {cell.name}: "
            + ("finished, skipped" if done else f"train + eval ({', '.join(cell.modes)})")
        )
        results[cell] = run_cell(recipe, run, cell, quiet=quiet)
    rows = [row_results(r, results) for r in table_rows(cfg, source)]
    table = markdown_table(rows, cfg.modes)
    header = _teacher_lines(run, records, source)
    result = {
        "schema": SCHEMA,
        "name": recipe.name,
        "grid": cfg.model_dump(mode="json"),
        "evaluations": source,
        "cells": [
            {
                "cell": c.name,
                "method": c.method,
                "num_cots": c.num_cots,
                "seed": c.seed,
                "questions": m.get("questions"),
                "accuracy": {k: v["accuracy"] for k, v in m.get("modes", {}).items()},
            }
            for c, m in results.items()
        ],
        "rows": rows,
        "markdown": _markdown(
            recipe, header, table, rows, {m.get("questions", 0) for m in results.values()}
        ),
    }
    write_outputs(run, result)
    result["report"] = str(report(run))
    return result
