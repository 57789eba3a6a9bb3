"""``mindmirror train`` through the CLI on the embedded SmolLM2 student, for a few steps."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import yaml

from mindmirror.records import write_records
from mindmirror.rundir import RunDir
from mindmirror.student.model import load_student


@pytest.mark.slow
def test_cli_trains_the_embedded_student_for_a_few_steps(tmp_path, records, gguf_path) -> None:
    run = RunDir(tmp_path / "run")
    write_records(run.records, records)
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(
        yaml.safe_dump(
            {
                "run_dir": str(run.root),
                "train": {
                    "method": "step_by_step",
                    "student": "embedded",
                    "lora": True,
                    "batch_size": 2,
                    "eval_steps": 2,
                    "val_limit": 2,
                    "eval_max_new_tokens": 12,
                },
            }
        )
    )
    command = [
        sys.executable,
        "-m",
        "mindmirror",
        "train",
        str(recipe),
        "--set",
        "train.max_steps=2",
        "--quiet",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads((run.student / "train.json").read_text())
    assert summary["stages"]["reasoning"]["steps"] == 2
    assert summary["stages"]["reasoning"]["validation_items"] == 2
    model, tokenizer, kind = load_student(run.root)
    assert kind == "causal" and type(model).__name__ == "LlamaForCausalLM"
    assert tokenizer.eos_token == "<|im_end|>"


def test_cli_train_reports_missing_records_as_one_line(tmp_path) -> None:
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(yaml.safe_dump({"run_dir": str(tmp_path / "run")}))
    done = subprocess.run(
        [sys.executable, "-m", "mindmirror", "train", str(recipe)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 2
    assert "teacher records not found" in done.stderr
    assert "Traceback" not in done.stderr
