"""Peak memory and time of full fine-tuning with and without `train.gradient_checkpointing`.

Workload: the costliest SVAMP protocol cell in memory, ``mind_mirror_joint`` at N = 5 with
full fine-tuning of the embedded SmolLM2-135M student (``recipes/svamp_repro_cpu.yaml``, the
tuned optimisation: batch 8 examples = 16 rows, 384 + 256 tokens), trained for ``--steps``
steps through mindmirror's own ``train``. Length-grouped batches put the longest batch first,
so a few steps reach the stage's peak. Each arm runs ``--repeats`` times, interleaved, each
in its own subprocess (a clean peak). Reported per arm: peak resident memory (``VmHWM``: the
whole process, model load included) and the stage's wall time (training plus one validation
pass over ``--val`` questions and one checkpoint save, the same work in both arms, so the time
ratio understates the per-step cost); median and spread. Last lines:
``RESULT train_memory <ratio>`` (peak without / with) and ``RESULT train_memory_time <ratio>``
(time with / without).

    python bench/train_memory.py                 # 8 steps, 3 repeats per arm
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

from svamp_repro import RECIPE  # bench/ is on sys.path as a script
from train_throughput import worker_result

from mindmirror.cell_records import cpu_name
from mindmirror.config import load_recipe
from mindmirror.records import read_records, write_records
from mindmirror.rundir import RunDir
from mindmirror.student.precision import resolve_precision
from mindmirror.student.train import train
from mindmirror.teacher.teach import teach

#: The tuned optimisation of the SVAMP protocol (docs/benchmarks.md) and the joint cell.
CELL = {
    "method": "mind_mirror_joint",
    "num_cots": 5,
    "lora": False,
    "learning_rate": 1e-4,
    "report_to": "none",
}


def peak_rss_mb() -> float:
    """This process's peak resident memory so far (``VmHWM``), in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status (Linux only)")


def run_worker(cfg: dict[str, Any]) -> dict[str, Any]:
    """Train the stage in this process; return its peak memory and wall time."""
    run = RunDir(Path(cfg["out"]))
    write_records(run.records, read_records(Path(cfg["records"])))
    settings = {
        **CELL,
        "max_steps": cfg["steps"],
        "eval_steps": cfg["steps"],
        "val_limit": cfg["val"],
        "gradient_checkpointing": cfg["checkpointing"],
    }
    overrides = [f"train.{key}={json.dumps(value)}" for key, value in settings.items()]
    recipe = load_recipe(RECIPE, [f"run_dir={run.root}", *overrides])
    stage = train(recipe, run, quiet=True)["stages"]["joint"]
    return {
        "peak_rss_mb": peak_rss_mb(),
        "seconds": stage["train_seconds"],
        "steps": stage["steps"],
        "batch_rows": stage["batch_rows"],
        "precision": stage["precision"],
    }


def main() -> None:
    """Run both arms ``--repeats`` times in subprocesses and print the comparison."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=8, help="optimizer steps per run")
    parser.add_argument("--val", type=int, default=4, help="validation questions per run")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(run_worker(json.loads(args.worker))))
        return
    recipe = load_recipe(RECIPE)
    if not Path(recipe.task.path or "").is_dir():
        sys.exit(f"needs the public SVAMP data at {recipe.task.path}")
    with tempfile.TemporaryDirectory(prefix="mm-bench-") as tmp:
        taught = RunDir(Path(tmp) / "teach")
        teach(recipe.model_copy(update={"run_dir": str(taught.root)}), taught, quiet=True)
        runs: dict[bool, list[dict[str, Any]]] = {False: [], True: []}
        for repeat in range(args.repeats):
            for on in (False, True):
                worker = {
                    "records": str(taught.records),
                    "out": str(Path(tmp) / f"{on}{repeat}"),
                    "steps": args.steps,
                    "val": args.val,
                    "checkpointing": on,
                }
                runs[on].append(worker_result(__file__, worker, f"checkpointing={on}"))
                r = runs[on][-1]
                print(
                    f"repeat {repeat + 1} checkpointing={on}: {r['peak_rss_mb']:.0f} MB, "
                    f"{r['seconds']:.1f} s",
                    flush=True,
                )
    first = runs[False][0]
    print(
        f"{CELL['method']} N = {CELL['num_cots']}, full fine-tuning, {first['batch_rows']} rows "
        f"per step, {first['steps']} steps, {first['precision']} "
        f"({resolve_precision('auto')} auto), {cpu_name()}, {os.cpu_count()} cores, "
        f"{args.repeats} repeats, load average at end {os.getloadavg()[0]:.1f}"
    )
    print(f"{'gradient_checkpointing':24} {'peak RSS MB (min-max)':>24} {'time s (min-max)':>20}")
    median = {}
    for on, results in runs.items():
        peaks = sorted(r["peak_rss_mb"] for r in results)
        times = sorted(r["seconds"] for r in results)
        median[on] = (statistics.median(peaks), statistics.median(times))
        print(
            f"{on!s:24} {f'{median[on][0]:.0f} ({peaks[0]:.0f}-{peaks[-1]:.0f})':>24} "
            f"{f'{median[on][1]:.1f} ({times[0]:.1f}-{times[-1]:.1f})':>20}"
        )
    print(f"RESULT train_memory {median[False][0] / median[True][0]:.2f}")
    print(f"RESULT train_memory_time {median[True][1] / median[False][1]:.2f}")


if __name__ == "__main__":
    main()
