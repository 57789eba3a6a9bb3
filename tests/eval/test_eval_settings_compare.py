"""Evaluation settings are compared field by field: a finished cell's scores and its record
stand after an `eval:` option was added since (a missing field counts as its default, the
behaviour before it), and a real difference in a setting still makes the cell scored again."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from mindmirror.cell_records import recorded_cell, write_record
from mindmirror.config import Recipe, dump_recipe, load_recipe
from mindmirror.config.evaluation import EvalConfig, eval_settings_differ
from mindmirror.experiment import Cell, cell_recipe, scored_modes
from mindmirror.rundir import RunDir

RECIPE = Path(__file__).resolve().parents[2] / "recipes" / "svamp_repro_cpu.yaml"
CELL = Cell("standard", 1, 0, ("answer",))

#: Settings as a cell scored before ``judge`` was added would hold them.
BEFORE_JUDGE: dict[str, Any] = {"pop": "judge"}
#: Real differences in what is scored: each must make the cell scored again.
REAL_CHANGES = [{"max_new_tokens": 128}, {"temperature": 0.9}, {"judge": "final"}]


def _settings(resolved: Recipe, change: dict[str, Any]) -> dict[str, Any]:
    """The cell's eval settings dump, with one field dropped (``pop``) or others changed."""
    settings = resolved.eval.model_dump(mode="json")
    if "pop" in change:
        settings.pop(change["pop"])
    else:
        settings.update(change)
    return settings


def _scored(tmp_path: Path, change: dict[str, Any]) -> tuple[Recipe, RunDir]:
    """A run whose cell was trained as asked and scored with the changed settings."""
    recipe = load_recipe(RECIPE, [f"run_dir={tmp_path / 'run'}"])
    run = RunDir(tmp_path / "run")
    sub = run.cell(CELL.name)
    resolved = cell_recipe(recipe, CELL, sub.root)
    sub.student.mkdir(parents=True)
    (sub.student / "train.json").write_text(json.dumps({"recipe": dump_recipe(resolved)}))
    sub.evaluation.mkdir(parents=True)
    metrics = {"settings": _settings(resolved, change), "modes": {"answer": {"accuracy": 0.5}}}
    (sub.evaluation / "metrics.json").write_text(json.dumps(metrics))
    return recipe, run


def _recorded(tmp_path: Path, change: dict[str, Any]) -> dict[str, Any] | None:
    """What the grid reuses of a record scored with the changed settings."""
    recipe = load_recipe(RECIPE, [f"run_dir={tmp_path / 'run'}"])
    resolved = cell_recipe(recipe, CELL, tmp_path / "cell")
    record = {
        "cell": CELL.name,
        "settings": _settings(resolved, change),
        "train_settings": resolved.train.model_dump(mode="json"),
        "modes": {"answer": {}},
    }
    write_record(tmp_path / "records", record)
    return recorded_cell(tmp_path / "records", resolved, CELL)


def test_a_missing_field_counts_as_its_default_and_modes_are_left_out() -> None:
    now = EvalConfig().model_dump(mode="json")
    made = {k: v for k, v in now.items() if k != "judge"} | {"modes": ["answer"]}
    assert eval_settings_differ(made, now) == []
    assert eval_settings_differ(made | {"bootstrap": 10}, now) == ["bootstrap"]
    assert eval_settings_differ(made, now | {"judge": "final"}) == ["judge"]


def test_scores_made_before_a_new_eval_option_are_reused(tmp_path: Path) -> None:
    recipe, run = _scored(tmp_path, BEFORE_JUDGE)
    metrics = scored_modes(recipe, run, CELL)
    assert metrics is not None and metrics["modes"] == {"answer": {"accuracy": 0.5}}


@pytest.mark.parametrize("change", REAL_CHANGES)
def test_scores_made_with_other_eval_settings_are_scored_again(
    tmp_path: Path, change: dict[str, Any]
) -> None:
    recipe, run = _scored(tmp_path, change)
    assert scored_modes(recipe, run, CELL) is None


def test_records_made_before_a_new_eval_option_are_reused(tmp_path: Path) -> None:
    record = _recorded(tmp_path, BEFORE_JUDGE)
    assert record is not None and record["cell"] == CELL.name


@pytest.mark.parametrize("change", REAL_CHANGES)
def test_records_made_with_other_eval_settings_are_not_reused(
    tmp_path: Path, change: dict[str, Any]
) -> None:
    assert _recorded(tmp_path, change) is None
