"""Hostile recipes and paths through the real CLI: one line, exit code 2, nothing written."""

from __future__ import annotations

import json
from pathlib import Path

from tests.cli.test_cli_errors import (
    assert_one_line_error,
    generic_recipe,
    mindmirror,
    write_recipe,
)


def test_a_name_cannot_leave_the_runs_folder(tmp_path: Path) -> None:
    recipe = generic_recipe(tmp_path)
    del recipe["run_dir"]
    path = write_recipe(tmp_path / "r.yaml", recipe)
    (tmp_path / "work").mkdir()
    for name in ("name=../../somewhere", "name="):
        result = mindmirror("teach", str(path), "--set", name, cwd=tmp_path / "work")
        assert_one_line_error(result, "is not a folder name", "set run_dir")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["qa.jsonl", "r.yaml", "work"]
    assert not any((tmp_path / "work").iterdir())


def test_a_run_dir_that_is_a_file_or_a_recipe_that_is_not_utf8(tmp_path: Path) -> None:
    recipe = generic_recipe(tmp_path)
    taken = tmp_path / "taken"
    taken.write_text("not a folder\n")
    for run_dir in (taken, taken / "run"):
        recipe["run_dir"] = str(run_dir)
        path = write_recipe(tmp_path / "r.yaml", recipe)
        result = mindmirror("teach", str(path), cwd=tmp_path)
        assert_one_line_error(result, f"{taken} is a file, not a folder", "set run_dir")
    latin1 = tmp_path / "latin1.yaml"
    latin1.write_bytes(json.dumps({"name": "x"}).encode().replace(b"x", b"caf\xe9"))
    assert_one_line_error(mindmirror("data", str(latin1), cwd=tmp_path), "not UTF-8 text")
    deep = "[" * 1000 + "]" * 1000
    result = mindmirror("data", str(path), "--set", f"task.limit={deep}", cwd=tmp_path)
    assert_one_line_error(result, "--set task.limit: nested more than 16 levels deep")
    assert taken.read_text() == "not a folder\n"
