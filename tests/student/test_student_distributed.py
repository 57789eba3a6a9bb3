"""Multi-process training through ``accelerate launch``: two CPU processes talking over gloo.

``--multi_gpu`` is accelerate's torchrun launcher; on a machine without GPUs it starts CPU
processes with the gloo backend (``--cpu`` alone would start a single process).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from mindmirror.records import Record, write_records
from mindmirror.rundir import RunDir

LAUNCHED = """
import sys
from mindmirror.config import load_recipe
from mindmirror.rundir import RunDir
from mindmirror.student.train import train

recipe = load_recipe(sys.argv[1])
train(recipe, RunDir(recipe.resolved_run_dir()), quiet=True)
"""


COUNTING = """
import json, os, sys
import torch.distributed as dist
from mindmirror.config import load_recipe
from mindmirror.rundir import RunDir
from mindmirror.student import trainer
from mindmirror.student.train import train

buckets = trainer.length_buckets
passes = []


def counted(lengths):
    result = buckets(lengths)
    passes.append(len(result))
    return result


# A wrapper that only counts: each micro-batch's forward passes, per process.
trainer.length_buckets = counted
recipe = load_recipe(sys.argv[1])
train(recipe, RunDir(recipe.resolved_run_dir()), quiet=True)
with open(os.path.join(sys.argv[2], f"passes-{dist.get_rank()}.json"), "w") as out:
    json.dump(passes, out)
"""


def launch(tmp_path: Path, records: list[Record], student: Path, script: str, steps: int) -> RunDir:
    """Train ``records`` for ``steps`` steps in two gloo processes; fail with their stderr."""
    accelerate = shutil.which("accelerate", path=os.path.dirname(sys.executable))
    assert accelerate, "accelerate's launcher is installed with the package"
    run = RunDir(tmp_path / "run")
    write_records(run.records, records)
    recipe = tmp_path / "recipe.yaml"
    train = {
        "method": "multi_cot",
        "student": str(student),
        "max_steps": steps,
        "eval_steps": 2,
        "batch_size": 2,
        "eval_max_new_tokens": 8,
    }
    recipe.write_text(yaml.safe_dump({"run_dir": str(run.root), "train": train}))
    launched = tmp_path / "launched.py"
    launched.write_text(script)
    command = [
        accelerate,
        "launch",
        "--multi_gpu",
        "--num_processes",
        "2",
        "--num_machines",
        "1",
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
        str(launched),
        str(recipe),
        str(tmp_path),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return run


@pytest.mark.slow
def test_two_cpu_processes_train_one_student(tmp_path, records, tiny_llama) -> None:
    run = launch(tmp_path, records, tiny_llama, LAUNCHED, steps=4)
    result = json.loads((run.stage("reasoning") / "result.json").read_text())
    assert result["processes"] == 2 and result["backend"] == "gloo"
    assert result["steps"] == 4
    # Each process validated its half of the 3 validation questions; the counts were summed.
    curve = json.loads((run.stage("reasoning") / "curve.json").read_text())
    assert [point["eval_items"] for point in curve] == [3, 3]
    assert (run.student / "train.json").is_file()


@pytest.mark.slow
def test_processes_may_make_different_numbers_of_forward_passes(
    tmp_path, records, tiny_llama
) -> None:
    """One process splits its micro-batch into two forward passes (a long CoT beside short
    rows) while the other makes one. DDP's default broadcast of the model's buffers at every
    forward would then pair one process's second broadcast with the other's next collective,
    and training would hang or fail; the buffers (rotary frequencies, the same on every
    process) are not broadcast."""
    for index, record in enumerate(r for r in records if r.split == "train"):
        for c in record.cots:
            if c.parsed:
                long = index % 4 == 0 and c is record.cots[0]
                c.text = " ".join([c.text] * 6) if long else f"So {record.id[-1]}."
    run = launch(tmp_path, records, tiny_llama, COUNTING, steps=6)
    counts = [json.loads((tmp_path / f"passes-{rank}.json").read_text()) for rank in (0, 1)]
    assert len(counts[0]) == len(counts[1]) == 6
    assert any(a != b for a, b in zip(*counts, strict=True)), counts
    assert json.loads((run.stage("reasoning") / "result.json").read_text())["steps"] == 6
