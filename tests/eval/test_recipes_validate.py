"""The shipped recipes in recipes/: every one validates without its data, and the CPU variants
replay the public teacher CoTs through the `import` backend (when ../shared/data is present)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mindmirror.config import load_recipe
from mindmirror.experiment import plan_cells
from mindmirror.records import read_records
from mindmirror.rundir import RunDir
from mindmirror.tasks import load_task, question_key
from mindmirror.teacher.teach import teach
from tests.conftest import ROOT, shared_path

RECIPES = sorted((ROOT / "recipes").glob("*.yaml"))
PAPER = ("svamp", "cqa", "anli")


def test_every_benchmark_has_a_recipe() -> None:
    names = {p.stem for p in RECIPES}
    assert {*PAPER, "svamp_mcckd_cpu", "svamp_dss_cpu"} <= names


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.stem)
def test_recipe_validates_without_its_data(
    path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Validation is pure: run it from a folder where no relative data path resolves.
    monkeypatch.chdir(tmp_path)
    recipe = load_recipe(path)
    assert recipe.name == path.stem
    cells = plan_cells(recipe.experiment, explain_target=recipe.train.explain_target)
    assert cells
    assert max(c.num_cots for c in cells) <= recipe.teacher.num_cots
    if path.stem in PAPER:
        teacher, train = recipe.teacher, recipe.train
        assert (teacher.num_cots, teacher.num_evals, teacher.evaluator) == (5, 5, "teacher")
        assert (train.alpha, train.precision, train.method) == (0.5, "bf16", "mind_mirror")
        assert train.student == "google/t5-v1_1-base"  # the paper's student family
        # The published objective and targets.
        assert (train.loss_norm, train.dedupe, train.explain_target, train.distill_label) == (
            "task_token_mean",
            False,
            "rationale",
            "first",
        )
        assert train.batch_unit == "examples" and recipe.eval.modes == ["answer"]
    else:
        assert recipe.teacher.backend == "import" and recipe.teacher.evaluator == "gold"
        assert (recipe.train.student, recipe.train.lora) == ("embedded", True)


@pytest.mark.parametrize(
    ("name", "folder", "cots"), [("svamp_mcckd_cpu", "mcc_kd", 10), ("svamp_dss_cpu", "dss", 1)]
)
def test_cpu_recipe_replays_public_cots(name: str, folder: str, cots: int, tmp_path: Path) -> None:
    data = str(shared_path("svamp", folder))
    recipe = load_recipe(
        ROOT / "recipes" / f"{name}.yaml",
        [f"run_dir={tmp_path}", f"task.path={data}", f"teacher.import.path={data}"],
    )
    run = RunDir(tmp_path)
    summary = teach(recipe, run, quiet=True)
    records = read_records(run.records)
    limits = recipe.task.limit
    assert summary["questions"] == {"train": limits["train"], "validation": limits["validation"]}
    assert summary["parse_rate"] > 0.95
    train = [r for r in records if r.split == "train"]
    assert max(len(r.cots) for r in train) == cots
    # Validation questions carry CoTs with verdicts: the self-evaluation stage chooses on them.
    assert all(r.cots and r.cots[0].evaluations for r in records if r.split == "validation")
    _, splits = load_task(recipe.task, recipe.seed)
    assert len(splits["test"]) == limits["test"]
    seen = {question_key(r.question) for r in records}
    assert not seen & {question_key(e.question) for e in splits["test"]}
