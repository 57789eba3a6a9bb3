"""`bench/svamp_repro.py` (issue 23): per-method tuning on validation, resumable from its
records; `--summarise` rebuilds the summary, the plots and every paired interval from the
committed records alone, with no run directory."""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from mindmirror.cell_records import ADOPTED, cell_record, train_record, write_record
from mindmirror.config import ExperimentConfig, Recipe, load_recipe
from mindmirror.errors import UserError
from mindmirror.reporting.metrics import paired_difference
from mindmirror.rundir import RunDir
from tests.eval.cells import fake_cell, fake_training, identity

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))
import svamp_repro  # noqa: E402
from svamp_summary import (  # noqa: E402
    judge_table,
    peak_memory,
    protocol_records,
    selective_pairs,
    servers_unrecorded,
    tuning_record,
    write_tuning,
)

STANDARD = "Standard fine-tuning (gold answers)"
ONE_COT = "1 CoT (Distilling Step-by-Step)"
BATCHFIX = "1 CoT, batching fix only"
PALM = ONE_COT + " [PaLM-540B CoTs]"


def _validation(method: str, settings: dict[str, Any]) -> float:
    """A validation accuracy whose best candidate differs by method."""
    if method == "standard":
        return 0.3 + settings["learning_rate"] * 100 + settings["epochs"] / 100
    return 0.5 - settings["learning_rate"] * 100 - settings["epochs"] / 100


def test_each_method_is_tuned_on_its_own_and_recorded_tunings_are_not_trained_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    recipe = load_recipe(
        svamp_repro.RECIPE,
        [f"run_dir={tmp_path / 'run'}", "experiment.methods=[standard,mind_mirror]"],
    )
    run = RunDir(recipe.resolved_run_dir())
    run.teacher.mkdir(parents=True)
    run.records.write_text("")
    trained: list[Recipe] = []

    def fake_train(resolved: Recipe, sub: RunDir, quiet: bool) -> None:
        trained.append(resolved)
        settings = {"learning_rate": resolved.train.learning_rate, "epochs": 0.0}
        name = sub.root.name.removeprefix(f"{resolved.train.method}-")
        settings["epochs"] = svamp_repro.CANDIDATES[name]["epochs"]
        fake_training(
            sub,
            resolved.train.method,
            validation=_validation(resolved.train.method, settings),
            seconds=60.0,
        )

    monkeypatch.setattr(svamp_repro, "train", fake_train)
    folder = tmp_path / "records"
    chosen = svamp_repro.tune(recipe, run, folder, quiet=True)
    candidates = svamp_repro.CANDIDATES
    assert len(trained) == 2 * len(candidates)  # the same candidates, the same budget
    assert chosen["standard"]["candidate"] == "full-lr2e-4-e5"
    assert chosen["mind_mirror"] == {"candidate": "full-lr1e-4-e3", **candidates["full-lr1e-4-e3"]}
    mirror = [r for r in trained if r.train.method == "mind_mirror"]
    # Tuned as its cells train: at N = 5 with equal examples, seed 0, the candidate's settings.
    assert {(r.train.num_cots, r.seed) for r in mirror} == {(5, 0)}
    assert sorted(r.train.epochs for r in mirror) == [0.6, 0.6, 1.0, 1.0]
    assert {r.train.lora for r in trained} == {False}
    assert len(list((folder / "tuning").glob("*.json"))) == 2 * len(candidates)

    # Another machine: the tuning run directories are gone, the records give the same choice.
    shutil.rmtree(run.root / "tune")
    trained.clear()
    assert svamp_repro.tune(recipe, run, folder, quiet=True) == chosen
    assert trained == []
    (folder / "tuning" / "standard-full-lr1e-4-e5.json").unlink()
    (folder / "tuning" / "standard-full-lr2e-4-e3.json").unlink()
    # Two processes tuning at once: each trains its own candidates only, and a method chooses
    # once every candidate is recorded.
    assert "standard" not in svamp_repro.tune(recipe, run, folder, True, ["full-lr2e-4-e3"])
    assert [(r.train.method, r.train.epochs) for r in trained] == [("standard", 3.0)]
    assert svamp_repro.tune(recipe, run, folder, True, ["full-lr1e-4-e5"]) == chosen
    assert [(r.train.method, r.train.epochs) for r in trained] == [
        ("standard", 3.0),
        ("standard", 5.0),
    ]

    # A record made by another training is refused, not chosen on: other settings, other
    # teacher records, or a record that does not say what made it.
    other = load_recipe(
        svamp_repro.RECIPE,
        [f"run_dir={tmp_path / 'run'}", "experiment.methods=[standard]", "train.batch_size=4"],
    )
    with pytest.raises(UserError, match=r"standard-full-lr1e-4-e3\.json: .*batch_size"):
        svamp_repro.tune(other, run, folder, quiet=True)
    run.records.write_text("{}\n")
    with pytest.raises(UserError, match="teacher records"):
        svamp_repro.tune(recipe, run, folder, quiet=True)
    run.records.write_text("")
    path = folder / "tuning" / "standard-full-lr1e-4-e3.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), "provenance": None}))
    with pytest.raises(UserError, match=r"no provenance recorded\); delete it"):
        svamp_repro.tune(recipe, run, folder, quiet=True)
    assert not list((folder / "tuning").glob("*.tmp"))


def _records(tmp_path: Path) -> Path:
    """Committed records of a partial protocol: three rows at 3 seeds, PaLM at 2, tuning of two
    methods; the run directories that made them are deleted."""
    folder = tmp_path / "published"
    run = RunDir(tmp_path / "run")
    rows = [
        ("standard", STANDARD, "", 0.45),
        ("step_by_step", ONE_COT, "", 0.40),
        ("step_by_step", BATCHFIX, "batchfix", 0.43),
    ]
    for method, label, variant, skill in rows:
        for seed in (0, 1, 2):
            name = f"{variant + '-' if variant else ''}{method}-n1-s{seed}"
            sub = fake_cell(
                run, name, method=method, seed=seed, modes=("answer",), skill=skill, questions=40
            )
            if (name, label) == ("standard-n1-s0", STANDARD):
                # Its student is standard's chosen tuning training: counted once, in the cells.
                made = json.loads((sub.student / "train.json").read_text())["stages"]
                seconds = {k: v["train_seconds"] for k, v in made.items()}
                adopted = {"from": "standard-full-lr2e-4-e5", "train_seconds": seconds}
                (sub.student / ADOPTED).write_text(json.dumps(adopted))
            metrics = json.loads((sub.evaluation / "metrics.json").read_text())
            ident = identity(sub, method, seed, label, variant)
            write_record(folder, cell_record(sub, ident, metrics, "a CPU"))
    for seed in (0, 1):
        name = f"step_by_step-n1-s{seed}"
        sub = fake_cell(
            RunDir(tmp_path / "palm"),
            name,
            method="step_by_step",
            seed=seed,
            modes=("answer",),
            skill=0.5,
            questions=40,
        )
        metrics = json.loads((sub.evaluation / "metrics.json").read_text())
        ident = identity(sub, "step_by_step", seed, ONE_COT)
        record = cell_record(sub, ident, metrics, "another CPU")
        if seed == 1:  # one cell trained on a GPU: named by its GPU, its hours counted apart
            record["train"].update(device="cuda", device_name="NVIDIA H200")
        write_record(folder / "palm", record)
    for method in ("standard", "step_by_step"):
        for name, settings in svamp_repro.CANDIDATES.items():
            sub = RunDir(tmp_path / "tune" / f"{method}-{name}")
            # Standard's tunings trained before stages kept their peak memory.
            peak = None if method == "standard" else 2000.0 + 100 * settings["epochs"]
            fake_training(
                sub, method, validation=_validation(method, settings), seconds=60.0, peak_mb=peak
            )
            made = {"train_settings": {}, "records_sha256": "0" * 64}
            write_tuning(folder, tuning_record(method, 1, name, settings, train_record(sub), made))
    for made in ("run", "palm", "tune"):
        shutil.rmtree(tmp_path / made)
    return folder


def _answer(folder: Path, cell: str) -> dict[str, Any]:
    """The answer mode of a cell's record, read directly."""
    return json.loads((folder / "cells" / f"{cell}.json").read_text())["modes"]["answer"]


def _scores(folder: Path, cells: list[str]) -> list[float]:
    """Each question's correctness averaged over cells, read from their records directly."""
    bits = [_answer(folder, c)["correct"] for c in cells]
    return [statistics.fmean(int(b[q]) for b in bits) for q in range(len(bits[0]))]


def test_summarise_rebuilds_everything_from_the_records_alone(tmp_path: Path) -> None:
    folder = _records(tmp_path)
    out = tmp_path / "summary.json"
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{ROOT}"}
    command = ["bench/svamp_repro.py", "--summarise", "--records", str(folder), "--out", str(out)]
    done = subprocess.run(
        [sys.executable, *command],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        text=True,
        timeout=300,
    )
    summary = json.loads(out.read_text())
    assert list(summary["cells"]) == [STANDARD, ONE_COT, BATCHFIX, PALM]
    accuracies = [_answer(folder, f"batchfix-step_by_step-n1-s{s}")["accuracy"] for s in (0, 1, 2)]
    batchfix = summary["cells"][BATCHFIX]["answer"]
    assert (batchfix["seeds"], batchfix["n_test"]) == ([0, 1, 2], 40)
    assert batchfix["mean"] == pytest.approx(statistics.fmean(accuracies))
    # The tables the docs quote, printed as Markdown from the same records.
    printed = done.stdout.splitlines()
    assert f"| {BATCHFIX} | {batchfix['mean']:.3f} ± {batchfix['std']:.3f} | 0, 1, 2 |" in printed
    differences = [line for line in printed if line.startswith("| ") and " − " in line]
    assert len(differences) == len(summary["paired"])
    assert summary["cells"][PALM]["answer"]["seeds"] == [0, 1]
    # Every pair of rows, and the pairs with PaLM again on the seeds both ran.
    pairs = {(p["second"], p["first"], tuple(p["first_seeds"])): p for p in summary["paired"]}
    assert len(pairs) == 6 + 3
    assert pairs[(PALM, STANDARD, (0, 1))]["second_seeds"] == [0, 1]
    fix = pairs[(BATCHFIX, ONE_COT, (0, 1, 2))]
    expected = paired_difference(
        _scores(folder, [f"step_by_step-n1-s{s}" for s in (0, 1, 2)]),
        _scores(folder, [f"batchfix-step_by_step-n1-s{s}" for s in (0, 1, 2)]),
        resamples=200,
        seed=0,
    )
    assert {k: fix[k] for k in expected} == expected
    assert summary["chosen"] == {
        "standard": {"candidate": "full-lr2e-4-e5", **svamp_repro.CANDIDATES["full-lr2e-4-e5"]},
        "step_by_step": {"candidate": "full-lr1e-4-e3", **svamp_repro.CANDIDATES["full-lr1e-4-e3"]},
    }
    assert len(summary["tuning"]) == 2 * len(svamp_repro.CANDIDATES)
    assert "multi_cot-full-lr1e-4-e3" in summary["missing_tuning"]
    assert "mind_mirror-n5-s0" in summary["missing_cells"]
    assert "palm/step_by_step-n1-s2" in summary["missing_cells"]
    assert "standard-n1-s0" not in summary["missing_cells"]
    assert summary["machines"]["another CPU (bf16)"] == ["palm/step_by_step-n1-s0"]
    assert summary["machines"]["NVIDIA H200 (bf16)"] == ["palm/step_by_step-n1-s1"]
    assert list(summary["engines"]) == ["llama_cpp"]
    assert summary["judge"] == {}  # no row here trained on self-evaluation
    assert [p["second"] for p in summary["paired_selective"]] == [ONE_COT, BATCHFIX, PALM]
    seconds = {cell: sum(c.values()) for cell, c in summary["cell_seconds"].items()}
    gpu_s = seconds.pop("palm/step_by_step-n1-s1")
    assert summary["protocol_cpu_hours"] == round((sum(seconds.values()) + 7 * 60.0) / 3600, 2)
    assert summary["protocol_gpu_hours"] == round(gpu_s / 3600, 2) > 0
    # Peak memory per training, the largest of its stages'; what was never recorded is named.
    peaks = summary["peak_rss_mb"]
    assert peaks["tune/step_by_step-full-lr1e-4-e3"] == 2300.0
    assert summary["peak_rss_mb_max"] == 2500.0
    assert "tune/standard-full-lr1e-4-e3" in summary["peak_rss_unrecorded"]
    assert "standard-n1-s0" in summary["peak_rss_unrecorded"]
    assert "tune/step_by_step-full-lr1e-4-e3" not in summary["peak_rss_unrecorded"]
    assert "standard-n1-s1" in summary["peak_rss_servers_unrecorded"]  # no server figure kept
    assert (folder / "plots" / "svamp_repro_accuracy_by_method.png").is_file()
    assert (folder / "plots" / "svamp_repro_risk_coverage.png").is_file()


def test_each_row_ranking_its_own_answers_is_paired_with_standard_fine_tuning(
    tmp_path: Path,
) -> None:
    folder = _records(tmp_path)
    pairs = {p["second"]: p for p in selective_pairs(protocol_records(folder), 200, 0)}
    assert list(pairs) == [ONE_COT, BATCHFIX, PALM]  # the table's order, standard itself left out
    assert pairs[PALM]["seeds"] == [0, 1]  # the seeds both ran, seed against seed
    fix = pairs[BATCHFIX]
    assert fix["seeds"] == [0, 1, 2] and fix["first"] == STANDARD
    # Each side is its own row's figure (its record's, computed at scoring), averaged over seeds.
    for key, metric in (("selective_0.5", lambda a: a["at_coverage"]["0.5"]), ("aurc", None)):
        own = [
            _answer(folder, f"{cell}-n1-s{s}")
            for cell in ("standard", "batchfix-step_by_step")
            for s in (0, 1, 2)
        ]
        figures = [metric(a) if metric else a["aurc"] for a in own]
        expected = statistics.fmean(figures[3:]) - statistics.fmean(figures[:3])
        assert fix[key]["diff"] == pytest.approx(expected)
        assert fix[key]["low"] <= fix[key]["diff"] <= fix[key]["high"]
        assert fix[key]["n"] == 40
    assert fix["selective_0.5"]["low"] < fix["selective_0.5"]["high"]


def test_peak_memory_is_the_largest_part_and_unknown_if_any_part_is() -> None:
    stages = {"evaluation": {"peak_rss_mb": 3000.0}, "reasoning": {"peak_rss_mb": 2500.0}}
    assert peak_memory({"train": {"stages": stages}}) == 3000.0
    # A cell adds its scoring's peak, from the same process.
    cell = {"train": {"stages": stages}, "modes": {}, "eval_peak_rss_mb": 3500.0}
    assert peak_memory(cell) == 3500.0
    assert peak_memory({**cell, "eval_peak_rss_mb": None}) is None
    # A llama.cpp scoring adds its servers' peaks; a record without them (older) is named.
    served = {**cell, "cell": "new", "engine": "llama_cpp", "eval_server_peak_rss_mb": 400.0}
    assert peak_memory(served) == 3900.0
    older = {k: v for k, v in served.items() if k != "eval_server_peak_rss_mb"} | {"cell": "old"}
    assert peak_memory(older) == 3500.0
    local = {**cell, "cell": "local", "engine": "transformers", "eval_server_peak_rss_mb": None}
    assert peak_memory(local) == 3500.0
    assert servers_unrecorded([served, older, local]) == ["old"]
    stages["reasoning"] = {"train_seconds": 10.0}
    assert peak_memory({"train": {"stages": stages}}) is None


def test_the_judge_is_published_beside_cot_length_alone(tmp_path: Path) -> None:
    run = RunDir(tmp_path / "run")
    records = []
    for seed, skill in ((0, 0.6), (1, 0.8)):
        name = f"mind_mirror-n5-s{seed}"
        modes = ("answer", "mirror")
        sub = fake_cell(run, name, method="mind_mirror", seed=seed, modes=modes, skill=skill)
        metrics = json.loads((sub.evaluation / "metrics.json").read_text())
        ident = identity(sub, "mind_mirror", seed, "5 CoTs with self-evaluation")
        records.append(cell_record(sub, ident, metrics, "a CPU"))
    judge = judge_table(records)["5 CoTs with self-evaluation"]
    assert judge["seeds"] == [0, 1]
    # At the checkpoint chosen on validation (the last of 3 here), each seed's figures.
    assert judge["values"]["validation_auroc"] == [0.6, 0.8]
    assert judge["validation_auroc"] == pytest.approx(0.7)
    assert judge["validation_length_auroc"] == pytest.approx(0.68)
    assert judge["own_cots_length_auroc"] == 0.5  # the fake CoTs share one length
    assert 0 <= judge["own_cots_auroc"] <= 1


def test_seed_0_cells_take_their_chosen_tuning_training(tmp_path: Path) -> None:
    recipe = load_recipe(svamp_repro.RECIPE, ["experiment.methods=[standard,mind_mirror]"])
    run = RunDir(tmp_path / "run")
    tuned = run.root / "tune" / "mind_mirror-full-lr2e-4-e5"
    fake_training(RunDir(tuned), "mind_mirror", validation=0.5, seconds=60.0)
    # The tuning spelled its run directory relative to where it ran.
    made = json.loads((tuned / "student" / "train.json").read_text())
    made["recipe"] = f"run_dir: {tuned.relative_to(tmp_path)}\n"
    (tuned / "student" / "train.json").write_text(json.dumps(made))
    for folder in (run.root, tuned):
        (folder / "teacher").mkdir(parents=True, exist_ok=True)
        (folder / "teacher" / "records.jsonl").write_text("{}\n")
    stage1 = tuned / "student" / "evaluation"
    (stage1 / "checkpoints" / "checkpoint-9").mkdir(parents=True)
    (tuned / "student" / "reasoning" / "settings.json").write_text(
        json.dumps({"init": str(stage1 / "best"), "also": str(stage1.relative_to(tmp_path))})
    )
    chosen = {
        "mind_mirror": {"candidate": "full-lr2e-4-e5"},
        "standard": {"candidate": "full-lr1e-4-e3"},  # its tuning directory is gone
    }
    adopted = svamp_repro.adopt_tuned_students(run, chosen, recipe.experiment, 5)
    assert adopted == ["mind_mirror-n5-s0"]
    cell = run.cell("mind_mirror-n5-s0")
    settings = json.loads((cell.student / "reasoning" / "settings.json").read_text())
    evaluation = cell.student / "evaluation"
    assert settings == {"init": str(evaluation / "best"), "also": str(evaluation)}
    assert json.loads((cell.student / "train.json").read_text())["stages"] == made["stages"]
    assert not (cell.root / "student.adopting").exists()
    assert train_record(cell)["adopted_from"] == "mind_mirror-full-lr2e-4-e5"
    # A stage trained again here since is no longer the tuning's training.
    summary = json.loads((cell.student / "train.json").read_text())
    summary["stages"]["reasoning"]["train_seconds"] += 1
    (cell.student / "train.json").write_text(json.dumps(summary))
    assert train_record(cell)["adopted_from"] is None
    assert not (cell.student / "evaluation" / "checkpoints").exists()
    # A cell that has a student keeps it; a seed list without 0 adopts nothing.
    assert svamp_repro.adopt_tuned_students(run, chosen, recipe.experiment, 5) == []
    later = recipe.experiment.model_copy(update={"seeds": [1, 2]})
    shutil.rmtree(cell.root)
    assert svamp_repro.adopt_tuned_students(run, chosen, later, 5) == []
    # A tuning trained on other teacher records (taught again since) is not adopted.
    (tuned / "teacher" / "records.jsonl").write_text("{}\n{}\n")
    assert svamp_repro.adopt_tuned_students(run, chosen, recipe.experiment, 5) == []


def test_candidates_only_with_until_tune() -> None:
    # A grid after a partial tuning would train the untuned methods on the recipe's settings.
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{ROOT}"}
    command = ["bench/svamp_repro.py", "--candidates", "full-lr2e-4-e3", "--until", "headline"]
    done = subprocess.run(
        [sys.executable, *command], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 2
    assert "--candidates tunes part of the candidates: use it with --until tune" in done.stderr


def _ordered_cells(recipe: Recipe) -> list[str]:
    """The cells in the order ``bench/svamp_repro.py`` trains them (a later part skips the
    cells an earlier part planned)."""
    from mindmirror.experiment import plan_cells

    order: list[str] = []
    for _, cfg in svamp_repro.run_order(recipe.experiment, recipe.train.num_cots):
        # Each part is a valid config, as `experiment` checks it again.
        ExperimentConfig.model_validate(cfg.model_dump())
        for cell in plan_cells(cfg, explain_target=recipe.train.explain_target):
            if cell.name not in order:
                order.append(cell.name)
    return order


def test_the_issues_cells_finish_at_every_seed_before_the_other_ns_start() -> None:
    recipe = load_recipe(svamp_repro.RECIPE)
    order = _ordered_cells(recipe)
    claims = [
        f"{cell}-s{seed}"
        for cell in ("standard-n1", "step_by_step-n1", "multi_cot-n5", "mind_mirror-n5")
        for seed in (0, 1, 2)
    ] + [f"batchfix-step_by_step-n1-s{seed}" for seed in (0, 1, 2)]
    assert set(order[: len(claims)]) == set(claims)
    assert order[:9] == [  # the headline cells first, seed by seed
        f"{cell}-s{seed}"
        for seed in (0, 1, 2)
        for cell in ("standard-n1", "step_by_step-n1", "multi_cot-n5")
    ]
    # Then self-evaluation at every seed (the headline table is whole), then the extra row.
    assert order[9:15] == [f"mind_mirror-n5-s{s}" for s in (0, 1, 2)] + [
        f"batchfix-step_by_step-n1-s{s}" for s in (0, 1, 2)
    ]
    every = [c for c in svamp_repro.planned_cells(recipe) if not c.startswith("palm/")]
    assert sorted(order) == sorted(every)
    # Whatever Ns the grid gives a method, every part runs cells of the grid only: a method
    # without the headline N runs at its largest first, as its tuning did.
    for overrides in (
        ["experiment.num_cots_by_method={multi_cot: [3, 5, 10], mind_mirror: [10]}"],
        ["experiment.num_cots=[1, 3]"],
        ["experiment.methods=[mind_mirror]", "experiment.extra_rows=[]"],
    ):
        other = load_recipe(svamp_repro.RECIPE, overrides)
        planned = [c for c in svamp_repro.planned_cells(other) if not c.startswith("palm/")]
        assert sorted(_ordered_cells(other)) == sorted(planned), overrides
    ten = load_recipe(svamp_repro.RECIPE, ["experiment.num_cots_by_method={mind_mirror: [10]}"])
    assert _ordered_cells(ten)[9:13] == [
        *(f"mind_mirror-n10-s{seed}" for seed in (0, 1, 2)),
        "batchfix-step_by_step-n1-s0",
    ]
    # Without a self-evaluation method the extra rows run with the rest of the grid.
    standard_only = load_recipe(svamp_repro.RECIPE, ["experiment.methods=[standard]"])
    assert _ordered_cells(standard_only) == [
        *(f"standard-n1-s{seed}" for seed in (0, 1, 2)),
        *(f"batchfix-step_by_step-n1-s{seed}" for seed in (0, 1, 2)),
    ]
