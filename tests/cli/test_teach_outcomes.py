"""What `mindmirror teach` says and does when some kinds of request fail, when a paid cache is
gone, and what its output looks like in a pipe (through the real CLI and a real endpoint)."""

from __future__ import annotations

import importlib.util
import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.cli.test_cli_errors import (
    assert_one_line_error,
    generic_recipe,
    mindmirror,
    write_recipe,
)
from tests.scripted_teacher import Answer, is_evaluation, scripted_teacher

VERDICT = "\nEvaluation result: the given answer is correct."


def failing_evaluations(every: int) -> Answer:
    """CoTs always answer; every ``every``-th self-evaluation request gets a 500."""
    seen = {"evaluations": 0}

    def answer(body: dict[str, Any]) -> tuple[int, str]:
        if not is_evaluation(body):
            return 200, "5"
        seen["evaluations"] += 1
        if seen["evaluations"] % every == 0:
            return 500, "the grader crashed"
        return 200, "Fine." + VERDICT

    return answer


def recipe_path(tmp_path: Path, url: str, **teacher: object) -> Path:
    """12 generic questions, 1 CoT and 1 self-evaluation each, no retries, one at a time."""
    settings = {"num_evals": 1, "max_retries": 0, "concurrency": 1, "use_n": False, **teacher}
    recipe = generic_recipe(tmp_path, base_url=url, model="m", **settings)
    return write_recipe(tmp_path / "r.yaml", recipe)


def test_teach_fails_when_every_self_evaluation_failed(tmp_path: Path) -> None:
    """All 12 evaluations fail while all 12 CoTs come back: 12 of 24 is within the 0.5
    tolerance over both kinds, but stage 1 would have nothing to train on."""
    with scripted_teacher(failing_evaluations(every=1)) as teacher:
        result = mindmirror("teach", str(recipe_path(tmp_path, teacher.url)), "-q", cwd=tmp_path)
    assert_one_line_error(
        result,
        "12 of 12 teacher samples failed after every retry for the self-evaluations",
        "the grader crashed",
        "max_failed_share",
    )
    assert not (tmp_path / "run" / "teacher" / "records.jsonl").exists()


def test_failed_evaluations_are_counted_in_progress_table_and_summary(tmp_path: Path) -> None:
    with scripted_teacher(failing_evaluations(every=4)) as teacher:
        result = mindmirror("teach", str(recipe_path(tmp_path, teacher.url)), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if "warning" in line]
    assert len(warnings) == 1, result.stderr
    assert (
        "3 of 12 teacher samples failed after every retry for the self-evaluations" in (warnings[0])
    )
    # The plain progress line says how many of the finished samples failed.
    assert "teacher: evaluations: 12/12 (100%, 3 failed)" in result.stderr
    assert "teacher: CoTs: 12/12 (100%) " in result.stderr
    summary = json.loads((tmp_path / "run" / "teacher" / "summary.json").read_text())
    assert (summary["evaluations_failed"], summary["evaluations_without_verdict"]) == (3, 0)
    row = next(line for line in result.stdout.splitlines() if "evaluations (" in line)
    assert "without a verdict / failed" in row and "12 (0 / 3)" in row


def answer_every_request(body: dict[str, Any]) -> tuple[int, str]:
    return 200, "Fine." + VERDICT if is_evaluation(body) else "5"


def truncate(path: Path) -> None:
    path.write_bytes(b"")


def delete_rows(path: Path) -> None:
    with sqlite3.connect(path) as db:
        db.execute("DELETE FROM samples")


@pytest.mark.parametrize(
    "empty", [truncate, delete_rows, Path.unlink], ids=["0-byte", "rows-deleted", "deleted"]
)
def test_an_emptied_cache_is_not_paid_for_again_without_pay_again(
    tmp_path: Path, empty: Callable[[Path], object]
) -> None:
    with scripted_teacher(answer_every_request) as teacher:
        path = str(recipe_path(tmp_path, teacher.url))
        assert mindmirror("teach", path, "-q", cwd=tmp_path).returncode == 0
        paid = len(teacher.bodies)
        cache = tmp_path / "run" / "teacher" / "cache.sqlite"
        summary = cache.with_name("summary.json").read_text()
        empty(cache)

        refused = mindmirror("teach", path, "-q", cwd=tmp_path)
        assert_one_line_error(refused, "holds no samples", f"records {paid} teacher", "--pay-again")
        assert len(teacher.bodies) == paid  # nothing requested
        assert cache.with_name("summary.json").read_text() == summary  # nothing written

        again = mindmirror("teach", path, "-q", "--pay-again", cwd=tmp_path)
        assert again.returncode == 0, again.stderr
        assert "warning" not in again.stderr  # re-paying was asked for
        assert len(teacher.bodies) == 2 * paid
    assert json.loads(cache.with_name("summary.json").read_text())["samples_new"] == paid


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
