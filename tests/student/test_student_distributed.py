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
from typing import Any

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
import importlib, json, os, sys
import torch.distributed as dist
from mindmirror.config import load_recipe
from mindmirror.rundir import RunDir
from mindmirror.student.train import train

sizes = {}


def counting(target):
    module_name, name = target.split(":")
    module = importlib.import_module(module_name)
    original = getattr(module, name)

    def counted(*args, **kwargs):
        result = original(*args, **kwargs)
        sizes[target].append(len(result))
        return result

    sizes[target] = []
    setattr(module, name, counted)


# Wrappers that only count: each call of the named functions, with the size of its result.
for target in sys.argv[3:]:
    counting(target)
recipe = load_recipe(sys.argv[1])
train(recipe, RunDir(recipe.resolved_run_dir()), quiet=True)
with open(os.path.join(sys.argv[2], f"calls-{dist.get_rank()}.json"), "w") as out:
    json.dump(sizes, out)
"""

MULTI_COT = {"method": "multi_cot", "eval_steps": 2, "batch_size": 2, "eval_max_new_tokens": 8}


def launch(
    tmp_path: Path, records: list[Record], recipe: dict[str, Any], script: str, *args: str
) -> RunDir:
    """Train ``records`` with ``recipe`` (its run folder set here) in two gloo processes
    running ``script``; fail with their stderr."""
    accelerate = shutil.which("accelerate", path=os.path.dirname(sys.executable))
    assert accelerate, "accelerate's launcher is installed with the package"
    run = RunDir(tmp_path / "run")
    write_records(run.records, records)
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump({**recipe, "run_dir": str(run.root)}))
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
        str(path),
        str(tmp_path),
        *args,
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return run


def calls(tmp_path: Path, target: str) -> list[list[int]]:
    """What COUNTING recorded for ``target`` in each of the two processes."""
    return [json.loads((tmp_path / f"calls-{rank}.json").read_text())[target] for rank in (0, 1)]


@pytest.mark.slow
def test_two_cpu_processes_train_one_student(tmp_path, records, tiny_llama) -> None:
    recipe = {"train": {**MULTI_COT, "student": str(tiny_llama), "max_steps": 4}}
    run = launch(tmp_path, records, recipe, LAUNCHED)
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
    recipe = {"train": {**MULTI_COT, "student": str(tiny_llama), "max_steps": 6}}
    target = "mindmirror.student.trainer:length_buckets"
    run = launch(tmp_path, records, recipe, COUNTING, target)
    counts = calls(tmp_path, target)
    assert len(counts[0]) == len(counts[1]) == 6
    assert any(a != b for a, b in zip(*counts, strict=True)), counts
    assert json.loads((run.stage("reasoning") / "result.json").read_text())["steps"] == 6


SAMPLING = "mindmirror.student.own_judge:sample_cots"
FITTING = "mindmirror.student.own_confidence:fit_validation_confidence"


@pytest.mark.slow
def test_the_own_cot_judge_samples_once_under_two_processes(tmp_path, records, tiny_llama) -> None:
    """The main process samples the student's own CoTs and fits the confidence; the other
    reads them back (the same settings, the main process's training seconds included), and
    both train the judge. Also when the stages before were read back, not trained, so that
    no training started the processes' group before the sampling."""
    train = {
        "student": str(tiny_llama),
        "method": "mind_mirror",
        "explain_target": "cot",
        "num_cots": 2,
        "epochs": 1,
        "batch_size": 2,
        "learning_rate": 1e-3,
        "eval_batch_size": 8,
        "eval_max_new_tokens": 8,
        "own_judge": {"target_accuracy": 0.6},
    }
    sampling = {"engine": "transformers", "num_samples": 2, "max_new_tokens": 12}
    recipe = {"seed": 1, "train": train, "eval": {**sampling, "answer_max_tokens": 8}}
    run = RunDir(tmp_path / "run")
    for attempt in ("trained", "read back"):
        if attempt == "read back":
            for stage in ("own_cots", "own_judge"):
                shutil.rmtree(run.stage(stage))
        run = launch(tmp_path, records, recipe, COUNTING, SAMPLING, FITTING)
        # 8 train and 3 validation questions, sampled by the main process only.
        assert calls(tmp_path, SAMPLING) == [[11], []], attempt
        assert [len(c) for c in calls(tmp_path, FITTING)] == [1, 0], attempt
        own = json.loads((run.student / "train.json").read_text())["stages"]["own_judge"]
        assert own["processes"] == 2 and own["labels"]["train"]["cots"] == 16
        samples = (run.stage("own_cots") / "samples.jsonl").read_text().splitlines()
        assert len(samples) == 22
