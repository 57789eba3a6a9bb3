"""Durable records of finished grid cells: what a table needs, without the run directory.

A cell's run directory holds weights and full predictions (megabytes); its record holds what
the tables, paired intervals and plots are computed from, in kilobytes, so that it can be
committed (``experiment.records``, usually under ``docs/results/``) and the evidence outlives
the machine that made it. One JSON file per cell, ``<records>/cells/<cell>.json``, written
with sorted keys and no spaces, so the same cell always gives the same bytes:

- who: ``cell``, ``method``, ``num_cots``, ``seed``, ``variant`` (an extra row's name, else
  ""), ``label`` (the table row), ``evaluations`` (teacher / gold verdicts), ``data_seed``,
  ``cpu`` (the machine that wrote the record), ``train_settings`` (the cell's ``train:``);
- ``settings``: the evaluation settings the cell was scored with;
- ``questions``: the test question ids, the order of every per-question list below;
- ``modes``: per mode the cell's figures (accuracy and interval, AURC, selective accuracy,
  coverage, judge, AUROC on its own CoTs, seconds) and per question ``correct`` (a string of
  0/1) and ``confidence`` (rounded to 6 decimals); judged modes add ``p_correct`` per sample
  (4 decimals) and sampled modes name their ``sample_set``;
- ``samples``: the sampled modes' sets of K CoTs (``vote`` and ``mirror`` share one when scored
  together): per question the K parsed answers and their correctness (a string of 0/1);
- ``self_evaluation``, ``self_evaluation_final``: the judge's agreement on teacher CoTs;
- ``engine``: what generated the test answers (``transformers``, ``llama_cpp``, ...);
- ``verdict_fallbacks``: per judging student (``student``; ``judge`` where a separate judge
  judged ``mirror``), the verdicts its server could not read and transformers gave instead
  (None: no server, transformers judged all; the key absent: a record made before it was
  kept); the held-out teacher CoTs' verdicts count too;
- ``eval_peak_rss_mb``: the scoring process's peak resident memory (None before it was kept);
- ``eval_server_peak_rss_mb``: the summed peaks of the llama.cpp servers that scoring started
  (None: it started none; the key absent: a record made before it was kept);
- ``train``: per stage the step chosen on validation, its validation figure and curve, every
  figure of each validation, steps, seconds, peak resident memory, loss and precision; the
  final stage's precision.

What a record leaves out is derived from what it keeps: the risk-coverage curve (from the
confidences and correctness) and the per-mode question count.
"""

from __future__ import annotations

import json
import platform
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mindmirror.config.evaluation import eval_settings_differ
from mindmirror.config.train import train_settings_differ
from mindmirror.files import write_atomic
from mindmirror.reporting.metrics import risk_coverage
from mindmirror.reporting.tables import Correctness, Row, paired_differences, row_order, row_results
from mindmirror.rundir import RunDir
from mindmirror.student.precision import CPUINFO, cpuinfo_field

if TYPE_CHECKING:
    from mindmirror.config import Recipe
    from mindmirror.experiment import Cell

SCHEMA = "mindmirror.cell_record/1"
CELLS = "cells"
TEACHER_SUMMARY = "teacher_summary.json"
#: Beside a student copied from another run's training (``student/adopted.json``): its name.
ADOPTED = "adopted.json"
#: A mode's figures a record leaves out: derived from what it keeps.
DERIVED = ("risk_coverage", "n")
#: What a record adds to a mode's figures: per question (and per sample).
PER_QUESTION = ("correct", "confidence", "p_correct", "sample_set")
#: Per-stage fields of ``student/train.json`` a record keeps.
STAGE_FIELDS = (
    "best_step",
    "best_metric",
    "steps",
    "train_seconds",
    "train_seconds_complete",
    "train_loss",
    "precision",
    "validation_items",
    "peak_rss_mb",
    "peak_rss_scope",
)


def cpu_name() -> str:
    """The CPU model (Linux), else what platform knows: figures depend on it (bf16, AMX)."""
    try:
        name = cpuinfo_field(CPUINFO.read_text(encoding="utf-8", errors="replace"), "model name")
    except OSError:
        name = None
    return name or platform.processor() or platform.machine()


def bits(values: Iterable[bool]) -> str:
    """Outcomes as a string of 0s and 1s (how records keep per-question correctness)."""
    return "".join("1" if v else "0" for v in values)


def read_predictions(run: RunDir) -> dict[str, list[dict[str, Any]]]:
    """A scored run's ``eval/predictions.jsonl``, per mode in file (question) order."""
    by_mode: dict[str, list[dict[str, Any]]] = {}
    for line in (run.evaluation / "predictions.jsonl").read_text(encoding="utf-8").splitlines():
        if line.strip():
            row = json.loads(line)
            by_mode.setdefault(row["mode"], []).append(row)
    return by_mode


def _figure(key: str) -> bool:
    """Whether a validation log key is a figure of quality (not a timing)."""
    return key.startswith("eval_") and not key.endswith(("_runtime", "_per_second"))


def _adoption(sub: RunDir) -> dict[str, Any] | None:
    """``sub``'s ``student/adopted.json`` as long as every copied stage is still the one
    copied; None when trained here. A copied stage trained again here since makes the student
    this run's own; a stage added here after the copied ones (a stage 2 after a sibling's
    stage 1, an own-CoT judge) does not."""
    path = sub.student / ADOPTED
    if not path.is_file():
        return None
    copied = json.loads(path.read_text(encoding="utf-8"))
    stages = json.loads((sub.student / "train.json").read_text(encoding="utf-8"))["stages"]
    kept = all(
        stages.get(name, {}).get("train_seconds") == seconds
        for name, seconds in copied["train_seconds"].items()
    )
    return copied if kept else None


def adopted_from(sub: RunDir) -> str | None:
    """The training ``sub``'s student (or some of its stages, ``adopted_stages``) was copied
    from (``student/adopted.json``); None when trained here."""
    copied = _adoption(sub)
    return None if copied is None else copied["from"]


def train_record(sub: RunDir) -> dict[str, Any]:
    """The compact train summary of a trained run directory: per stage the step chosen on
    validation, its figure, the validation curve (``[step, figure]`` per evaluation), every
    figure of each evaluation (``figures``), steps, seconds, peak memory, loss and precision;
    ``adopted_from``, the training it was copied from (None when trained here), and
    ``adopted_stages``, the stages copied (all, or a sibling cell's stage 1)."""
    summary = json.loads((sub.student / "train.json").read_text(encoding="utf-8"))
    copied = _adoption(sub)
    stages = {}
    for name, stage in summary["stages"].items():
        kept = {k: stage.get(k) for k in STAGE_FIELDS}
        (metric,) = stage["best_metric"]
        curve_path = sub.stage(name) / "curve.json"
        curve = json.loads(curve_path.read_text(encoding="utf-8")) if curve_path.is_file() else []
        kept["validation"] = [[p.get("step"), p[metric]] for p in curve if metric in p]
        # Every figure of each validation (the judge's AUROC beside the CoT-length-only AUROC,
        # the loss), not only the one chosen on: timings left out, they say nothing of quality.
        kept["figures"] = [{k: v for k, v in p.items() if k == "step" or _figure(k)} for p in curve]
        stages[name] = kept
    return {
        "stages": stages,
        "precision": summary.get("precision"),
        # None in records made before the device was recorded: those trained on their CPU.
        "device": summary.get("device"),
        "device_name": summary.get("device_name"),
        "adopted_from": None if copied is None else copied["from"],
        "adopted_stages": [] if copied is None else sorted(copied["train_seconds"]),
    }


def _sampled(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """A sample set: per question the K answers and their correctness."""
    return {
        "answers": [[s["answer"] for s in row["samples"]] for row in rows],
        "correct": [bits(s["correct"] for s in row["samples"]) for row in rows],
    }


def cell_record(
    sub: RunDir, identity: dict[str, Any], metrics: dict[str, Any], cpu: str
) -> dict[str, Any]:
    """The record of a finished cell (``sub``, its run directory): ``identity`` holds ``cell``,
    ``method``, ``num_cots``, ``seed``, ``variant``, ``label``, ``evaluations`` and
    ``data_seed`` (and, from the grid, ``train_settings``); ``metrics`` is its
    ``eval/metrics.json``."""
    by_mode = read_predictions(sub)
    questions = [row["id"] for row in next(iter(by_mode.values()), [])]
    sets: list[dict[str, Any]] = []
    modes = {}
    for mode, figures in metrics["modes"].items():
        rows = by_mode[mode]
        if [row["id"] for row in rows] != questions:
            raise ValueError(f"{sub.root}: mode {mode} scored other questions than the first")
        entry = {k: v for k, v in figures.items() if k not in DERIVED}
        entry["correct"] = bits(row["correct"] for row in rows)
        entry["confidence"] = [round(row["confidence"], 6) for row in rows]
        if mode == "vote" or mode.startswith("mirror"):  # greedy modes keep 1 sample: theirs
            sampled = _sampled(rows)
            if sampled not in sets:
                sets.append(sampled)
            entry["sample_set"] = sets.index(sampled)
            if mode.startswith("mirror"):
                entry["p_correct"] = [
                    [round((s["probs"] or {}).get("correct", 0.0), 4) for s in row["samples"]]
                    for row in rows
                ]
        modes[mode] = entry
    return {
        "schema": SCHEMA,
        **identity,
        "cpu": cpu,
        "settings": metrics.get("settings"),
        "questions": questions,
        "modes": modes,
        "samples": sets,
        "self_evaluation": metrics.get("self_evaluation"),
        "self_evaluation_final": metrics.get("self_evaluation_final"),
        "engine": metrics.get("engine"),
        "verdict_fallbacks": metrics.get("verdict_fallbacks"),
        "eval_peak_rss_mb": metrics.get("peak_rss_mb"),
        "eval_server_peak_rss_mb": metrics.get("server_peak_rss_mb"),
        "train": train_record(sub),
    }


def keep_record(
    folder: Path,
    resolved: Recipe,
    cell: Cell,
    metrics: dict[str, Any],
    table: list[Row],
    grid: dict[str, Any],
    *,
    rewrite: bool,
) -> None:
    """Write a finished cell's record (``resolved``: the cell's recipe; its row's label from
    ``table``; ``grid`` holds the grid's ``evaluations`` and ``data_seed``) when the cell was
    scored now (``rewrite``) or has none yet: a record is not rewritten by a later session,
    whose machine did not make it."""
    if not rewrite and record_path(folder, cell.name).is_file():
        return
    key = (cell.method, cell.num_cots, cell.variant, None)
    (label,) = [r.label for r in table if (r.method, r.num_cots, r.variant, r.note) == key]
    identity = {
        "cell": cell.name,
        "method": cell.method,
        "num_cots": cell.num_cots,
        "seed": cell.seed,
        "variant": cell.variant,
        "label": label,
        "train_settings": resolved.train.model_dump(mode="json"),
        **grid,
    }
    sub = RunDir(resolved.resolved_run_dir())
    write_record(folder, cell_record(sub, identity, metrics, cpu_name()))


#: Teacher-summary fields that describe one invocation's work (its time, requests, cache hits,
#: money), not the teacher data: a run that only re-reads its records changes these alone.
#: ``samples_failed``, ``samples_skipped`` and ``budget_exhausted`` are per invocation too but
#: stay compared: they change only with the data's own counts, and then the copy should too.
INVOCATION_FIELDS = frozenset(
    {
        "wall_s",
        "requests",
        "retries",
        "samples_new",
        "cache_hits",
        "prompt_tokens_cached",
        "cost_usd_this_run",
        "samples_batch",
    }
)


def keep_teacher_summary(folder: Path, run: RunDir) -> None:
    """Copy the grid's teacher summary (what the report's teacher plot reads) beside the cell
    records, when the run has one. A kept copy that says the same of the teacher data stays
    as it is, so that a grid resumed on another machine leaves the committed copy unchanged."""
    if not run.summary.is_file():
        return
    target = folder / TEACHER_SUMMARY

    def data(path: Path) -> dict[str, Any] | None:
        try:
            summary = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):  # missing or damaged (a merge conflict): write it anew
            return None
        return {k: v for k, v in summary.items() if k not in INVOCATION_FIELDS}

    kept = data(target)
    if kept is not None and kept == data(run.summary):
        return
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(run.summary, target)


def recorded_cell(folder: Path, resolved: Recipe, cell: Cell) -> dict[str, Any] | None:
    """The record of a cell that another machine finished, when it holds every mode the cell
    asks for, trained and scored with the cell's settings (``resolved``: its recipe); None
    otherwise. The grid reuses it instead of training the cell again."""
    path = record_path(folder, cell.name)
    if not path.is_file():
        return None
    record = json.loads(path.read_text(encoding="utf-8"))
    same = not train_settings_differ(
        record["train_settings"], resolved.train.model_dump(mode="json")
    ) and not eval_settings_differ(record["settings"], resolved.eval.model_dump(mode="json"))
    return record if same and set(cell.modes) <= set(record["modes"]) else None


def record_path(folder: Path, cell: str) -> Path:
    """Where the record of ``cell`` lives under a records folder."""
    return folder / CELLS / f"{cell}.json"


def dumps(data: Any) -> str:
    """The records' JSON: sorted keys, no spaces, one line (the same data, the same bytes)."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False) + "\n"


def write_record(folder: Path, record: dict[str, Any]) -> Path:
    """Write a cell's record atomically; return its path."""
    path = record_path(folder, record["cell"])
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, dumps(record))
    return path


def read_cell_records(folder: Path) -> list[dict[str, Any]]:
    """Every cell record under a records folder, by cell name (none when it has none).

    Raises:
        ValueError: a record of another schema.
    """
    out = []
    for path in sorted((folder / CELLS).glob("*.json")):
        record = json.loads(path.read_text(encoding="utf-8"))
        if record.get("schema") != SCHEMA:
            raise ValueError(f"{path}: schema {record.get('schema')!r}, expected {SCHEMA}")
        out.append(record)
    return out


def record_metrics(record: dict[str, Any]) -> dict[str, Any]:
    """The cell's ``eval/metrics.json`` as the tables and the report read it, the derived
    figures (question count, risk-coverage curve) computed again from the record."""
    modes = {}
    for mode, entry in record["modes"].items():
        correct = [c == "1" for c in entry["correct"]]
        figures = {k: v for k, v in entry.items() if k not in PER_QUESTION}
        modes[mode] = {
            **figures,
            "n": len(correct),
            "risk_coverage": risk_coverage(entry["confidence"], correct),
        }
    return {
        "method": record["method"],
        "num_cots": record["num_cots"],
        "seed": record["seed"],
        "questions": len(record["questions"]),
        "settings": record["settings"],
        "modes": modes,
        "self_evaluation": record["self_evaluation"],
        "self_evaluation_final": record["self_evaluation_final"],
    }


def read_correctness(predictions: Any) -> Correctness:
    """``{mode: {id: correct}}`` from a cell's ``eval/predictions.jsonl`` (a Path)."""
    out: Correctness = {}
    if not predictions.is_file():
        return out
    # Not splitlines(): a generated text may hold U+2028, which JSON leaves unescaped.
    for line in predictions.read_text(encoding="utf-8").split("\n"):
        if line.strip():
            row = json.loads(line)
            out.setdefault(row["mode"], {})[row["id"]] = bool(row["correct"])
    return out


def record_correctness(record: dict[str, Any]) -> Correctness:
    """``{mode: {question id: correct}}``, as ``read_correctness`` reads a cell's."""
    return {
        mode: {q: c == "1" for q, c in zip(record["questions"], entry["correct"], strict=True)}
        for mode, entry in record["modes"].items()
    }


def record_row(record: dict[str, Any]) -> Row:
    """The table row a record belongs to."""
    return Row(record["label"], record["method"], record["num_cots"], variant=record["variant"])


def bootstrap_settings(records: list[dict[str, Any]]) -> tuple[int, int]:
    """The records' own bootstrap: ``(resamples, seed)``, the resamples of their evaluation
    settings seeded with their data seed; ``(0, 0)`` for no records.

    Raises:
        ValueError: records with other bootstrap settings (their intervals would not compare).
    """
    bootstrap = {(r["settings"]["bootstrap"], r["data_seed"]) for r in records}
    if len(bootstrap) > 1:
        raise ValueError(f"records with other bootstrap settings: {sorted(bootstrap)}")
    return bootstrap.pop() if bootstrap else (0, 0)


def tables_from_records(records: list[dict[str, Any]]) -> dict[str, Any]:
    """The rows (``tables.row_results``) and every paired interval of a set of records, one
    row per label, in the paper's order; the bootstrap is the records' own (resamples from
    their evaluation settings, seeded with their data seed).

    Raises:
        ValueError: records with other bootstrap settings, or one label for two rows.
    """
    from mindmirror.experiment import Cell  # at call time: experiment imports this module

    rows: dict[str, Row] = {}
    results: dict[Cell, dict[str, Any]] = {}
    correctness: dict[tuple[str, int, str], dict[int, Correctness]] = {}
    for record in records:
        row = record_row(record)
        if rows.setdefault(row.label, row) != row:
            raise ValueError(f"two rows are labelled {row.label!r}: {rows[row.label]} and {row}")
        cell = Cell(row.method, row.num_cots, record["seed"], tuple(record["modes"]), row.variant)
        results[cell] = record_metrics(record)
        key = (row.method, row.num_cots, row.variant)
        correctness.setdefault(key, {})[record["seed"]] = record_correctness(record)
    resamples, seed = bootstrap_settings(records)
    table = [row_results(r, results) for r in sorted(rows.values(), key=row_order)]
    pairs = paired_differences(table, correctness, resamples=resamples, seed=seed)
    return {"rows": table, "paired": pairs}
