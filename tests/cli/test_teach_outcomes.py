"""What `mindmirror teach` says and does when some kinds of request fail, when a paid cache is
gone, and what its output looks like in a pipe (through the real CLI and a real endpoint)."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.cli.test_cli_errors import (
    generic_recipe,
    mindmirror,
    write_recipe,
)
from tests.scripted_teacher import is_evaluation, scripted_teacher

VERDICT = "\nEvaluation result: the given answer is correct."


def answer_every_request(body: dict[str, Any]) -> tuple[int, str]:
    return 200, "Fine." + VERDICT if is_evaluation(body) else "5"


def test_piped_log_lines_are_one_line_each(tmp_path: Path) -> None:
    """With no terminal and no COLUMNS, rich would wrap at 80 columns."""
    deep = tmp_path / ("a-long-folder-name-" * 4) / "runs"
    with scripted_teacher(answer_every_request) as teacher:
        recipe = generic_recipe(tmp_path, base_url=teacher.url, model="m", use_n=False)
        recipe["run_dir"] = str(deep / "run")
        path = write_recipe(tmp_path / "r.yaml", recipe)
        env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
        result = subprocess.run(
            [sys.executable, "-m", "mindmirror", "teach", str(path)],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=300,
            env=env,
        )
    assert result.returncode == 0, result.stderr
    records = deep / "run" / "teacher" / "records.jsonl"
    assert len(f"records: {records}") > 100
    assert f"records: {records}" in result.stderr.splitlines()


@pytest.mark.server
def test_quiet_teach_does_not_announce_the_embedded_server(tmp_path: Path, gguf_path: Path) -> None:
    if importlib.util.find_spec("llama_cpp") is None:
        pytest.skip("needs llama-cpp-python[server] (pip install -e '.[embedded]')")
    recipe = generic_recipe(tmp_path, backend="embedded", use_n=False)
    recipe["task"]["limit"] = {"train": 2}
    path = write_recipe(tmp_path / "r.yaml", recipe)
    result = mindmirror("teach", str(path), "-q", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "starting the embedded" not in result.stderr
    assert result.stderr.strip().startswith("records: ")
