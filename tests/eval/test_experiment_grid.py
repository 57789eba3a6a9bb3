"""`experiment`: a 2-method x 1 N x 2 seed grid end to end on a tiny Llama, resume after a
simulated kill, and the paper's table layout (pure functions)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import mindmirror.evaluate
from mindmirror.config import ExperimentConfig, Recipe, dump_recipe, recipe_from_dict
from mindmirror.embedded import EMBEDDED_MODEL
from mindmirror.errors import UserError
from mindmirror.experiment import Cell, experiment, finished, plan_cells
from mindmirror.grid_teaching import evaluation_source, teaching_needed
from mindmirror.reporting.grid_markdown import markdown, markdown_table
from mindmirror.reporting.tables import row_results, table_rows
from mindmirror.rundir import RunDir
from tests.student.conftest import toy_records


def _mtimes(run: RunDir, pattern: str) -> dict[str, int]:
    return {str(p.relative_to(run.root)): p.stat().st_mtime_ns for p in run.root.glob(pattern)}


def test_grid_runs_every_cell_then_resumes_after_a_kill(
    grid: tuple[Recipe, RunDir], monkeypatch: pytest.MonkeyPatch
) -> None:
    recipe, run = grid
    real_evaluate = mindmirror.evaluate.evaluate
    calls: list[str] = []

    def killed_at_third(*args: Any, **kwargs: Any) -> dict[str, Any]:
        calls.append(args[0].name)
        if len(calls) == 3:
            raise KeyboardInterrupt  # the kill lands while the third cell is being scored
        return real_evaluate(*args, **kwargs)

    monkeypatch.setattr(mindmirror.evaluate, "evaluate", killed_at_third)
    with pytest.raises(KeyboardInterrupt):
        experiment(recipe, run, quiet=True)
    finished = _mtimes(run, "cells/*/eval/metrics.json")
    trained = _mtimes(run, "cells/*/student/*/result.json")
    assert sorted(finished) == [
        "cells/mind_mirror-n1-s0/eval/metrics.json",
        "cells/step_by_step-n1-s0/eval/metrics.json",
    ]
    assert "cells/step_by_step-n1-s1/student/reasoning/result.json" in trained

    # Publishing what finished trains and scores nothing and names the rest.
    partial = experiment(recipe, run, quiet=True, only_finished=True)
    assert calls == ["grid-step_by_step-n1-s0", "grid-mind_mirror-n1-s0", "grid-step_by_step-n1-s1"]
    assert _mtimes(run, "cells/*/student/*/result.json") == trained
    assert _mtimes(run, "cells/*/eval/metrics.json") == finished
    assert partial["missing"] == ["step_by_step-n1-s1", "mind_mirror-n1-s1"]
    assert [r["seeds"] for r in partial["rows"]] == [[0], [0]]
    assert len(partial["paired"]) == 1

    monkeypatch.setattr(mindmirror.evaluate, "evaluate", real_evaluate)
    result = experiment(recipe, run, quiet=True)

    # Finished cells were skipped; the interrupted cell was scored without training again.
    after = _mtimes(run, "cells/*/eval/metrics.json")
    assert {k: after[k] for k in finished} == finished
    assert {
        k: v for k, v in _mtimes(run, "cells/*/student/*/result.json").items() if k in trained
    } == trained
    assert len(after) == 4
    assert result["missing"] == []
    assert sorted(c["cell"] for c in result["cells"]) == [
        "mind_mirror-n1-s0",
        "mind_mirror-n1-s1",
        "step_by_step-n1-s0",
        "step_by_step-n1-s1",
    ]
    # Cells share the parent's records (link or copy) and test on the same questions.
    assert all(c["questions"] == 2 for c in result["cells"])
    cell_records = run.root / "cells" / "mind_mirror-n1-s1" / "teacher" / "records.jsonl"
    assert cell_records.read_bytes() == run.records.read_bytes()
    metrics = json.loads((run.root / "cells/mind_mirror-n1-s1/eval/metrics.json").read_text())
    assert (metrics["method"], metrics["num_cots"], metrics["seed"]) == ("mind_mirror", 1, 1)
    # Both judges: the stage-1 student (mirror) and the final student itself (mirror_final).
    assert set(metrics["modes"]) == {"answer", "mirror", "mirror_final"}
    assert metrics["modes"]["mirror"]["judge"] == "stage-1 student"
    assert metrics["modes"]["mirror_final"]["judge"] == "the student itself"
    assert set(metrics["modes"]["mirror"]["at_coverage"]) == {"0.5", "0.8"}
    assert metrics["modes"]["mirror"]["own_cots"]["samples"] == 2 * 2
    assert metrics["self_evaluation_final"]["cots"] == metrics["self_evaluation"]["cots"]
    sbs = json.loads((run.root / "cells/step_by_step-n1-s0/eval/metrics.json").read_text())
    assert set(sbs["modes"]) == {"answer"}  # mirror needs a student that learnt `verdict:`

    rows = {r["label"]: r for r in result["rows"]}
    assert list(rows) == ["1 CoT (Distilling Step-by-Step)", "1 CoT with self-evaluation"]
    assert rows["1 CoT with self-evaluation"]["seeds"] == [0, 1]
    answer = rows["1 CoT with self-evaluation"]["modes"]["answer"]
    assert len(answer["values"]) == 2 and answer["std"] is not None
    # Self-evaluation is measured on the test questions' teacher CoTs, for self-eval students only.
    assert rows["1 CoT (Distilling Step-by-Step)"]["self_evaluation"] is None
    judged = rows["1 CoT with self-evaluation"]["self_evaluation"]
    assert judged["seeds"] == 2 and judged["cots"] > 0 and 0.0 <= judged["gold"] <= 1.0
    markdown = (run.root / "experiment.md").read_text()
    assert "- 1 CoT with self-evaluation (stage-1 judge): on " in markdown
    assert "- 1 CoT with self-evaluation (final student, own verdicts): on " in markdown
    assert (
        "| method | answer (paper) | mirror (ours), full coverage | mirror, own verdicts | seeds |"
        in markdown
    )
    # A paired interval for the one difference the table has, on the 2 shared questions.
    (pair,) = result["paired"]
    assert (pair["second"], pair["first"], pair["mode"], pair["n"]) == (
        "1 CoT with self-evaluation",
        "1 CoT (Distilling Step-by-Step)",
        "answer",
        2,
    )
    assert pair["low"] <= pair["diff"] <= pair["high"]
    assert "| 1 CoT with self-evaluation − 1 CoT (Distilling Step-by-Step) | answer |" in markdown
    assert "most confident 50%" in markdown
    assert "max 2 steps per stage" in markdown and "on 2 test questions" in markdown
    assert "the teacher's (the paper's method)" in markdown
    assert json.loads((run.root / "experiment.json").read_text())["evaluations"] == "teacher"
    assert Path(result["report"]).is_file()
    assert "mind_mirror" in (run.root / "report.md").read_text()


def test_a_mode_added_later_rescores_finished_cells_without_training(
    grid: tuple[Recipe, RunDir],
) -> None:
    recipe, run = grid
    answer_only = recipe.experiment.model_copy(
        update={"methods": ["step_by_step"], "seeds": [0], "modes": ["answer"]}
    )
    experiment(recipe.model_copy(update={"experiment": answer_only}), run, quiet=True)
    trained = _mtimes(run, "cells/*/student/*/result.json")
    eval_dir = run.root / "cells" / "step_by_step-n1-s0" / "eval"
    answer = json.loads((eval_dir / "metrics.json").read_text())["modes"]["answer"]
    with_cot = answer_only.model_copy(update={"modes": ["answer", "cot"]})
    result = experiment(recipe.model_copy(update={"experiment": with_cot}), run, quiet=True)
    assert _mtimes(run, "cells/*/student/*/result.json") == trained
    assert set(result["cells"][0]["accuracy"]) == {"answer", "cot"}
    metrics = json.loads((eval_dir / "metrics.json").read_text())
    assert metrics["modes"]["answer"] == answer  # scored once, kept (its timing too)
    assert metrics["settings"]["modes"] == ["answer", "cot"]
    modes = [json.loads(line)["mode"] for line in (eval_dir / "predictions.jsonl").open()]
    assert sorted(set(modes)) == ["answer", "cot"] and len(modes) == 4
    # Other evaluation settings make every mode count as unscored.
    wider = recipe.eval.model_copy(update={"num_samples": 3})
    other = recipe.model_copy(update={"experiment": with_cot, "eval": wider})
    assert not finished(other, run, Cell("step_by_step", 1, 0, ("answer",)))
    # So do other training settings: the scores were not made by the student asked for.
    assert finished(recipe, run, Cell("step_by_step", 1, 0, ("answer",)))
    faster = recipe.train.model_copy(update={"learning_rate": recipe.train.learning_rate * 2})
    retrained = recipe.model_copy(update={"experiment": with_cot, "train": faster})
    assert not finished(retrained, run, Cell("step_by_step", 1, 0, ("answer",)))


def test_records_from_other_teaching_settings_are_refused(grid: tuple[Recipe, RunDir]) -> None:
    recipe, run = grid
    assert teaching_needed(recipe, run) is False  # hand-placed records, no recipe.yaml yet
    other = recipe.model_copy(update={"teacher": recipe.teacher.model_copy(update={"num_cots": 3})})
    run.recipe.write_text(dump_recipe(other))
    with pytest.raises(UserError, match=r"\(teacher\.num_cots differ\)"):
        teaching_needed(recipe, run)


def test_embedded_teacher_records_match_their_served_copy(grid: tuple[Recipe, RunDir]) -> None:
    recipe, run = grid
    embedded = recipe.model_copy(
        update={"teacher": recipe.teacher.model_copy(update={"backend": "embedded"})}
    )
    # The CLI serves the embedded model over HTTP, so teach records what it actually called.
    served = embedded.teacher.model_copy(
        update={
            "backend": "openai",
            "base_url": "http://127.0.0.1:4321/v1",
            "model": EMBEDDED_MODEL,
        }
    )
    run.recipe.write_text(dump_recipe(embedded.model_copy(update={"teacher": served})))
    assert teaching_needed(embedded, run) is False


def test_n_above_the_teachers_is_a_user_error(grid: tuple[Recipe, RunDir]) -> None:
    recipe, run = grid
    wide = recipe.model_copy(
        update={"experiment": recipe.experiment.model_copy(update={"num_cots": [1, 9]})}
    )
    with pytest.raises(UserError, match=r"raise teacher\.num_cots"):
        experiment(wide, run, quiet=True)
    by_method = recipe.experiment.model_copy(update={"num_cots_by_method": {"mind_mirror": [9]}})
    with pytest.raises(UserError, match=r"asks for 9 CoTs.*raise teacher\.num_cots"):
        experiment(recipe.model_copy(update={"experiment": by_method}), run, quiet=True)


def test_num_cots_by_method_sets_the_ns_of_one_method() -> None:
    cfg = ExperimentConfig(
        methods=["standard", "step_by_step", "multi_cot", "mind_mirror"],
        num_cots=[5],
        num_cots_by_method={"multi_cot": [3, 10, 5]},
        seeds=[0],
    )
    names = [c.name for c in plan_cells(cfg, explain_target="cot")]
    assert names == [
        "standard-n1-s0",
        "step_by_step-n1-s0",
        "multi_cot-n3-s0",
        "multi_cot-n5-s0",
        "multi_cot-n10-s0",
        "mind_mirror-n5-s0",
    ]
    labels = [r.label for r in table_rows(cfg, "gold", "first")]
    assert labels[2:5] == ["3 CoTs", "5 CoTs", "10 CoTs"]
    assert labels[-1].startswith("5 CoTs with self-evaluation")


@pytest.mark.parametrize(
    ("grid", "message"),
    [
        ({"num_cots_by_method": {"step_by_step": [5]}}, "step_by_step has no N"),
        ({"num_cots_by_method": {"multi_cot": []}}, "at least 1 item"),
        ({"num_cots_by_method": {"multi_cot": [0, 5]}}, "greater than 0"),
        ({"num_cots": [0]}, "greater than 0"),
    ],
)
def test_grid_ns_are_checked_at_start_up(grid: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ExperimentConfig(**grid)


def test_default_grid_is_the_papers_six_rows() -> None:
    cfg = ExperimentConfig()
    labels = [r.label for r in table_rows(cfg, "teacher", "first")]
    assert labels == [
        "Standard fine-tuning (gold answers)",
        "Standard distillation (first teacher answer)",
        "1 CoT (Distilling Step-by-Step)",
        "5 CoTs",
        "1 CoT with self-evaluation",
        "5 CoTs with self-evaluation",
    ]
    cells = plan_cells(cfg, explain_target="cot")
    assert len(cells) == 6 * 3
    by_name = {c.name: c for c in cells}
    assert by_name["standard-n1-s0"].modes == ("answer",)
    assert by_name["multi_cot-n5-s2"].modes == ("answer", "cot", "vote")
    assert by_name["mind_mirror-n1-s1"].modes == ("answer", "cot", "vote", "mirror")
    assert not any(
        c.method.startswith("mind") for c in plan_cells(cfg, explain_target="cot", self_eval=False)
    )
    fewer = cfg.model_copy(update={"seeds_by_method": {"mind_mirror": [0]}})
    assert [
        c.name for c in plan_cells(fewer, explain_target="cot") if c.method == "mind_mirror"
    ] == ["mind_mirror-n1-s0", "mind_mirror-n5-s0"]
    assert len(plan_cells(fewer, explain_target="cot")) == 6 * 3 - 4
    cheaper = cfg.model_copy(update={"modes_by_method": {"multi_cot": ["answer"]}})
    by_name = {c.name: c for c in plan_cells(cheaper, explain_target="cot")}
    assert by_name["multi_cot-n5-s2"].modes == ("answer",)
    assert by_name["mind_mirror-n5-s0"].modes == ("answer", "cot", "vote", "mirror")
    # The paper's rationale-only explain targets leave the answer mode only.
    paper = plan_cells(cfg, explain_target="rationale")
    assert {c.modes for c in paper} == {("answer",)}


def test_table_says_what_is_missing_instead_of_a_number() -> None:
    cfg = ExperimentConfig(methods=["multi_cot", "mind_mirror"], num_cots=[5], seeds=[0, 1])
    cell = Cell("multi_cot", 5, 0, ("answer",))
    results = {
        cell: {"modes": {"answer": {"accuracy": 0.5}}},
        Cell("multi_cot", 5, 1, ("answer",)): {"modes": {"answer": {"accuracy": 0.3}}},
        Cell("mind_mirror", 5, 0, ("answer",)): {"modes": {"answer": {"accuracy": 0.25}}},
    }
    gold = [row_results(r, results) for r in table_rows(cfg, "gold", "first")]
    lines = markdown_table(gold, ["answer", "vote"])
    assert lines[0] == "| method | answer (paper) | vote | seeds |"
    assert lines[2] == "| 5 CoTs | 0.400 ± 0.141 | - | 0, 1 |"
    assert lines[3] == (
        "| 5 CoTs with self-evaluation (teacher verdicts) | needs teacher self-evaluations; "
        "the records have none |  | - |"
    )
    assert lines[4] == (
        "| 5 CoTs with self-evaluation (gold verdicts, not the paper's teacher self-evaluation) "
        "| 0.250 | - | 0 |"
    )
    none = markdown_table(
        [row_results(r, results) for r in table_rows(cfg, "none", "first")], ["answer"]
    )
    assert len(none) == 4 and "needs teacher self-evaluations" in none[3]


def test_markdown_states_the_schedule_and_shows_modes_asked_for_one_method() -> None:
    recipe = recipe_from_dict(
        {
            "train": {"epochs": 3, "stage1_epochs": 0.3},
            "experiment": {
                "methods": ["multi_cot", "mind_mirror"],
                "num_cots": [5],
                "modes": ["answer"],
                "modes_by_method": {"mind_mirror": ["answer", "vote"]},
                "equal_examples": True,
            },
        }
    )
    results = {Cell("mind_mirror", 5, 0, ("answer", "vote")): {"modes": {}}}
    rows = [row_results(r, results) for r in table_rows(recipe.experiment, "gold", "first")]
    text = markdown(recipe, [], rows, [], {200})
    assert "3 epochs (divided by N in the CoT cells: equal examples), self-evaluation " in text
    assert "stage 0.3 epochs" in text
    assert "| method | answer (paper) | vote | seeds |" in text
    assert "Settings per method" not in text
    tuned = recipe.experiment.model_copy(
        update={"train_by_method": {"mind_mirror": {"learning_rate": 1e-4, "epochs": 5}}}
    )
    text = markdown(recipe.model_copy(update={"experiment": tuned}), [], rows, [], {200})
    assert "replacing the above in that method's cells: mind_mirror: learning_rate 0.0001, " in text
    assert "epochs 5." in text


def test_self_evaluation_is_averaged_over_the_seeds_that_measured_it() -> None:
    cfg = ExperimentConfig(methods=["mind_mirror"], num_cots=[5], seeds=[0, 1, 2])
    agree = {"cots": 40, "teacher": 0.6, "gold": 0.5, "auroc": None, "teacher_vs_gold": 0.7}
    results = {
        Cell("mind_mirror", 5, 0, ("answer",)): {"modes": {}, "self_evaluation": agree},
        Cell("mind_mirror", 5, 1, ("answer",)): {
            "modes": {},
            "self_evaluation": {**agree, "teacher": 0.8, "auroc": 0.9},
        },
        Cell("mind_mirror", 5, 2, ("answer",)): {"modes": {}, "self_evaluation": None},
    }
    (row,) = [row_results(r, results) for r in table_rows(cfg, "teacher", "first")]
    assert row["self_evaluation"] == {
        "cots": 40,
        "seeds": 2,
        "teacher": pytest.approx(0.7),
        "gold": 0.5,
        "auroc": 0.9,
        "teacher_vs_gold": 0.7,
    }


def test_evaluation_source_needs_verdicts_on_train_and_validation() -> None:
    records = toy_records()
    assert evaluation_source(records) == "teacher"
    gold = [
        r.model_copy(
            update={
                "cots": [
                    c.model_copy(
                        update={
                            "evaluations": [
                                e.model_copy(update={"source": "gold"}) for e in c.evaluations
                            ]
                        }
                    )
                    for c in r.cots
                ]
            }
        )
        for r in records
    ]
    assert evaluation_source(gold) == "gold"
    no_validation = [
        r.model_copy(update={"cots": []}) if r.split == "validation" else r for r in records
    ]
    assert evaluation_source(no_validation) == "none"


def test_equal_examples_divides_the_epochs_of_cot_cells_by_n(grid: tuple[Recipe, RunDir]) -> None:
    from mindmirror.experiment import cell_recipe

    recipe, run = grid
    base = recipe.model_copy(
        update={
            "train": recipe.train.model_copy(update={"epochs": 10.0, "max_steps": None}),
            "experiment": recipe.experiment.model_copy(update={"equal_examples": True}),
        }
    )
    five = cell_recipe(base, Cell("multi_cot", 5, 0, ("answer",)), run.root / "c")
    assert five.train.epochs == 2.0
    mirror = cell_recipe(base, Cell("mind_mirror", 5, 0, ("answer",)), run.root / "c")
    # Stage 1: a verdict row per judged CoT and evaluation, as many examples as 1 CoT sees.
    verdicts = base.teacher.num_cots * min(base.teacher.num_evals, base.train.num_evals)
    assert (mirror.train.epochs, mirror.train.stage1_epochs) == (2.0, 10.0 / verdicts)
    standard = cell_recipe(base, Cell("standard", 1, 0, ("answer",)), run.root / "c")
    assert standard.train.epochs == 10.0


def test_only_finished_before_any_cell_trains_nothing(grid: tuple[Recipe, RunDir]) -> None:
    recipe, run = grid
    nothing = experiment(recipe, run, quiet=True, only_finished=True)
    assert (nothing["cells"], nothing["report"]) == ([], None)
    assert len(nothing["missing"]) == 4
    assert all(not r["seeds"] for r in nothing["rows"])
    run.records.unlink()
    with pytest.raises(UserError, match="no cell of this grid has finished"):
        experiment(recipe, run, quiet=True, only_finished=True)
