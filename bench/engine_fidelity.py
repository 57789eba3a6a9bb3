"""Engine fidelity on a protocol cell: llama.cpp's sampled modes against transformers' (issue 24).

A protocol cell (``bench/svamp_repro.py``) is scored through ``eval.engine: llama_cpp``. This
scores the same student again through transformers, with the same K, temperature, top-p and
seeds, and asks whether llama.cpp's figures fall inside the transformers path's bootstrap
intervals (over questions): accuracy in each mode, the greedy answers' agreement, and the
AUROC of the judge's P(correct) on the student's own sampled CoTs (``mirror``). It also
reports the seconds each engine took for the cell's modes (the sampled modes share their
samples, so a path's sampling time is the longer of the two).

The result (both engines' per-question and per-sample outcomes: kilobytes) goes to
``docs/results/engine_fidelity/<cell>.json``, and ``--summarise`` recomputes the comparison from
it alone.

    python bench/engine_fidelity.py --cell mind_mirror-n5-s0   # about 35 minutes on 2 cores
    python bench/engine_fidelity.py --summarise                # from the committed results
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mindmirror.cell_records import cpu_name, read_predictions
from mindmirror.config import load_recipe
from mindmirror.errors import UserError
from mindmirror.grid_teaching import link_records
from mindmirror.progress import quiet_libraries
from mindmirror.reporting.metrics import accuracy_interval, agreement, auroc, paired_difference
from mindmirror.rundir import RunDir
from mindmirror.student.infer import MODES

RESULTS = Path("docs/results/engine_fidelity")
#: Beside the transformers scoring: the hash of the cell's metrics it was made against.
SOURCE = "scored_from.sha256"
ENGINES = ("llama_cpp", "transformers")


def sampled(mode: str) -> bool:
    """Whether a mode reads the shared sampled CoTs (``vote``, ``mirror``, ``mirror_final``)."""
    return mode == "vote" or mode.startswith("mirror")


def engine_outcomes(run: RunDir) -> dict[str, Any]:
    """What one engine's scoring of a run decided, compactly: per mode each question's id,
    correctness and canonical answer, and (sampled modes) each sample's P(correct) and
    correctness; the mode's seconds and the engine named in ``eval/metrics.json``."""
    metrics = json.loads((run.evaluation / "metrics.json").read_text(encoding="utf-8"))
    modes = {}
    for mode, rows in read_predictions(run).items():
        modes[mode] = {
            "ids": [r["id"] for r in rows],
            "correct": [bool(r["correct"]) for r in rows],
            "answers": [r["canonical"] for r in rows],
            "seconds": metrics["modes"][mode]["seconds"],
        }
        if mode.startswith("mirror"):  # the judged samples (vote's are the same CoTs)
            modes[mode]["samples"] = [
                [[round(s["probs"]["correct"], 5), s["correct"]] for s in r["samples"]]
                for r in rows
            ]
    return {"engine": metrics["engine"], "modes": modes}


def auroc_interval(
    samples: Sequence[Sequence[Sequence[Any]]],
    *,
    resamples: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> dict[str, float | None]:
    """AUROC of the samples' P(correct) against their correctness, with a percentile-bootstrap
    interval over questions (a question's samples are resampled together).

    ``samples``: per question, ``[p_correct, correct]`` per sample.
    """
    flat = [(p, c) for question in samples for p, c in question]
    point = auroc([p for p, _ in flat], [c for _, c in flat])
    rng = np.random.default_rng(seed)
    values = []
    for idx in rng.integers(0, len(samples), size=(resamples, len(samples))):
        drawn = [(p, c) for i in idx for p, c in samples[i]]
        value = auroc([p for p, _ in drawn], [c for _, c in drawn])
        if value is not None:
            values.append(value)
    if point is None or not values:
        return {"auroc": point, "low": None, "high": None}
    tail = (1.0 - level) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail])
    return {"auroc": point, "low": float(low), "high": float(high)}


def _inside(value: float | None, low: float | None, high: float | None) -> bool | None:
    if value is None or low is None or high is None:
        return None
    return low <= value <= high


def compare(result: dict[str, Any], resamples: int = 1000) -> dict[str, Any]:
    """llama.cpp against transformers on one cell, per mode: each accuracy, transformers'
    interval and whether llama.cpp's accuracy is inside it, the paired difference
    (llama.cpp - transformers) over questions, how often the two chose the same answer;
    ``mirror`` adds the own-CoT AUROC of each and the same inside test; and the seconds of
    each path (the greedy modes, the sampling once and each judging pass) with their ratio."""
    fast, reference = (result["engines"][name]["modes"] for name in ENGINES)
    modes: dict[str, Any] = {}
    for mode in reference:
        if mode not in fast:
            continue
        if fast[mode]["ids"] != reference[mode]["ids"]:
            raise UserError(f"mode {mode}: the two engines scored different questions")
        interval = accuracy_interval(reference[mode]["correct"], resamples=resamples)
        accuracy = sum(fast[mode]["correct"]) / len(fast[mode]["correct"])
        entry = {
            "llama_cpp": accuracy,
            "transformers": interval["accuracy"],
            "transformers_interval": [interval["low"], interval["high"]],
            "inside": _inside(accuracy, interval["low"], interval["high"]),
            "paired": paired_difference(
                [float(c) for c in reference[mode]["correct"]],
                [float(c) for c in fast[mode]["correct"]],
                resamples=resamples,
            ),
            "same_answer": agreement(fast[mode]["answers"], reference[mode]["answers"]),
            "n": len(fast[mode]["correct"]),
        }
        if mode.startswith("mirror"):
            ours = auroc_interval(fast[mode]["samples"], resamples=0)["auroc"]
            theirs = auroc_interval(reference[mode]["samples"], resamples=resamples)
            entry["own_cot_auroc"] = {
                "llama_cpp": ours,
                "transformers": theirs["auroc"],
                "transformers_interval": [theirs["low"], theirs["high"]],
                "inside": _inside(ours, theirs["low"], theirs["high"]),
            }
        modes[mode] = entry

    def seconds(by_mode: dict[str, Any]) -> float:
        """The greedy modes, the sampling once and every judging pass: ``vote``'s seconds are
        the sampling, each ``mirror`` mode's the sampling plus its own judging pass (without
        ``vote`` the sampling is not known apart, and the longest sampled mode stands for all)."""
        greedy = sum(m["seconds"] for k, m in by_mode.items() if k in modes and not sampled(k))
        shared = {k: m["seconds"] for k, m in by_mode.items() if k in modes and sampled(k)}
        if "vote" not in shared:
            return greedy + max(shared.values(), default=0.0)
        sampling = shared["vote"]
        return greedy + sampling + sum(s - sampling for k, s in shared.items() if k != "vote")

    spent = {name: seconds(result["engines"][name]["modes"]) for name in ENGINES}
    return {
        "modes": modes,
        "seconds": spent,
        "time_ratio": spent["llama_cpp"] / spent["transformers"] if spent["transformers"] else None,
    }


def score_with_transformers(cell: RunDir, folder: RunDir, quiet: bool) -> None:
    """Score the cell's student again into ``folder`` with ``eval.engine: transformers`` and
    the cell's own evaluation settings and modes. A finished scoring is kept while the cell's
    scores are those it was compared with (``SOURCE`` holds their hash); a cell scored again
    since is scored again here too."""
    from mindmirror.evaluate import evaluate

    metrics_path = cell.evaluation / "metrics.json"
    if not metrics_path.is_file() or not (cell.student / "train.json").is_file():
        raise UserError(f"{cell.root}: no trained and scored cell there; run the protocol first")
    scored = json.loads(metrics_path.read_text(encoding="utf-8"))
    if scored["engine"] != "llama_cpp":
        raise UserError(f"{cell.root} was scored with {scored['engine']}, not llama_cpp")
    source = hashlib.sha256(metrics_path.read_bytes()).hexdigest()
    stamp = folder.root / SOURCE
    scored_here = (folder.evaluation / "metrics.json").is_file() and stamp.is_file()
    if scored_here and stamp.read_text(encoding="utf-8") == source:
        return
    link_records(cell, folder)
    if not folder.student.exists():
        os.symlink(cell.student.resolve(), folder.student, target_is_directory=True)
    recipe = load_recipe(cell.recipe, [f"run_dir={folder.root}", "eval.engine=transformers"])
    # The modes `eval` is asked for; `mirror_final` comes with `mirror` where there is one.
    evaluate(recipe, folder, [m for m in scored["modes"] if m in MODES], quiet=quiet)
    stamp.write_text(source, encoding="utf-8")


def report(name: str, result: dict[str, Any]) -> None:
    """Print the comparison as a table and the RESULT lines."""
    compared = compare(result)
    print(f"{name} ({result['cpu']}): llama.cpp against transformers' 95% intervals")
    print(
        "| mode | llama.cpp | transformers (interval) | inside "
        "| llama.cpp - transformers | same answer |"
    )
    print("|---|---|---|---|---|---|")
    for mode, e in compared["modes"].items():
        low, high = e["transformers_interval"]
        p = e["paired"]
        print(
            f"| {mode} | {e['llama_cpp']:.3f} | {e['transformers']:.3f} ({low:.3f}-{high:.3f}) "
            f"| {e['inside']} | {p['diff']:+.3f} [{p['low']:+.3f}, {p['high']:+.3f}] "
            f"| {e['same_answer']:.3f} |"
        )
        if "own_cot_auroc" in e:
            a = e["own_cot_auroc"]
            low, high = a["transformers_interval"]
            print(
                f"| {mode} own-CoT AUROC | {a['llama_cpp']:.3f} | {a['transformers']:.3f} "
                f"({low:.3f}-{high:.3f}) | {a['inside']} | | |"
            )
    spent = compared["seconds"]
    print(f"seconds: llama.cpp {spent['llama_cpp']:.0f}, transformers {spent['transformers']:.0f}")
    if compared["time_ratio"] is not None:
        print(f"RESULT engine_time_ratio {compared['time_ratio']:.3f}")


def main() -> None:
    """Score a protocol cell with transformers and compare, or summarise committed results."""
    quiet_libraries()
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run-dir", type=Path, default=Path("runs/svamp_repro"))
    parser.add_argument("--cell", default="mind_mirror-n5-s0", help="a scored protocol cell")
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--summarise", action="store_true", help="read only the results")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args()
    if args.summarise:
        paths = sorted(args.results.glob("*.json"))
        if not paths:
            raise UserError(f"no results under {args.results}; run with --cell first")
        for path in paths:
            report(path.stem, json.loads(path.read_text(encoding="utf-8")))
        return
    run = RunDir(args.run_dir)
    cell = run.cell(args.cell)
    folder = RunDir(run.root / "fidelity" / args.cell)
    score_with_transformers(cell, folder, args.quiet)
    result = {
        "cell": args.cell,
        "cpu": cpu_name(),
        "engines": {"llama_cpp": engine_outcomes(cell), "transformers": engine_outcomes(folder)},
    }
    args.results.mkdir(parents=True, exist_ok=True)
    path = args.results / f"{args.cell}.json"
    path.write_text(json.dumps(result, separators=(",", ":")) + "\n", encoding="utf-8")
    report(args.cell, result)


if __name__ == "__main__":
    try:
        main()
    except UserError as error:  # a user's mistake: one line, no traceback
        sys.exit(f"error: {error}")
