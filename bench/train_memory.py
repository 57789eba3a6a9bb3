"""Peak memory and time of a protocol cell's training: glibc's default heap, `train.release_memory`
(freed blocks go back to the system), and that with `train.gradient_checkpointing`.

Workload: the costliest SVAMP protocol cell in memory, ``mind_mirror_joint`` at N = 5 with
full fine-tuning of the embedded SmolLM2-135M student (``recipes/svamp_repro_cpu.yaml``, the
tuned optimisation: batch 8 examples = 16 rows, 384 + 256 tokens), trained for ``--steps``
steps through mindmirror's own ``train``. Each arm runs ``--repeats`` times, interleaved, each
in its own subprocess (a clean peak). Reported per arm: peak resident memory (``VmHWM``: the
whole process, model load included), the resident memory left at the end (``VmRSS``: what a
long stage keeps), and the stage's wall time (training plus one validation pass over
``--val`` questions and one checkpoint save, the same work in every arm); median and spread.
Last lines: ``RESULT train_memory_release <ratio>`` (peak default / release),
``RESULT train_memory <ratio>`` (peak release / release + checkpointing) and
``RESULT train_memory_time <ratio>`` (time release + checkpointing / default).

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
from mindmirror.progress import quiet_libraries
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


def rss_mb(field: str = "VmHWM") -> float:
    """This process's peak (``VmHWM``) or current (``VmRSS``) resident memory, in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} in /proc/self/status (Linux only)")


def run_worker(cfg: dict[str, Any]) -> dict[str, Any]:
    """Train the stage in this process; return its peak memory and wall time."""
    run = RunDir(Path(cfg["out"]))
    write_records(run.records, read_records(Path(cfg["records"])))
    settings = {
        **CELL,
        "max_steps": cfg["steps"],
        "evaluations": 1,  # once, at the end of the steps
        "val_limit": cfg["val"],
        "gradient_checkpointing": cfg["checkpointing"],
        "release_memory": cfg["release"],
    }
    overrides = [f"train.{key}={json.dumps(value)}" for key, value in settings.items()]
    recipe = load_recipe(RECIPE, [f"run_dir={run.root}", *overrides])
    stage = train(recipe, run, quiet=True)["stages"]["joint"]
    return {
        "peak_rss_mb": rss_mb("VmHWM"),
        "end_rss_mb": rss_mb("VmRSS"),
        "seconds": stage["train_seconds"],
        "steps": stage["steps"],
        "batch_rows": stage["batch_rows"],
        "precision": stage["precision"],
    }


#: The arms: (name, release_memory, gradient_checkpointing).
ARMS = (
    ("glibc default", False, False),
    ("release_memory", True, False),
    ("release + checkpointing", True, True),
)


def spread(values: list[float], digits: int = 0) -> tuple[float, str]:
    """The median of ``values`` and "median (min-max)"."""
    ordered = sorted(values)
    mid = statistics.median(ordered)
    return mid, f"{mid:.{digits}f} ({ordered[0]:.{digits}f}-{ordered[-1]:.{digits}f})"


def main() -> None:
    """Run every arm ``--repeats`` times in subprocesses and print the comparison."""
    quiet_libraries()
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
        runs: dict[str, list[dict[str, Any]]] = {name: [] for name, _, _ in ARMS}
        for repeat in range(args.repeats):
            for name, release, checkpointing in ARMS:
                worker = {
                    "records": str(taught.records),
                    "out": str(Path(tmp) / f"{release}{checkpointing}{repeat}"),
                    "steps": args.steps,
                    "val": args.val,
                    "checkpointing": checkpointing,
                    "release": release,
                }
                runs[name].append(worker_result(__file__, worker, name))
                r = runs[name][-1]
                print(
                    f"repeat {repeat + 1} {name}: peak {r['peak_rss_mb']:.0f} MB, end "
                    f"{r['end_rss_mb']:.0f} MB, {r['seconds']:.1f} s",
                    flush=True,
                )
    first = runs[ARMS[0][0]][0]
    print(
        f"{CELL['method']} N = {CELL['num_cots']}, full fine-tuning, {first['batch_rows']} rows "
        f"per step, {first['steps']} steps, {first['precision']} "
        f"({resolve_precision('auto')} auto), {cpu_name()}, {os.cpu_count()} cores, "
        f"{args.repeats} repeats, load average at end {os.getloadavg()[0]:.1f}"
    )
    print(f"{'arm':24} {'peak RSS MB':>20} {'end RSS MB':>20} {'time s':>20}")
    peak, seconds = {}, {}
    for name, results in runs.items():
        peak[name], peaks = spread([r["peak_rss_mb"] for r in results])
        _, ends = spread([r["end_rss_mb"] for r in results])
        seconds[name], times = spread([r["seconds"] for r in results], 1)
        print(f"{name:24} {peaks:>20} {ends:>20} {times:>20}")
    default, release, both = (name for name, _, _ in ARMS)
    print(f"RESULT train_memory_release {peak[default] / peak[release]:.2f}")
    print(f"RESULT train_memory {peak[release] / peak[both]:.2f}")
    print(f"RESULT train_memory_time {seconds[both] / seconds[default]:.2f}")


if __name__ == "__main__":
    main()
