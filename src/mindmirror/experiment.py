"""`mindmirror experiment`: the paper's comparison grid (methods x num_cots x seeds), one recipe.

Order of work, so that a killed experiment resumes where it stopped:

1. Teach once: reuse ``teacher/records.jsonl`` when it was made with this recipe's task and
   teacher (a different one is a UserError naming what differs; ``grid_teaching``), else run
   ``teach`` (whose cache makes a re-run free).
2. Each cell trains and evaluates in its own run directory ``cells/<method>-n<N>-s<seed>/``
   holding a link to (or copy of) the parent's records; the student side reads nothing else
   of the teacher. A cell is finished when its ``eval/metrics.json`` exists and holds every
   mode asked for, scored with the recipe's evaluation settings; finished cells are skipped,
   half-trained ones resume from their last checkpoint, and a re-run asking for one more mode
   scores only that mode. With ``experiment.records``, each finished cell leaves a durable
   record (``cell_records``), which stands for the cell where its run directory is gone.
3. ``experiment.json`` and ``experiment.md`` get the tables of ``reporting.tables`` (as
   Markdown by ``reporting.grid_markdown``): the paper's
   layout (standard fine-tuning, standard distillation, 1 CoT, N CoTs, 1 and N CoTs with
   self-evaluation, our ``mirror`` mode beside the paper's ``answer`` mode, mean +- std over
   seeds), paired differences with bootstrap intervals, selective prediction; then ``report``
   draws the same cells.

Rows needing teacher self-evaluations say so instead of showing a number when the records
hold none, and gold verdicts (``evaluator: gold``) are labelled as not the paper's method.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from mindmirror.cell_records import (
    keep_record,
    keep_teacher_summary,
    read_correctness,
    record_correctness,
    record_metrics,
    recorded_cell,
)
from mindmirror.config import ExperimentConfig, Recipe, dump_recipe, recipe_from_dict
from mindmirror.config.evaluation import eval_settings_differ
from mindmirror.config.train import train_settings_differ
from mindmirror.errors import UserError
from mindmirror.files import write_atomic, write_json
from mindmirror.grid_teaching import data_seed, evaluation_source, link_records, teaching_needed
from mindmirror.progress import log_console
from mindmirror.records import read_records
from mindmirror.reporting.figures import (
    COT_METHODS,
    SELF_EVAL_METHODS,
    applicable_modes,
)
from mindmirror.reporting.grid_markdown import markdown, teacher_lines
from mindmirror.reporting.tables import (
    Correctness,
    RowKey,
    method_num_cots,
    paired_differences,
    row_results,
    table_rows,
)
from mindmirror.rundir import RunDir
from mindmirror.student.rows import stages

SCHEMA = "mindmirror.experiment/1"


@dataclass(frozen=True)
class Cell:
    """One training + evaluation run of the grid; ``variant`` names the extra row
    (``experiment.extra_rows``) whose settings it trains with, "" for the grid's own cells."""

    method: str
    num_cots: int
    seed: int
    modes: tuple[str, ...]
    variant: str = ""

    @property
    def name(self) -> str:
        """The cell's folder name under ``cells/``."""
        prefix = f"{self.variant}-" if self.variant else ""
        return f"{prefix}{self.method}-n{self.num_cots}-s{self.seed}"


# ------------------------------------------------------------------------------- the grid


def plan_cells(cfg: ExperimentConfig, *, explain_target: str, self_eval: bool = True) -> list[Cell]:
    """Every cell of the grid, seed-major so that a partial run already covers every method.

    ``self_eval=False`` leaves out the methods that need self-evaluations in the records;
    ``explain_target`` (the recipe's ``train.explain_target``) decides which modes apply.
    """
    cells = []
    seeds = {m: cfg.seeds_by_method.get(m, cfg.seeds) for m in cfg.methods}
    for seed in sorted({s for values in seeds.values() for s in values}):
        for method in cfg.methods:
            if seed not in seeds[method] or (method in SELF_EVAL_METHODS and not self_eval):
                continue
            asked = cfg.modes_by_method.get(method, cfg.modes)
            modes = applicable_modes(method, asked, explain_target)
            for n in method_num_cots(method, cfg):
                cells.append(Cell(method, n, seed, modes))
        for row in cfg.extra_rows:
            if row.method in SELF_EVAL_METHODS and not self_eval:
                continue
            asked = cfg.modes_by_method.get(row.method, cfg.modes)
            modes = applicable_modes(row.method, asked, explain_target)
            cells.append(Cell(row.method, row.num_cots, seed, modes, row.name))
    return cells


def cell_recipe(recipe: Recipe, cell: Cell, folder: Path) -> Recipe:
    """The parent recipe with the cell's method, N, training seed, modes and run directory,
    the method's ``experiment.train_by_method`` settings (and with
    ``experiment.equal_examples``, epochs divided by N for the CoT methods and, for
    ``mind_mirror``, the self-evaluation stage's epochs set to epochs / (teacher.num_cots x
    the evaluations of each CoT it trains on)), then an extra row's settings.

    Raises:
        UserError: an extra row's setting that is not a valid recipe value.
    """
    data = recipe.model_dump(mode="json", by_alias=True)
    data["name"] = f"{recipe.name}-{cell.name}"
    data["run_dir"] = str(folder)
    data["seed"] = cell.seed
    data["task"]["split_seed"] = data_seed(recipe)
    train = data["train"]
    train.update(recipe.experiment.train_by_method.get(cell.method, {}))
    train.update(method=cell.method, num_cots=cell.num_cots)
    if recipe.experiment.equal_examples and cell.method in COT_METHODS:
        if cell.method == "mind_mirror":
            # Stage 1 has a verdict row per judged CoT and evaluation (every CoT, whatever
            # N): as many examples as 1 CoT sees at the (tuned) epochs, not a fixed share.
            evals = min(data["teacher"]["num_evals"], train["num_evals"])
            verdicts = data["teacher"]["num_cots"] * evals
            train["stage1_epochs"] = train["epochs"] / verdicts
        else:
            train["stage1_epochs"] = train["stage1_epochs"] or train["epochs"]
        train["epochs"] = train["epochs"] / cell.num_cots
    data["eval"]["modes"] = list(cell.modes)
    rows = {row.name: row for row in recipe.experiment.extra_rows}
    overrides = rows[cell.variant].set if cell.variant else {}
    return recipe_from_dict(data, [f"{key}={json.dumps(v)}" for key, v in overrides.items()])


# ---------------------------------------------------------------------------- the cells


def cell_run(run: RunDir, cell: Cell) -> RunDir:
    """The run directory of one cell."""
    return run.cell(cell.name)


def trained_as_asked(recipe: Recipe, run: RunDir, cell: Cell) -> bool:
    """Whether the cell's student was trained with the cell's ``train:`` settings (its
    ``student/train.json``), so that its scores may stand for the cell."""
    path = cell_run(run, cell).student / "train.json"
    if not path.is_file():
        return False
    made = yaml.safe_load(json.loads(path.read_text(encoding="utf-8"))["recipe"])["train"]
    wanted = cell_recipe(recipe, cell, cell_run(run, cell).root).train
    return not train_settings_differ(made, wanted.model_dump(mode="json"))


def scored_modes(recipe: Recipe, run: RunDir, cell: Cell) -> dict[str, Any] | None:
    """The cell's metrics when they were scored with the cell's evaluation settings (the
    recipe's, or an extra row's).

    None when the cell was never scored, was scored with other settings, or its student was
    trained with other ``train:`` settings (then every mode is scored again, after training
    refuses the stale stages); metrics missing some of ``cell.modes`` are returned as they are.
    """
    sub = cell_run(run, cell)
    path = sub.evaluation / "metrics.json"
    if not path.is_file() or not trained_as_asked(recipe, run, cell):
        return None
    metrics = json.loads(path.read_text(encoding="utf-8"))
    settings = metrics.get("settings")
    if not settings:
        return None
    asked = cell_recipe(recipe, cell, sub.root).eval.model_dump(mode="json")
    return None if eval_settings_differ(settings, asked) else metrics


def finished(recipe: Recipe, run: RunDir, cell: Cell) -> bool:
    """Whether the cell holds scores of every mode it asks for, with this recipe's settings."""
    metrics = scored_modes(recipe, run, cell)
    return metrics is not None and set(cell.modes) <= set(metrics["modes"])


def _merge_scores(sub: RunDir, before: dict[str, Any], after: dict[str, Any], old: str) -> None:
    """Put back the modes scored earlier beside the ones just scored (metrics, predictions)."""
    after["modes"] = {**before["modes"], **after["modes"]}
    after["settings"]["modes"] = list(after["modes"])
    predictions = sub.evaluation / "predictions.jsonl"
    write_atomic(predictions, old + predictions.read_text(encoding="utf-8"))
    write_json(sub.evaluation / "metrics.json", after)


def run_cell(recipe: Recipe, run: RunDir, cell: Cell, quiet: bool = False) -> dict[str, Any]:
    """Train and evaluate one cell; return its metrics.

    Finished stages are not trained again, a ``mind_mirror`` cell takes the self-evaluation
    stage a sibling of its seed trained the same way (``share_stage1``), and modes already
    scored with the same evaluation settings are not scored again (a grid re-run with one more
    mode scores only that mode).
    """
    from mindmirror.evaluate import evaluate
    from mindmirror.stage_copy import STAGE1, share_stage1
    from mindmirror.student.train import train
    from mindmirror.teacher.judge_cots import cot_judge

    sub = cell_run(run, cell)
    link_records(run, sub)
    before = scored_modes(recipe, run, cell)
    missing = [m for m in cell.modes if before is None or m not in before["modes"]]
    if before is not None and not missing:
        return before
    resolved = cell_recipe(recipe, cell, sub.root)
    sub.recipe.write_text(dump_recipe(resolved), encoding="utf-8")
    if STAGE1 in stages(resolved.train.method):
        shared = share_stage1(run, sub, resolved)
        if shared is not None:
            log_console(quiet=quiet).print(f"{cell.name}: stage 1 copied from {shared}")
    train(resolved, sub, quiet=quiet, judge_cots=cot_judge(resolved, sub, quiet))
    old = ""
    if before is not None:
        old = (sub.evaluation / "predictions.jsonl").read_text(encoding="utf-8")
        old = "".join(
            line + "\n"
            for line in old.split("\n")
            if line.strip() and json.loads(line)["mode"] in before["modes"]
        )
    after = evaluate(resolved, sub, missing, quiet=quiet)
    if before is not None:
        _merge_scores(sub, before, after, old)
    return after


def write_outputs(run: RunDir, result: dict[str, Any]) -> None:
    """``experiment.json`` and ``experiment.md`` in the run directory (atomic writes)."""
    write_json(run.root / "experiment.json", result)
    write_atomic(run.root / "experiment.md", result["markdown"] + "\n")


# ------------------------------------------------------------------------------ the whole


def experiment(
    recipe: Recipe, run: RunDir, quiet: bool = False, only_finished: bool = False
) -> dict[str, Any]:
    """Run the recipe's grid (``experiment:``), write the table, then the report.

    ``only_finished`` trains and scores nothing: the table, intervals and report cover the
    cells finished so far, and the others are listed under ``missing`` (a long grid publishes
    what it has while it runs across sessions).

    Returns the content of ``experiment.json``: the grid, every cell's accuracies, the table
    rows (mean, std and per-seed values per mode), ``missing`` (cells left out) and
    ``markdown`` (``experiment.md``).

    Raises:
        UserError: an N above ``teacher.num_cots``, records made with other teaching settings,
            no records with ``only_finished``, or any error of teach, train or eval (finished
            cells stay; re-run to resume).
    """
    from mindmirror.reporting.report import report
    from mindmirror.teacher.teach import teach

    cfg = recipe.experiment
    console = log_console(quiet=quiet)
    most = max(
        [n for method in cfg.methods for n in method_num_cots(method, cfg)]
        + [row.num_cots for row in cfg.extra_rows]
    )
    if most > recipe.teacher.num_cots:
        raise UserError(
            f"the grid asks for {most} CoTs per question (experiment.num_cots, "
            f"num_cots_by_method, extra_rows) but teacher.num_cots is "
            f"{recipe.teacher.num_cots}; raise teacher.num_cots or lower the grid's N"
        )
    if teaching_needed(recipe, run):
        if only_finished:
            raise UserError(f"{run.records} does not exist: no cell of this grid has finished")
        teach(recipe, run, quiet=quiet)
    elif not run.recipe.is_file():
        # Records placed here by hand: remember the settings they are used with from now on.
        run.recipe.write_text(dump_recipe(recipe), encoding="utf-8")
    records = read_records(run.records)
    source = evaluation_source(records)
    cells = plan_cells(cfg, self_eval=source != "none", explain_target=recipe.train.explain_target)
    table = table_rows(cfg, source, recipe.train.distill_label)
    results: dict[Cell, dict[str, Any]] = {}
    correctness: dict[RowKey, dict[int, Correctness]] = {}
    missing = []
    for index, cell in enumerate(cells, 1):
        resolved = cell_recipe(recipe, cell, cell_run(run, cell).root)
        done = finished(recipe, run, cell)
        kept = None if done or not cfg.records else recorded_cell(Path(cfg.records), resolved, cell)
        todo = "not finished, left out" if only_finished else "train + eval"
        state = f"{todo} ({', '.join(cell.modes)})"
        state = "finished, skipped" if done else "recorded, skipped" if kept else state
        console.print(f"[bold]cell {index}/{len(cells)}[/] {cell.name}: {state}")
        key = (cell.method, cell.num_cots, cell.variant)
        if kept is not None:  # finished where its run directory is gone: the record stands
            results[cell] = record_metrics(kept)
            correctness.setdefault(key, {})[cell.seed] = record_correctness(kept)
            continue
        if only_finished and not done:
            missing.append(cell.name)
            continue
        results[cell] = run_cell(recipe, run, cell, quiet=quiet)
        predictions = cell_run(run, cell).evaluation / "predictions.jsonl"
        correctness.setdefault(key, {})[cell.seed] = read_correctness(predictions)
        if cfg.records:
            grid = {"evaluations": source, "data_seed": data_seed(recipe)}
            keep_record(
                Path(cfg.records), resolved, cell, results[cell], table, grid, rewrite=not done
            )
    if cfg.records:
        keep_teacher_summary(Path(cfg.records), run)
    rows = [row_results(r, results) for r in table]
    pairs = paired_differences(
        rows, correctness, resamples=recipe.eval.bootstrap, seed=data_seed(recipe)
    )
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
                "variant": c.variant,
                "questions": m.get("questions"),
                "accuracy": {k: v["accuracy"] for k, v in m.get("modes", {}).items()},
            }
            for c, m in results.items()
        ],
        "rows": rows,
        "paired": pairs,
        "missing": missing,
        "markdown": markdown(
            recipe,
            teacher_lines(run, records, source),
            rows,
            pairs,
            {m.get("questions", 0) for m in results.values()},
        ),
    }
    write_outputs(run, result)
    # Nothing to plot where no cell is in the run directory (`only_finished` before any cell,
    # or every cell recorded on another machine: the records' own plots cover those).
    result["report"] = str(report(run)) if any(run.cells.glob("*/eval/metrics.json")) else None
    return result
