"""Every arm of the SVAMP protocol gets the same treatment (issue 23: what tilted the table).

Checked on the cells the protocol really builds from ``recipes/svamp_repro_cpu.yaml``:
- each (question, CoT) example trains both its tasks in one step: no length grouping of rows
  (that trained the answer task in about 55% of the CoT cells' steps, 100% of standard's);
- every stage of every cell validates as many times, whatever its length (per epoch, the
  3-epoch cells chose among 3 checkpoints and the 0.3- to 1-epoch ones had no choice);
- the self-evaluation stage does not choose on raw agreement with mostly-"correct" verdicts;
- at every tuned schedule, each kind of example is seen as often in every cell: a self-
  evaluation stage sees as many verdict examples as 1 CoT sees (question, CoT) examples;
- sampled CoTs may be as long as the longest training target, so none is cut before its answer.
Shipped recipes that sample CoTs are held to the last point too.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from mindmirror.config import Recipe, load_recipe
from mindmirror.evaluate import cut_cot_warning
from mindmirror.experiment import cell_recipe, plan_cells
from mindmirror.student.rows import stages
from mindmirror.student.trainer import evaluation_steps
from tests.conftest import ROOT

PROTOCOL = ROOT / "recipes" / "svamp_repro_cpu.yaml"
SAMPLED = ("cot", "vote", "mirror")


def _cells(tmp_path: Path, extra_rows: bool = True) -> list:
    """The recipes of the protocol's cells; ``extra_rows=False`` leaves out the rows that keep
    the earlier table's settings on purpose (``batchfix``: one confound fixed, not the rest)."""
    recipe = load_recipe(PROTOCOL)
    cells = plan_cells(recipe.experiment, explain_target=recipe.train.explain_target)
    return [
        cell_recipe(recipe, cell, tmp_path / cell.name)
        for cell in cells
        if extra_rows or not cell.variant
    ]


def test_protocol_cells_train_both_tasks_of_an_example_in_one_step(tmp_path) -> None:
    for recipe in _cells(tmp_path):
        assert recipe.train.group_by_length is False, recipe.name


def test_protocol_cells_choose_among_as_many_checkpoints(tmp_path) -> None:
    counts = set()
    for recipe in _cells(tmp_path, extra_rows=False):
        assert recipe.train.evaluations is not None and recipe.train.eval_steps is None
        for stage in stages(recipe.train.method):
            epochs = recipe.train.epochs
            if stage == "evaluation" and recipe.train.stage1_epochs:
                epochs = recipe.train.stage1_epochs
            # A stage of this many steps (503 questions x N CoTs / batch, at least 30).
            steps = max(30, round(epochs * 60))
            counts.add(len(evaluation_steps(steps, recipe.train.evaluations)))
    assert counts == {3}


def _doses(recipe: Recipe, epochs: float) -> dict[str, float]:
    """Per cell of the protocol at ``epochs`` (a tuned schedule, as svamp_repro.py sets it),
    the examples of each kind seen per training question: reasoning examples (N per
    question, N = 1 for standard's answer rows) and verdict examples (one per judged CoT and
    evaluation: teacher.num_cots x num_evals, whatever N)."""
    tuned = recipe.experiment.model_copy(
        update={
            "equal_examples": True,
            "train_by_method": {m: {"epochs": epochs} for m in recipe.experiment.methods},
        }
    )
    grid = recipe.model_copy(update={"experiment": tuned})
    doses = {}
    for cell in plan_cells(tuned, explain_target=recipe.train.explain_target):
        if cell.variant or cell.seed:
            continue
        train = cell_recipe(grid, cell, Path("/unused") / cell.name).train
        verdicts = recipe.teacher.num_cots * min(recipe.teacher.num_evals, train.num_evals)
        for stage in stages(train.method):
            if stage == "evaluation":
                doses[f"{cell.name}/verdict"] = train.stage1_epochs * verdicts
            else:
                doses[f"{cell.name}/reasoning"] = train.epochs * cell.num_cots
                if stage == "joint":
                    doses[f"{cell.name}/verdict"] = train.epochs * verdicts
    return doses


@pytest.mark.parametrize("epochs", [3.0, 5.0])
def test_every_cell_sees_each_kind_of_example_as_often(epochs: float) -> None:
    doses = _doses(load_recipe(PROTOCOL), epochs)
    assert "mind_mirror-n5-s0/verdict" in doses and "standard-n1-s0/reasoning" in doses
    assert {name: round(d, 9) for name, d in doses.items()} == dict.fromkeys(doses, epochs)


def test_protocol_judge_is_not_chosen_on_raw_agreement(tmp_path) -> None:
    judged = [r for r in _cells(tmp_path) if r.train.method.startswith("mind_mirror")]
    assert judged
    assert all(r.train.verdict_metric != "agreement" for r in judged)


@pytest.mark.parametrize(
    "path",
    [*sorted((ROOT / "recipes").glob("*.yaml")), ROOT / "src/mindmirror/recipes/demo.yaml"],
    ids=lambda p: p.stem,
)
def test_sampled_cots_reach_the_length_of_the_training_targets(path: Path) -> None:
    recipe = load_recipe(path)
    modes = {*recipe.eval.modes, *recipe.experiment.modes}
    assert cut_cot_warning(recipe, sorted(modes)) is None


def test_a_cut_is_named_with_its_fix() -> None:
    recipe = load_recipe(PROTOCOL, ["eval.max_new_tokens=160", "train.max_target_tokens=256"])
    warning = cut_cot_warning(recipe, ["answer", "vote"])
    assert warning is not None and "eval.max_new_tokens=256" in warning
    assert cut_cot_warning(recipe, ["answer"]) is None
