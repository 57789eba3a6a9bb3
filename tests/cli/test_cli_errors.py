"""Bad input through the real CLI: one clear line, exit code 2, nothing written half-way."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.fault_proxy import fault_proxy

ROOT = Path(__file__).resolve().parents[2]


def mindmirror(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """Run ``python -m mindmirror ARGS`` as a user would, capturing its output."""
    return subprocess.run(
        [sys.executable, "-m", "mindmirror", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **(env or {}), "COLUMNS": "200"},
    )


def write_recipe(path: Path, data: dict) -> Path:
    path.write_text(yaml.safe_dump(data))
    return path


def generic_recipe(tmp_path: Path, **teacher: object) -> dict:
    data = tmp_path / "qa.jsonl"
    if not data.exists():
        rows = [{"q": f"What is {i} + 1?", "a": str(i + 1)} for i in range(12)]
        data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return {
        "name": "bad",
        "run_dir": str(tmp_path / "run"),
        "task": {
            "name": "generic",
            "family": "number",
            "files": {"train": str(data)},
            "fields": {"question": "q", "answer": "a"},
        },
        "teacher": {"num_cots": 1, "num_evals": 0, "max_tokens": 4, **teacher},
    }


def assert_one_line_error(result: subprocess.CompletedProcess, *needles: str) -> None:
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error:")
    assert "Traceback" not in result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


def test_unknown_key_names_the_key_and_the_nearest_valid_one(tmp_path: Path) -> None:
    recipe = generic_recipe(tmp_path)
    recipe["teacher"]["temprature"] = 0.9
    path = write_recipe(tmp_path / "r.yaml", recipe)
    result = mindmirror("teach", str(path), cwd=tmp_path)
    assert_one_line_error(result, "teacher.temprature", "did you mean 'temperature'")
    assert not (tmp_path / "run").exists()


def test_bad_value_and_bad_override(tmp_path: Path) -> None:
    path = write_recipe(tmp_path / "r.yaml", generic_recipe(tmp_path))
    result = mindmirror("teach", str(path), "--set", "teacher.num_cots=0", cwd=tmp_path)
    assert_one_line_error(result, "teacher.num_cots")
    result = mindmirror("teach", str(path), "--set", "teacher.nmu_cots=3", cwd=tmp_path)
    assert_one_line_error(result, "did you mean 'num_cots'")
    result = mindmirror("teach", str(path), "--set", "novalue", cwd=tmp_path)
    assert_one_line_error(result, "key=value")
    assert not (tmp_path / "run").exists()


def test_malformed_yaml_and_missing_recipe(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("task: [unclosed\n")
    assert_one_line_error(mindmirror("teach", str(path), cwd=tmp_path), "not valid YAML")
    assert_one_line_error(
        mindmirror("teach", str(tmp_path / "nope.yaml"), cwd=tmp_path), "recipe not found"
    )


def test_missing_dataset_file(tmp_path: Path) -> None:
    recipe = generic_recipe(tmp_path)
    recipe["task"]["files"] = {"train": str(tmp_path / "missing.jsonl")}
    path = write_recipe(tmp_path / "r.yaml", recipe)
    assert_one_line_error(mindmirror("teach", str(path), cwd=tmp_path), "missing.jsonl")
    assert not (tmp_path / "run").exists()


def test_row_without_the_mapped_field(tmp_path: Path) -> None:
    recipe = generic_recipe(tmp_path)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"q": "1 + 1?", "a": "2"}\n{"question": "2 + 2?", "a": "4"}\n')
    recipe["task"]["files"] = {"train": str(bad)}
    path = write_recipe(tmp_path / "r.yaml", recipe)
    assert_one_line_error(mindmirror("teach", str(path), cwd=tmp_path), "bad.jsonl", "'q'")
    assert not (tmp_path / "run").exists()


def test_unreachable_endpoint(tmp_path: Path) -> None:
    recipe = generic_recipe(tmp_path, base_url="http://127.0.0.1:9/v1", model="m", timeout_s=5)
    path = write_recipe(tmp_path / "r.yaml", recipe)
    assert_one_line_error(mindmirror("teach", str(path), cwd=tmp_path), "cannot reach")
    assert not (tmp_path / "run").exists()


@pytest.mark.server
def test_wrong_key_is_a_clear_401_and_the_key_is_never_printed(
    tmp_path: Path, llama_url: str
) -> None:
    with fault_proxy(llama_url.removesuffix("/v1"), api_key="sk-right-key") as proxy:
        recipe = generic_recipe(
            tmp_path, base_url=proxy.url, model="SmolLM2-135M-Instruct", api_key_env="MM_KEY"
        )
        path = write_recipe(tmp_path / "r.yaml", recipe)
        result = mindmirror("teach", str(path), cwd=tmp_path, env={"MM_KEY": "sk-wrong-key"})
    assert_one_line_error(result, "401")
    assert "sk-wrong-key" not in result.stderr + result.stdout
    assert not (tmp_path / "run").exists()


def test_every_command_has_help(tmp_path: Path) -> None:
    commands = ["teach", "train", "eval", "report", "run", "experiment", "predict", "serve", "demo"]
    for command in commands:
        result = mindmirror(command, "--help", cwd=tmp_path)
        assert result.returncode == 0, (command, result.stderr)
        assert "Usage" in result.stdout


def test_only_finished_grid_before_any_teaching_is_one_line(tmp_path: Path) -> None:
    path = write_recipe(tmp_path / "r.yaml", generic_recipe(tmp_path))
    grid = ["--set", "experiment.num_cots=[1]", "--only-finished"]
    result = mindmirror("experiment", str(path), *grid, cwd=tmp_path)
    assert_one_line_error(result, "no cell of this grid has finished")
    assert not (tmp_path / "run" / "teacher" / "records.jsonl").exists()
