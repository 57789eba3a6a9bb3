"""``mindmirror data``: a task's splits, ids and golds and an import's matches, no teacher."""

from __future__ import annotations

import json
from pathlib import Path

from tests.cli.test_cli_errors import assert_one_line_error, mindmirror, write_recipe


def _recipe(tmp_path: Path, import_rows: list[dict[str, object]]) -> Path:
    data = tmp_path / "qa.jsonl"
    rows = [{"uid": f"u{i}", "q": f"What is {i} + 1?", "a": str(i + 1)} for i in range(10)]
    data.write_text("".join(json.dumps(row) + "\n" for row in rows))
    cots = tmp_path / "cots.jsonl"
    cots.write_text("".join(json.dumps(row) + "\n" for row in import_rows))
    return write_recipe(
        tmp_path / "r.yaml",
        {
            "name": "data",
            "run_dir": str(tmp_path / "run"),
            "task": {
                "name": "generic",
                "family": "number",
                "files": {"train": str(data)},
                "fields": {"question": "q", "answer": "a", "id": "uid"},
                "val_fraction": 0.2,
            },
            "teacher": {
                "backend": "import",
                "evaluator": "gold",
                "num_cots": 2,
                "num_evals": 1,
                "import": {"format": "jsonl", "path": str(cots)},
            },
        },
    )


def test_data_prints_splits_samples_and_import_matches(tmp_path: Path) -> None:
    rows = [
        {"question": f"what is {i} + 1", "cots": [f"The answer is {i + 1}."]} for i in range(10)
    ]
    result = mindmirror("data", str(_recipe(tmp_path, rows)), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "questions: train 8, validation 2, test 0" in out
    assert "train (first 3 of 8):" in out
    assert "generic-u0  gold '1'  What is 0 + 1?" in out
    assert "10 of 10 entries matched, 10 of 10 questions in train/validation get CoTs (ok" in out
    assert not (tmp_path / "run").exists()  # data writes nothing


def test_data_shows_counts_that_teach_then_refuses(tmp_path: Path) -> None:
    rows = [{"question": f"Some other question {i}?", "cots": ["x"]} for i in range(10)]
    recipe = str(_recipe(tmp_path, rows))
    shown = mindmirror("data", recipe, cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert "0 of 10 entries matched, 0 of 10 questions" in shown.stdout
    assert "(too few for teacher.import.min_match=0.5)" in shown.stdout
    refused = mindmirror("teach", recipe, cwd=tmp_path)
    assert_one_line_error(refused, "matched 0 of 10 entries", "id 'generic-u", "What is")
    assert not (tmp_path / "run" / "teacher" / "records.jsonl").exists()
    accepted = mindmirror("teach", recipe, "--set", "teacher.import.min_match=0", cwd=tmp_path)
    assert accepted.returncode == 0, accepted.stderr
    summary = json.loads((tmp_path / "run" / "teacher" / "summary.json").read_text())
    assert summary["imported"]["examples_matched"] == 0 and summary["imported"]["examples"] == 10
    assert "questions with imported CoTs" in accepted.stdout


def test_data_bad_recipe_is_one_line(tmp_path: Path) -> None:
    path = write_recipe(tmp_path / "r.yaml", {"name": "x", "task": {"name": "svamp",
                                                                     "path": "nope"}})  # fmt: skip
    assert_one_line_error(mindmirror("data", str(path), cwd=tmp_path), "task.path not found")
