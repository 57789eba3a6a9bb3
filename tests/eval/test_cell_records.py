"""Durable cell records (issue 23): the grid writes one per finished cell, small and
deterministic; the tables and paired intervals come back from the records alone, and a grid
whose run directory is gone reuses them instead of training again; extra rows train with their
own settings."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

import mindmirror.experiment
from mindmirror.cell_records import (
    TEACHER_SUMMARY,
    cell_record,
    dumps,
    keep_teacher_summary,
    read_cell_records,
    read_correctness,
    record_correctness,
    record_metrics,
    recorded_cell,
    tables_from_records,
)
from mindmirror.config import ExperimentConfig, Recipe
from mindmirror.errors import UserError
from mindmirror.experiment import Cell, cell_recipe, experiment, plan_cells
from mindmirror.records import write_records
from mindmirror.reporting.tables import table_rows
from mindmirror.rundir import RunDir
from tests.eval.cells import fake_cell, identity, size
from tests.student.conftest import toy_records

BATCHFIX = {
    "name": "batchfix",
    "label": "1 CoT, batching fix only",
    "method": "step_by_step",
    "set": {"train.group_by_length": False, "train.learning_rate": 1.0e-3},
}


def _with_records(recipe: Recipe, folder: Path) -> Recipe:
    grid = recipe.experiment.model_copy(
        update={
            "records": str(folder),
            "extra_rows": ExperimentConfig(extra_rows=[BATCHFIX]).extra_rows,
        }
    )
    return recipe.model_copy(update={"experiment": grid})


def test_the_grid_records_every_cell_and_the_records_alone_give_its_tables(
    grid: tuple[Recipe, RunDir], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    recipe, run = grid
    folder = tmp_path / "published"
    recipe = _with_records(recipe, folder)
    result = experiment(recipe, run, quiet=True)
    names = sorted(c["cell"] for c in result["cells"])
    assert len(names) == 6 and "batchfix-step_by_step-n1-s1" in names
    paths = sorted((folder / "cells").glob("*.json"))
    assert [p.stem for p in paths] == names
    for path in paths:
        text = path.read_text()
        assert text == dumps(json.loads(text))  # sorted keys, compact: the same bytes again
    records = read_cell_records(folder)
    mirror = next(r for r in records if r["cell"] == "mind_mirror-n1-s0")
    metrics = json.loads((run.cell("mind_mirror-n1-s0").evaluation / "metrics.json").read_text())
    # Both judges scored the same samples: one sample set, judged twice.
    assert len(mirror["samples"]) == 1
    assert mirror["modes"]["mirror"]["sample_set"] == mirror["modes"]["mirror_final"]["sample_set"]
    bits = "".join(mirror["samples"][0]["correct"])
    share = metrics["modes"]["mirror"]["own_cots"]["correct_share"]
    assert len(bits) == 2 * 2 and bits.count("1") / len(bits) == pytest.approx(share)
    assert [len(a) for a in mirror["samples"][0]["answers"]] == [2, 2]
    assert set(mirror["train"]["stages"]) == {"evaluation", "reasoning"}
    reasoning = mirror["train"]["stages"]["reasoning"]
    assert reasoning["best_step"] == 2 and reasoning["validation"][-1][0] == 2
    assert mirror["label"] == "1 CoT with self-evaluation"
    predictions = run.cell("mind_mirror-n1-s0").evaluation / "predictions.jsonl"
    assert record_correctness(mirror) == read_correctness(predictions)

    # A re-run finds every cell finished and leaves the records as they were.
    stamps = {p: p.stat().st_mtime_ns for p in paths}
    experiment(recipe, run, quiet=True)
    assert {p: p.stat().st_mtime_ns for p in paths} == stamps

    shutil.rmtree(run.root)  # the machine is gone; the records stay
    rebuilt = tables_from_records(read_cell_records(folder))
    assert rebuilt["paired"] == result["paired"]
    assert rebuilt["rows"] == [r for r in result["rows"] if r["seeds"]]
    # A new machine runs the grid again: the recorded cells are not trained again.
    write_records(run.records, toy_records())

    def no_training(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("a recorded cell was trained again")

    monkeypatch.setattr(mindmirror.experiment, "run_cell", no_training)
    again = experiment(recipe, run, quiet=True)
    assert (again["rows"], again["paired"]) == (result["rows"], result["paired"])
    # Other training settings than the record's are another cell: trained, not reused.
    cell = Cell("step_by_step", 1, 0, ("answer",))
    faster = recipe.model_copy(update={"train": recipe.train.model_copy(update={"max_steps": 3})})
    assert recorded_cell(folder, cell_recipe(recipe, cell, tmp_path), cell) is not None
    assert recorded_cell(folder, cell_recipe(faster, cell, tmp_path), cell) is None
    labels = [r["label"] for r in rebuilt["rows"]]
    assert labels == [
        "1 CoT (Distilling Step-by-Step)",
        "1 CoT, batching fix only",
        "1 CoT with self-evaluation",
    ]
    assert any(p["second"] == "1 CoT, batching fix only" for p in rebuilt["paired"])


def test_a_realistic_cell_record_is_kilobytes_and_gives_back_its_metrics(tmp_path: Path) -> None:
    run = RunDir(tmp_path / "run")
    modes = ("answer", "vote", "mirror", "mirror_final")
    sub = fake_cell(run, "mind_mirror-n5-s0", method="mind_mirror", seed=0, modes=modes, skill=0.4)
    metrics = json.loads((sub.evaluation / "metrics.json").read_text())
    record = cell_record(sub, identity(sub, "mind_mirror", 0, "5 CoTs"), metrics, "a CPU")
    text = dumps(record)
    # 200 questions x 5 samples: metrics.json alone is about 73 KB (its risk-coverage
    # curves), the predictions 1.7 MB (the CoT texts); the record holds more, in about 33 KB.
    assert size(sub.evaluation / "metrics.json") > 70_000
    assert len(text.encode()) < 36_000
    assert len(record["samples"]) == 1  # vote and both mirror modes share their samples
    assert record_metrics(record)["modes"] == metrics["modes"]
    assert record_correctness(record) == read_correctness(sub.evaluation / "predictions.jsonl")
    # The judge beside CoT length alone, on validation teacher CoTs and on its own CoTs (all
    # of one length here: no ranking); what generated the answers; no timings of validation.
    judge = record["train"]["stages"]["evaluation"]["figures"][-1]
    assert judge == {
        "step": 30,
        "eval_verdict_agreement": 0.4,
        "eval_verdict_auroc": 0.4,
        "eval_length_auroc": 0.68,
    }
    own = record["modes"]["mirror"]["own_cots"]
    assert own["length_auroc"] == 0.5 and 0 <= own["auroc"] <= 1
    assert record["engine"] == "llama_cpp"
    assert record["verdict_fallbacks"] == {"student": 0, "judge": 3}


def test_extra_rows_and_method_settings_shape_their_cells(tmp_path: Path) -> None:
    from mindmirror.config import recipe_from_dict

    recipe = recipe_from_dict(
        {
            # Length grouping on, as every recipe had it before issue 23: the row turns it off.
            "train": {"epochs": 3, "learning_rate": 5e-4, "group_by_length": True},
            "experiment": {
                "methods": ["step_by_step", "multi_cot", "mind_mirror"],
                "num_cots": [5],
                "seeds": [0, 1],
                "equal_examples": True,
                "train_by_method": {"multi_cot": {"epochs": 10, "learning_rate": 1e-4}},
                "extra_rows": [
                    BATCHFIX,
                    {"name": "judged", "label": "5 CoTs judged", "method": "mind_mirror"},
                ],
            },
        }
    )
    cfg = recipe.experiment
    names = [c.name for c in plan_cells(cfg, explain_target="cot") if c.seed == 1]
    assert names[-2:] == ["batchfix-step_by_step-n1-s1", "judged-mind_mirror-n1-s1"]
    no_verdicts = plan_cells(cfg, explain_target="cot", self_eval=False)
    assert not any(c.method == "mind_mirror" for c in no_verdicts)
    multi = cell_recipe(recipe, Cell("multi_cot", 5, 0, ("answer",)), tmp_path)
    assert (multi.train.epochs, multi.train.learning_rate) == (2.0, 1e-4)
    fix = cell_recipe(recipe, Cell("step_by_step", 1, 0, ("answer",), "batchfix"), tmp_path)
    assert (fix.train.group_by_length, fix.train.learning_rate, fix.train.epochs) == (
        False,
        1e-3,
        3.0,
    )
    plain = cell_recipe(recipe, Cell("step_by_step", 1, 0, ("answer",)), tmp_path)
    assert (plain.train.group_by_length, plain.train.learning_rate) == (True, 5e-4)
    labels = [r.label for r in table_rows(cfg, "teacher", "first")]
    assert labels[:2] == ["1 CoT (Distilling Step-by-Step)", "1 CoT, batching fix only"]
    typo = ExperimentConfig(extra_rows=[{**BATCHFIX, "set": {"train.epoch": 3}}]).extra_rows
    wrong = recipe.model_copy(update={"experiment": cfg.model_copy(update={"extra_rows": typo})})
    with pytest.raises(UserError, match="epoch"):
        cell_recipe(wrong, Cell("step_by_step", 1, 0, ("answer",), "batchfix"), tmp_path)
    with pytest.raises(ValueError, match="names must differ"):
        ExperimentConfig(extra_rows=[BATCHFIX, BATCHFIX])


def test_the_kept_teacher_summary_changes_only_with_the_teacher_data(tmp_path: Path) -> None:
    """A grid resumed on a new machine re-reads its teacher records in another wall time: the
    committed copy must not churn for that, but must follow a change in the data."""
    run, folder = RunDir(tmp_path / "run"), tmp_path / "records"
    run.summary.parent.mkdir(parents=True)
    first = {"teacher_accuracy": 0.74, "cost_usd": 1.5, "wall_s": 0.641, "cost_usd_this_run": 1.5}
    run.summary.write_text(json.dumps(first), encoding="utf-8")
    keep_teacher_summary(folder, run)
    kept = folder / TEACHER_SUMMARY
    assert json.loads(kept.read_text(encoding="utf-8")) == first
    again = {**first, "wall_s": 0.633, "cost_usd_this_run": 0.0}  # resumed: nothing paid
    run.summary.write_text(json.dumps(again), encoding="utf-8")
    keep_teacher_summary(folder, run)
    assert json.loads(kept.read_text(encoding="utf-8")) == first
    for changed in ({**first, "teacher_accuracy": 0.75}, {**first, "cost_usd": 2.0}):
        run.summary.write_text(json.dumps(changed), encoding="utf-8")
        keep_teacher_summary(folder, run)
        assert json.loads(kept.read_text(encoding="utf-8")) == changed
    kept.write_text("<<<<<<< HEAD\n", encoding="utf-8")  # a damaged copy is written anew
    keep_teacher_summary(folder, run)
    assert json.loads(kept.read_text(encoding="utf-8")) == changed
