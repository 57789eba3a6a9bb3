"""The SVAMP protocol's summary and plots, from its committed records alone (issue 23).

``bench/svamp_repro.py`` writes one record per finished cell under ``<records>/cells/``, the
PaLM reference's under ``<records>/palm/cells/`` and one per tuning training under
``<records>/tuning/``; everything published (``summary.json``, the plots, every paired interval)
is computed here from those files, so that it can be rebuilt on any machine.
"""

from __future__ import annotations

import json
import tempfile
from collections import defaultdict
from collections.abc import Collection
from pathlib import Path
from typing import Any

from svamp_grid import copy_plots  # bench/ is on sys.path when run as a script

from mindmirror.cell_records import (
    TEACHER_SUMMARY,
    bootstrap_settings,
    dumps,
    read_cell_records,
    record_metrics,
    record_row,
)
from mindmirror.files import write_atomic
from mindmirror.reporting.calibration import Metric, aurc_of, paired_metric, selective_at
from mindmirror.reporting.grid_markdown import markdown_table, paired_lines, selective_table
from mindmirror.reporting.metrics import COVERAGES
from mindmirror.reporting.report import report
from mindmirror.reporting.tables import row_order
from mindmirror.rundir import RunDir
from mindmirror.student.rows import stages

#: The PaLM-540B reference's records, inside the protocol's folder; its rows' variant.
PALM = "palm"
PALM_LABEL = " [PaLM-540B CoTs]"
TUNING = "tuning"


def tuning_path(folder: Path, method: str, candidate: str) -> Path:
    """Where the record of one tuning training lives."""
    return folder / TUNING / f"{method}-{candidate}.json"


def training_device(train: dict[str, Any]) -> str | None:
    """The GPU a record's training ran on (its name), None for a CPU (records made before
    the device was recorded trained on their CPU)."""
    return train.get("device_name") if train.get("device") == "cuda" else None


def tuning_record(
    method: str,
    num_cots: int,
    candidate: str,
    settings: dict[str, Any],
    train: dict[str, Any],
    provenance: dict[str, Any],
) -> dict[str, Any]:
    """A tuning training's record: the candidate, its validation accuracy (the final stage's
    best, the figure it is chosen on), its compact train summary and its ``provenance`` (what
    made it: the training's ``train:`` settings and the teacher records' hash)."""
    final = train["stages"][stages(method)[-1]]  # type: ignore[arg-type]
    return {
        "method": method,
        "num_cots": num_cots,
        "candidate": candidate,
        "settings": settings,
        "validation": final["best_metric"]["eval_accuracy"],
        "train": train,
        "provenance": provenance,
    }


def write_tuning(folder: Path, record: dict[str, Any]) -> None:
    """Write a tuning record atomically (sorted keys: the same training, the same bytes)."""
    path = tuning_path(folder, record["method"], record["candidate"])
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, dumps(record))


def choose(
    folder: Path, methods: list[str], candidates: dict[str, dict[str, Any]]
) -> tuple[dict[str, dict[str, Any]], list[dict[str, Any]], list[str]]:
    """Per method the candidate with the best validation accuracy among its recorded tuning
    trainings (the first in ``candidates`` order on a tie), the tuning table, and the
    (method, candidate) trainings not recorded yet; a method chooses only once every
    candidate is recorded, so each gets the same budget."""
    chosen: dict[str, dict[str, Any]] = {}
    table, missing = [], []
    for method in methods:
        done = []
        for name in candidates:
            path = tuning_path(folder, method, name)
            if not path.is_file():
                missing.append(f"{method}-{name}")
                continue
            record = json.loads(path.read_text(encoding="utf-8"))
            seconds = sum(s["train_seconds"] for s in record["train"]["stages"].values())
            done.append(record)
            table.append(
                {
                    "method": method,
                    "num_cots": record["num_cots"],
                    "candidate": name,
                    **record["settings"],
                    "validation": record["validation"],
                    "train_s": round(seconds, 1),
                    "peak_rss_mb": peak_memory(record),
                    "device": training_device(record["train"]),
                }
            )
        if len(done) == len(candidates):
            best = max(done, key=lambda r: r["validation"])
            chosen[method] = {"candidate": best["candidate"], **best["settings"]}
    return chosen, table, missing


def cell_seconds(record: dict[str, Any], cells: Collection[str] = ()) -> dict[str, float]:
    """Training seconds and test-inference seconds of a cell (greedy modes, plus the sampled
    modes' longest: they share their samples). The stages copied from another of ``cells``
    (a sibling's stage 1) are that cell's seconds, counted there."""
    modes = record["modes"]
    sampled = [m["seconds"] for k, m in modes.items() if k == "vote" or k.startswith("mirror")]
    greedy = sum(m["seconds"] for k, m in modes.items() if k in ("answer", "cot"))
    train = record["train"]
    copied = train.get("adopted_stages", []) if train.get("adopted_from") in cells else []
    stages_ = [s for name, s in train["stages"].items() if name not in copied]
    return {
        "train_s": round(sum(s["train_seconds"] for s in stages_), 1),
        "eval_s": round(greedy + max(sampled, default=0), 1),
    }


def peak_memory(record: dict[str, Any]) -> float | None:
    """The peak resident memory in MB of a tuning training (the largest of its stages') or of
    a cell (its stages' and its scoring's, with the llama.cpp servers the scoring ran beside
    it: ``servers_unrecorded`` names the scorings that kept no figure for them, counted
    without); None when a part ran before it was recorded."""
    peaks = [s.get("peak_rss_mb") for s in record["train"]["stages"].values()]
    if "modes" in record:  # a cell, scored after training
        scoring = record.get("eval_peak_rss_mb")
        servers = record.get("eval_server_peak_rss_mb")
        peaks.append(scoring + servers if scoring is not None and servers else scoring)
    return None if None in peaks else max(peaks)


def servers_unrecorded(records: list[dict[str, Any]]) -> list[str]:
    """The cells scored through llama.cpp whose records keep no figure for its servers'
    memory (scored before it was kept): their peak counts the scoring process alone."""
    return sorted(
        r["cell"]
        for r in records
        if r.get("engine") == "llama_cpp" and r.get("eval_server_peak_rss_mb") is None
    )


def published_entry(entry: dict[str, Any], seeds: list[int], n_test: int) -> dict[str, Any]:
    """One mode of a row (``tables.row_results``) as the summary publishes it."""
    return {
        "mean": entry["mean"],
        "std": entry["std"],
        "seeds": seeds,
        "values": entry["values"],
        "n_test": n_test,
        "at_coverage": entry.get("at_coverage"),
        "aurc": entry.get("aurc"),
        "own_cots_auroc": entry.get("own_cots_auroc"),
        "judge": entry.get("judge"),
    }


def protocol_records(folder: Path) -> list[dict[str, Any]]:
    """The grid's records, then the PaLM reference's as rows of their own."""
    palm = [
        {**r, "cell": f"{PALM}/{r['cell']}", "label": r["label"] + PALM_LABEL, "variant": PALM}
        for r in read_cell_records(folder / PALM)
    ]
    return [*read_cell_records(folder), *palm]


def _mean(values: list[float | None]) -> float | None:
    """The mean of the values that exist (None when none does)."""
    kept = [v for v in values if v is not None]
    return sum(kept) / len(kept) if kept else None


def ranked_answers(record: dict[str, Any]) -> dict[str, tuple[float, bool]]:
    """Per test question of a cell, its greedy ``answer``'s token probability (the confidence
    ``answer`` mode reports) and whether the answer is right."""
    entry = record["modes"]["answer"]
    pairs = zip(entry["confidence"], entry["correct"], strict=True)
    return {
        q: (conf, bit == "1") for q, (conf, bit) in zip(record["questions"], pairs, strict=True)
    }


def selective_pairs(
    records: list[dict[str, Any]], resamples: int, seed: int
) -> list[dict[str, Any]]:
    """Each row's greedy ``answer`` against standard fine-tuning's, each row ranking its own
    answers by their token probability: the row minus standard in AURC and in selective
    accuracy at each coverage (the best-half figure of issue 25), averaged over the seeds both
    ran (seed s against seed s: ``paired_metric``), with a paired bootstrap 95% interval over
    the questions both scored. Accuracy is paired for every pair of rows (``paired``); this
    ranking bootstrap costs seconds per pair, so it pairs each row with the baseline only."""
    by_row: dict[str, dict[int, dict[str, Any]]] = defaultdict(dict)
    order = {}
    for record in records:
        if "answer" in record["modes"]:
            by_row[record["label"]][record["seed"]] = record
            order[record["label"]] = row_order(record_row(record))
    baseline = next(
        (
            label
            for label, seeds in by_row.items()
            if any(r["method"] == "standard" and not r["variant"] for r in seeds.values())
        ),
        None,
    )
    if baseline is None:
        return []
    base = by_row[baseline]
    metrics: dict[str, Metric] = {"aurc": aurc_of}
    metrics |= {f"selective_{c:g}": selective_at(c) for c in COVERAGES}
    out = []
    for label in sorted(by_row, key=order.__getitem__):
        seeds = sorted(set(base) & set(by_row[label]))
        if label == baseline or not seeds:
            continue
        first = [ranked_answers(base[s]) for s in seeds]
        second = [ranked_answers(by_row[label][s]) for s in seeds]
        # One question list for every seed: a resample draws the same questions in each.
        shared = sorted(set.intersection(*(set(answers) for answers in first + second)))
        if not shared:
            continue
        pair: dict[str, Any] = {"first": baseline, "second": label, "mode": "answer"}
        pair["seeds"] = seeds
        for name, metric in metrics.items():
            pair[name] = paired_metric(
                metric,
                [[a[q][0] for q in shared] for a in first],
                [[b[q][0] for q in shared] for b in second],
                [[a[q][1] for q in shared] for a in first],
                second_correct=[[b[q][1] for q in shared] for b in second],
                resamples=resamples,
                seed=seed,
            )
        out.append(pair)
    return out


def judge_table(records: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per row trained on self-evaluation: the judge's AUROC on the validation teacher CoTs at
    the checkpoint chosen, beside what CoT length alone reaches on the same CoTs, and the same
    pair on the student's own sampled test CoTs (``mirror``); per seed and their mean. Length
    counts tokens on validation (the trainer's) and words on the own CoTs (the signals'); a
    rank statistic barely depends on which."""
    table: dict[str, dict[str, Any]] = {}
    for record in sorted(records, key=lambda r: r["seed"]):
        stage = record["train"]["stages"].get("evaluation")
        if stage is None:
            continue
        chosen = [f for f in stage.get("figures", []) if f["step"] == stage["best_step"]]
        figures = chosen[0] if chosen else {}
        own = (record["modes"].get("mirror") or {}).get("own_cots") or {}
        row = table.setdefault(record["label"], {"seeds": [], "values": defaultdict(list)})
        row["seeds"].append(record["seed"])
        for key, value in (
            ("validation_auroc", figures.get("eval_verdict_auroc")),
            ("validation_length_auroc", figures.get("eval_length_auroc")),
            ("own_cots_auroc", own.get("auroc")),
            ("own_cots_length_auroc", own.get("length_auroc")),
        ):
            row["values"][key].append(value)
    return {
        label: {
            "seeds": row["seeds"],
            **{key: _mean(values) for key, values in row["values"].items()},
            "values": dict(row["values"]),
        }
        for label, row in table.items()
    }


def summary(
    folder: Path,
    records: list[dict[str, Any]],
    tables: dict[str, Any],
    candidates: dict[str, dict[str, Any]],
    methods: list[str],
    planned: list[str],
    command: str,
) -> dict[str, Any]:
    """The published summary, from the records under ``folder`` alone: per row and mode mean,
    std, seeds and n_test; every paired interval; per method the optimisation chosen on
    validation and the tuning table; the judge beside the CoT-length-only baseline
    (``judge_table``); per cell its seconds, the machines and engines, and the protocol's
    CPU hours (tuning + cells); per training (cells and tunings) its peak memory. ``planned``
    names every cell the protocol runs (those without a record are listed as missing).
    ``records`` are the protocol's records under ``folder`` and ``tables`` theirs
    (``tables_from_records``)."""
    n_test = {r["label"]: len(r["questions"]) for r in records}
    chosen, tuning, tuning_missing = choose(folder, methods, candidates)
    cells = {r["cell"] for r in records}
    costs = {r["cell"]: cell_seconds(r, cells) for r in records}
    peaks = {r["cell"]: peak_memory(r) for r in records}
    peaks.update({f"tune/{row['method']}-{row['candidate']}": row["peak_rss_mb"] for row in tuning})
    measured = [p for p in peaks.values() if p is not None]
    machines: dict[str, list[str]] = defaultdict(list)
    engines: dict[str, list[str]] = defaultdict(list)
    hours: dict[str, float] = defaultdict(float)
    for r in records:
        gpu = training_device(r["train"])
        machines[f"{gpu or r['cpu']} ({r['train']['precision']})"].append(r["cell"])
        engines[str(r.get("engine"))].append(r["cell"])
        hours["gpu" if gpu else "cpu"] += sum(costs[r["cell"]].values())
    cells_s = sum(sum(c.values()) for c in costs.values())
    # A seed-0 cell trained by its chosen tuning (svamp_repro.adopt_tuned_students) holds the
    # same training, seconds and all: count it once, in the cells.
    adopted = {r["train"].get("adopted_from") for r in records}
    counted = [row for row in tuning if f"{row['method']}-{row['candidate']}" not in adopted]
    tuning_s = sum(row["train_s"] for row in counted)
    for row in counted:
        hours["gpu" if row["device"] else "cpu"] += row["train_s"]
    done = {r["cell"] for r in records}
    return {
        "command": command,
        "missing_cells": [c for c in planned if c not in done],
        "missing_tuning": tuning_missing,
        "cell_seconds": costs,
        "cells_total_s": round(cells_s, 1),
        "tuning_total_s": round(tuning_s, 1),
        # Hours of the trainings and scorings, by where they trained; processes that shared
        # one GPU count their seconds each.
        "protocol_cpu_hours": round(hours["cpu"] / 3600, 2),
        "protocol_gpu_hours": round(hours["gpu"] / 3600, 2),
        # The training and scoring process, with the scoring's llama.cpp servers where kept.
        "peak_rss_mb": peaks,
        "peak_rss_mb_max": max(measured, default=None),
        "peak_rss_unrecorded": sorted(k for k, v in peaks.items() if v is None),
        "peak_rss_servers_unrecorded": servers_unrecorded(records),
        "machines": dict(sorted(machines.items())),
        "engines": dict(sorted(engines.items())),
        "chosen": chosen,
        "tuning": tuning,
        "cells": {
            row["label"]: {
                mode: published_entry(entry, row["seeds"], n_test[row["label"]])
                for mode, entry in row["modes"].items()
            }
            for row in tables["rows"]
        },
        "paired": tables["paired"],
        "paired_selective": selective_pairs(records, *bootstrap_settings(records)),
        "judge": judge_table(records),
    }


def summary_markdown(tables: dict[str, Any]) -> str:
    """The protocol's tables (``tables_from_records``) as Markdown: test accuracy per row and
    mode (mean ± std over the seeds listed), every paired interval, and selective prediction
    per row and mode (what the docs quote)."""
    rows = tables["rows"]
    return "\n".join(
        [
            *markdown_table(rows, sorted({m for r in rows for m in r["modes"]})),
            "",
            *paired_lines(tables["paired"]),
            "",
            *selective_table(rows),
        ]
    )


def draw_plots(folder: Path, plots: Path, prefix: str) -> list[Path]:
    """The report's plots of the grid's records (not the PaLM reference's, as the run's own
    report leaves out nested runs), copied to ``plots`` as ``<prefix>_<name>.png``."""
    with tempfile.TemporaryDirectory() as scratch:
        run = RunDir(Path(scratch))
        teacher = folder / TEACHER_SUMMARY
        if teacher.is_file():
            run.teacher.mkdir(parents=True)
            run.summary.write_text(teacher.read_text(encoding="utf-8"), encoding="utf-8")
        for record in read_cell_records(folder):
            metrics = record_metrics(record)
            if record["variant"]:
                # An extra row trains the grid's method with other settings: its own bars.
                metrics["method"] = f"{record['method']} ({record['variant']})"
            sub = run.cell(record["cell"])
            sub.evaluation.mkdir(parents=True)
            (sub.evaluation / "metrics.json").write_text(json.dumps(metrics), encoding="utf-8")
        if not any(run.cells.glob("*")):
            return []
        report(run)
        return copy_plots(run, plots, prefix)
