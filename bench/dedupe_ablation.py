"""Ablation: does merging identical rows (``train.dedupe``) change what the student learns?

``dedupe`` merges the identical ``predict:`` rows of a question's agreeing CoTs into one row
counted as many times: the same loss per epoch in fewer steps, but not the same optimisation
(fewer, differently composed AdamW steps). This trains the same cell twice on the same data
and seed, merging off (the published behaviour) and on, then compares test accuracy on the
same questions with a paired bootstrap interval.

Cell: ``multi_cot`` on ``recipes/svamp_repro_cpu.yaml`` (MCC-KD gpt-3.5 CoTs on the DSS SVAMP
questions), teacher labels, so agreeing CoTs give identical ``predict:`` rows to merge.

    python bench/dedupe_ablation.py --set task.limit.train=128 --set train.epochs=1
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from mindmirror.config import load_recipe
from mindmirror.evaluate import evaluate
from mindmirror.grid_teaching import teaching_needed
from mindmirror.reporting.metrics import paired_difference
from mindmirror.rundir import RunDir
from mindmirror.student.precision import resolve_precision
from mindmirror.student.train import train
from mindmirror.teacher.teach import teach

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    """Teach once, train and score both arms, print the paired difference."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run-dir", type=Path, default=Path("runs/dedupe_ablation"))
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    args = parser.parse_args()
    base = [
        "train.method=multi_cot",
        "train.labels=teacher",
        "eval.modes=[answer]",
        *args.overrides,
    ]
    correct: dict[bool, dict[str, bool]] = {}
    summary: dict[str, object] = {
        "command": "python bench/dedupe_ablation.py " + " ".join(sys.argv[1:])
    }
    for dedupe in (False, True):
        folder = args.run_dir / f"dedupe-{str(dedupe).lower()}"
        recipe = load_recipe(
            ROOT / "recipes" / "svamp_repro_cpu.yaml",
            [f"run_dir={folder}", *base, f"train.dedupe={str(dedupe).lower()}"],
        )
        run = RunDir(folder)
        if teaching_needed(recipe, run):
            teach(recipe, run, quiet=True)
        started = time.perf_counter()
        trained = train(recipe, run, quiet=True)
        stage = trained["stages"]["reasoning"]
        metrics = evaluate(recipe, run, quiet=True)
        rows = [json.loads(line) for line in (run.evaluation / "predictions.jsonl").open()]
        correct[dedupe] = {r["id"]: r["correct"] for r in rows if r["mode"] == "answer"}
        answer = metrics["modes"]["answer"]
        summary[f"dedupe={dedupe}"] = {
            "rows": stage["rows"]["rows"],
            "steps": stage["steps"],
            "validation": stage["best_metric"],
            "test": answer["accuracy"],
            "interval": [answer["low"], answer["high"]],
            "seconds": round(time.perf_counter() - started, 1),
        }
        print(f"dedupe={dedupe}: {summary[f'dedupe={dedupe}']}", flush=True)
    ids = sorted(correct[False])
    diff = paired_difference(
        [float(correct[False][i]) for i in ids], [float(correct[True][i]) for i in ids]
    )
    summary["paired_dedupe_minus_off"] = diff
    summary["precision"] = resolve_precision(recipe.train.precision)
    summary["load_average"] = os.getloadavg()[0]
    print(json.dumps(summary, indent=2))
    print(
        f"RESULT dedupe_accuracy_difference {diff['diff']:+.3f} "
        f"[{diff['low']:+.3f}, {diff['high']:+.3f}] on {diff['n']} test questions"
    )


if __name__ == "__main__":
    main()
