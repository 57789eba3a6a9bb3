"""The README's first command, shrunk: `mindmirror demo` end to end on the embedded model.

Same code path as the real demo (llama.cpp teacher over loopback HTTP, SmolLM2 student,
both methods, eval, report), with a handful of questions and training steps so it fits CI.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

SMALL = [
    "task.limit.train=4",
    "task.limit.validation=2",
    "task.limit.test=2",
    "teacher.max_tokens=32",
    "teacher.eval_max_tokens=48",
    "train.max_steps=2",
    "train.eval_max_new_tokens=16",
    "eval.max_new_tokens=16",
    "eval.num_samples=2",
]


@pytest.mark.slow
@pytest.mark.server
def test_demo_runs_end_to_end_and_resumes(tmp_path: Path, gguf_path: Path) -> None:
    args = [sys.executable, "-m", "mindmirror", "demo", "--run-dir", str(tmp_path / "demo"), "-q"]
    for item in SMALL:
        args += ["--set", item]
    env = {**os.environ, "COLUMNS": "200"}
    first = subprocess.run(args, capture_output=True, text=True, timeout=900, env=env)
    assert first.returncode == 0, first.stderr[-3000:]
    run = tmp_path / "demo"
    for name in ("recipe.yaml", "teacher/records.jsonl", "teacher/summary.json", "report.md"):
        assert (run / name).is_file(), name
    assert "teacher accuracy" in first.stdout
    assert "1 CoT" in first.stdout and "self-evaluation" in first.stdout
    assert "report:" in first.stderr
    cells = sorted(p.parent.parent.name for p in run.glob("cells/*/eval/metrics.json"))
    # The 135M teacher may leave every one of these few critiques without a verdict; the
    # table then says the self-evaluation row cannot be filled instead of training it.
    no_verdicts = "needs teacher self-evaluations" in first.stdout
    assert cells == (
        ["step_by_step-n1-s0"] if no_verdicts else ["mind_mirror-n2-s0", "step_by_step-n1-s0"]
    )
    # A second run finds everything done: no teaching, no training, same table.
    again = subprocess.run(args, capture_output=True, text=True, timeout=300, env=env)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "starting the embedded llama.cpp" not in again.stderr
