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

import pytest
import yaml

from mindmirror.records import write_records
from mindmirror.rundir import RunDir

LAUNCHED = """
import sys
from mindmirror.config import load_recipe
from mindmirror.rundir import RunDir
from mindmirror.student.train import train

recipe = load_recipe(sys.argv[1])
train(recipe, RunDir(recipe.resolved_run_dir()), quiet=True)
"""


@pytest.mark.slow
def test_two_cpu_processes_train_one_student(tmp_path, records, tiny_llama) -> None:
    accelerate = shutil.which("accelerate", path=os.path.dirname(sys.executable))
    assert accelerate, "accelerate's launcher is installed with the package"
    run = RunDir(tmp_path / "run")
    write_records(run.records, records)
    recipe = tmp_path / "recipe.yaml"
    train = {
        "method": "multi_cot",
        "student": str(tiny_llama),
        "max_steps": 4,
        "eval_steps": 2,
        "batch_size": 2,
        "eval_max_new_tokens": 8,
    }
    recipe.write_text(yaml.safe_dump({"run_dir": str(run.root), "train": train}))
    script = tmp_path / "launched.py"
    script.write_text(LAUNCHED)
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
        str(script),
        str(recipe),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads((run.stage("reasoning") / "result.json").read_text())
    assert result["processes"] == 2 and result["backend"] == "gloo"
    assert result["steps"] == 4
    # Each process validated its half of the 3 validation questions; the counts were summed.
    curve = json.loads((run.stage("reasoning") / "curve.json").read_text())
    assert [point["eval_items"] for point in curve] == [3, 3]
    assert (run.student / "train.json").is_file()
