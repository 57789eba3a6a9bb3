"""`mind_mirror` cells of one seed at several N share one self-evaluation stage: the second
cell copies the first's (stage 1 reads neither N nor the divided epochs), a cell of another
seed or learning rate trains its own, and the CPU-seconds summary counts the shared stage once."""

from __future__ import annotations

import filecmp
import json
import sys
from pathlib import Path
from typing import Any

import pytest

import mindmirror.evaluate
from mindmirror.cell_records import train_record
from mindmirror.config import Recipe
from mindmirror.experiment import Cell, cell_recipe, run_cell
from mindmirror.grid_teaching import link_records
from mindmirror.rundir import RunDir
from mindmirror.stage_copy import share_stage1
from mindmirror.student.train import check_settings, stage_settings

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
from svamp_summary import cell_seconds

N1, N2 = Cell("mind_mirror", 1, 0, ("answer",)), Cell("mind_mirror", 2, 0, ("answer",))


def _equal_examples(recipe: Recipe) -> Recipe:
    """The grid with epochs divided by N (stage 1's length then set apart: stage1_epochs)."""
    experiment = recipe.experiment.model_copy(update={"equal_examples": True, "num_cots": [1, 2]})
    return recipe.model_copy(update={"experiment": experiment})


def _stage(run: RunDir, cell: Cell, name: str) -> Path:
    return run.cell(cell.name).stage(name)


def test_cells_of_one_seed_train_stage1_once(
    grid: tuple[Recipe, RunDir], monkeypatch: pytest.MonkeyPatch
) -> None:
    recipe, run = grid
    recipe = _equal_examples(recipe)
    scored: list[str] = []

    def no_scoring(resolved: Recipe, *args: Any, **kwargs: Any) -> dict[str, Any]:
        scored.append(resolved.name)
        return {"modes": {}}

    monkeypatch.setattr(mindmirror.evaluate, "evaluate", no_scoring)
    run_cell(recipe, run, N1, quiet=True)
    first = _stage(run, N1, "evaluation")
    # Written before stage 1's settings left out what it never reads: still the same training.
    settings = json.loads((first / "settings.json").read_text())
    resolved = cell_recipe(recipe, N1, run.cell(N1.name).root)
    settings["train"] |= {"num_cots": 1, "epochs": resolved.train.epochs}
    (first / "settings.json").write_text(json.dumps(settings))

    run_cell(recipe, run, N2, quiet=True)
    second = _stage(run, N2, "evaluation")
    assert json.loads((second / "result.json").read_text()) == json.loads(
        (first / "result.json").read_text()
    )
    weights = sorted(p.name for p in (first / "best").iterdir())
    match, mismatch, errors = filecmp.cmpfiles(first / "best", second / "best", weights, False)
    assert (match, mismatch, errors) == (weights, [], [])
    assert (_stage(run, N2, "reasoning") / "result.json").is_file()
    assert scored == [f"grid-{N1.name}", f"grid-{N2.name}"]
    copied = train_record(run.cell(N2.name))
    assert (copied["adopted_from"], copied["adopted_stages"]) == (N1.name, ["evaluation"])
    assert train_record(run.cell(N1.name))["adopted_from"] is None

    # Each cell's stage 1 passes the cell's own settings check (a re-run trains nothing).
    for cell in (N1, N2):
        sub = run.cell(cell.name)
        resolved = cell_recipe(recipe, cell, sub.root)
        asked = stage_settings(resolved, "evaluation", resolved.train.student)
        check_settings(sub.stage("evaluation") / "settings.json", asked)

    # Another seed or learning rate trains its own stage 1.
    other_seed = Cell("mind_mirror", 2, 1, ("answer",))
    sub = run.cell(other_seed.name)
    link_records(run, sub)
    assert share_stage1(run, sub, cell_recipe(recipe, other_seed, sub.root)) is None
    faster = recipe.model_copy(
        update={"train": recipe.train.model_copy(update={"learning_rate": 1.0})}
    )
    again = Cell("mind_mirror", 3, 0, ("answer",))
    sub = run.cell(again.name)
    link_records(run, sub)
    assert share_stage1(run, sub, cell_recipe(faster, again, sub.root)) is None
    assert not sub.student.exists()
    # The same training asked again (at N = 3) is copied.
    assert share_stage1(run, sub, cell_recipe(recipe, again, sub.root)) == N1.name


def _record(cell: str, seconds: dict[str, float], adopted: str | None = None) -> dict[str, Any]:
    stages = {name: {"train_seconds": s} for name, s in seconds.items()}
    copied = ["evaluation"] if adopted else []
    train = {"stages": stages, "adopted_from": adopted, "adopted_stages": copied}
    return {"cell": cell, "modes": {"answer": {"seconds": 1.0}}, "train": train}


def test_a_shared_stage1_is_counted_once() -> None:
    first = _record(N1.name, {"evaluation": 10.0, "reasoning": 5.0})
    second = _record(N2.name, {"evaluation": 10.0, "reasoning": 7.0}, adopted=N1.name)
    cells = {N1.name, N2.name}
    assert cell_seconds(first, cells) == {"train_s": 15.0, "eval_s": 1.0}
    assert cell_seconds(second, cells) == {"train_s": 7.0, "eval_s": 1.0}
    # Without the record of the cell that trained it, the copy is the one that counts it.
    assert cell_seconds(second, {N2.name})["train_s"] == 17.0
