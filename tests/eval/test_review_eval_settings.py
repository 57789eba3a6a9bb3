"""Review (cells phase): a finished cell's scores stand only while the eval settings dump is
byte-for-byte the same dict, so an eval option added to EvalConfig (at its default, the old
behaviour) makes every finished cell count as unscored after a restart."""

from __future__ import annotations

import json
from pathlib import Path

from mindmirror.cell_records import recorded_cell, write_record
from mindmirror.config import dump_recipe, load_recipe
from mindmirror.experiment import Cell, cell_recipe, scored_modes
from mindmirror.rundir import RunDir

RECIPE = Path(__file__).resolve().parents[2] / "recipes" / "svamp_repro_cpu.yaml"


def _scored_before_a_new_option(tmp_path: Path) -> tuple[RunDir, Cell, dict]:
    recipe = load_recipe(RECIPE, [f"run_dir={tmp_path / 'run'}"])
    run = RunDir(tmp_path / "run")
    cell = Cell("standard", 1, 0, ("answer",))
    sub = run.cell(cell.name)
    resolved = cell_recipe(recipe, cell, sub.root)
    sub.student.mkdir(parents=True)
    (sub.student / "train.json").write_text(json.dumps({"recipe": dump_recipe(resolved)}))
    settings = resolved.eval.model_dump(mode="json")
    settings.pop("judge")  # as if `judge` were the option added since this cell was scored
    sub.evaluation.mkdir(parents=True)
    metrics = {"settings": settings, "modes": {"answer": {"accuracy": 0.5}}}
    (sub.evaluation / "metrics.json").write_text(json.dumps(metrics))
    return run, cell, recipe


def test_scores_made_before_a_new_eval_option_are_not_reused(tmp_path: Path) -> None:
    run, cell, recipe = _scored_before_a_new_option(tmp_path)
    assert scored_modes(recipe, run, cell) is None  # the whole cell is scored again


def test_records_made_before_a_new_eval_option_are_not_reused(tmp_path: Path) -> None:
    recipe = load_recipe(RECIPE, [f"run_dir={tmp_path / 'run'}"])
    cell = Cell("standard", 1, 0, ("answer",))
    resolved = cell_recipe(recipe, cell, tmp_path / "cell")
    settings = resolved.eval.model_dump(mode="json")
    settings.pop("judge")
    record = {
        "cell": cell.name,
        "settings": settings,
        "train_settings": resolved.train.model_dump(mode="json"),
        "modes": {"answer": {}},
    }
    write_record(tmp_path / "records", record)
    assert recorded_cell(tmp_path / "records", resolved, cell) is None
