"""`bench/own_judge.py` (issue 25): one tiny cell trained and measured end to end, and the
summary's figures and paired intervals from hand-made records."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from mindmirror.cell_records import adopted_from, train_record
from mindmirror.config import recipe_from_dict
from mindmirror.errors import UserError
from mindmirror.records import write_records
from mindmirror.rundir import RunDir
from mindmirror.signals import run_signals
from mindmirror.student.infer import Judged, Prediction, vote_prediction
from mindmirror.tasks.base import Example
from mindmirror.tasks.families import EquationTask
from tests.eval.cells import fake_training
from tests.student.conftest import corpus, save_tiny_student, toy_records

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))
import own_judge  # noqa: E402
import own_judge_summary  # noqa: E402
from adoption import adopt_protocol_student  # noqa: E402
from svamp_summary import tuning_record, write_tuning  # noqa: E402


def test_a_tiny_cell_reads_every_signal_from_the_same_samples(tmp_path: Path) -> None:
    student = save_tiny_student("causal", tmp_path / "student", corpus())
    run = RunDir(tmp_path / "run")
    records = toy_records()
    write_records(run.records, records)
    recipe = recipe_from_dict(
        {
            "run_dir": str(run.root),
            "seed": 1,
            "train": {
                "student": str(student),
                "method": "mind_mirror",
                "explain_target": "cot",
                "num_cots": 2,
                "epochs": 1,
                "batch_size": 4,
                "eval_max_new_tokens": 8,
                "own_judge": {},
            },
            "eval": {
                "engine": "transformers",
                "num_samples": 3,
                "max_new_tokens": 12,
                "answer_max_tokens": 8,
            },
        }
    )
    trained = own_judge.train_cell(recipe, run, quiet=True)
    assert trained["mixed"]["mix"] == "own+teacher"
    assert (run.stage(own_judge.MIXED) / "best").is_dir()
    test = [Example(r.id, r.split, r.question, r.gold) for r in records if r.split == "test"]
    measured = own_judge.measure(recipe, run, EquationTask("svamp"), test, quiet=True)
    settings = own_judge.cell_settings(recipe, 2)
    record = own_judge.cell_record(recipe, trained, measured, settings)
    assert record["n_test"] == 2 and len(record["cot_correct"]) == 2 * 3
    names = {"judge_teacher", "judge_own", "judge_own_teacher", "vote_share"}
    assert names | {"answer_prob", "logprob", "length"} <= set(record["cots"])
    assert all(len(v) == 6 for v in record["cots"].values())
    assert all(len(v) == 2 for v in record["questions"].values())
    assert set(record["accuracy"]) >= {"answer", "vote", "mirror_own", "mirror_teacher"}
    assert record["cost_seconds"]["own_sampling"] > 0
    summary = own_judge_summary.summarise([record], resamples=10, command="test")
    assert summary["n_test"] == 2 and summary["seeds"] == [1]
    assert "judge_own - judge_teacher" in summary["pairs"]
    assert set(record["answers"]) == names | {"answer_prob"}
    assert all(len(v) == 2 for v in record["answers"].values())
    assert set(summary["answer_signals"]) == names | {"answer_prob"}


TASK = EquationTask("svamp")


def _judged_cot(text: str, answer: str | None) -> Judged:
    canonical = TASK.canonical(answer) if answer is not None else None
    return Judged(text=text, answer=answer, canonical=canonical, logprob=-0.5)


def _record(seed: int, n: int = 60, key: str = "k") -> dict[str, Any]:
    right = [i % 2 == 0 for i in range(n)]
    vote = [i % 4 == 0 for i in range(n)]
    good = [0.8 if ok else 0.2 for ok in right]
    flat = [0.5] * n
    return {
        "seed": seed,
        "settings_key": key,
        "n_test": n,
        "label_sources": {},
        "questions": {
            "judge_teacher": flat,
            "judge_own": good,
            "length": [-5.0] * n,
            # mirror's answers: backed by a fifth of the CoTs where right, by all where wrong.
            "vote_share": [0.2 if ok else 1.0 for ok in right],
        },
        "question_correct": right,
        "cots": {
            "judge_teacher": flat * 2,
            "judge_own": good * 2,
            "length": [-5.0] * 2 * n,
            # vote's answer (a quarter right) backed by 0.6 of the CoTs where right, else 0.4.
            "vote_share": [0.6 if ok else 0.4 for ok in vote] + [0.2] * n,
        },
        "cot_correct": right * 2,
        "cot_question": list(range(n)) * 2,
        "accuracy": {"vote": vote, "mirror_own": right, "answer": right},
        # The greedy answers: their token probability ranks them as well as the own judge.
        "answers": {"answer_prob": good, "judge_own": good, "vote_share": flat},
        "cost_seconds": {"own_sampling": 10.0 + seed, "test_measurement": 1.0},
    }


def test_the_summary_gives_means_over_seeds_and_paired_intervals() -> None:
    summary = own_judge_summary.summarise([_record(1), _record(0)], resamples=50, command="c")
    assert summary["seeds"] == [0, 1]
    own = summary["signals"]["judge_own"]
    assert own["auroc"] == 1.0 and own["auroc_cots"] == 1.0 and own["ece"] == pytest.approx(0.2)
    assert [s["seed"] for s in own["per_seed"]] == [0, 1]
    assert "ece" not in summary["signals"]["length"]  # not a probability
    pair = summary["pairs"]["judge_own - judge_teacher"]
    assert pair["auroc"]["diff"] == 0.5 and pair["auroc"]["low"] > 0
    assert pair["aurc"]["high"] < 0 and pair["auroc_cots"]["n"] == 60
    assert summary["accuracy"] == {"vote": 0.25, "mirror_own": 0.5, "answer": 0.5}
    assert summary["voting"]["mirror_own - vote"]["diff"] == 0.25
    assert summary["cost_seconds"]["own_sampling"] == 10.5
    greedy = summary["answer_signals"]
    assert greedy["answer_prob"]["selective_0.5"] == 1.0 and "auroc_cots" not in greedy["judge_own"]
    assert greedy["vote_share"]["auroc"] == 0.5
    versus = summary["answer_pairs"]
    assert set(versus) == {"judge_own - answer_prob", "vote_share - answer_prob"}
    assert versus["judge_own - answer_prob"]["selective_0.5"]["diff"] == 0.0
    assert versus["vote_share - answer_prob"]["selective_0.5"]["diff"] == -0.5
    assert versus["vote_share - answer_prob"]["auroc"]["high"] < 0
    table = own_judge_summary.markdown(summary)
    assert "| judge_own | 1.000 | 1.000 |" in table  # AUROC on mirror's answers and own CoTs
    assert "| mirror_own | 0.500 | +0.250 [" in table
    # Each mode ranks its own answers: vote by its majority's share (ranking perfectly here,
    # but a quarter right); mirror, with no combined model in these records, by its weighted
    # vote share (judge 0.8 x share 0.2 where right, 0.2 x 1.0 where wrong: inverted, where
    # the judge's mean alone would rank perfectly).
    modes = summary["modes"]
    assert modes["vote"]["confidence"] == "vote_share" and modes["vote"]["auroc"] == 1.0
    assert modes["vote"]["accuracy"] == 0.25 and modes["vote"]["selective_0.5"] == 0.5
    assert modes["mirror"]["confidence"] == "weighted_vote" and modes["mirror"]["accuracy"] == 0.5
    assert modes["mirror"]["auroc"] == 0.0
    assert set(summary["mode_pairs"]) == {"mirror - vote", "answer - vote"}
    assert summary["mode_pairs"]["mirror - vote"]["selective_0.5"]["diff"] == -0.5
    assert "| mirror | weighted_vote | 0.500 | 0.000 |" in table
    # With a fitted model, mirror reports the combined confidence (here the judge's, perfect).
    fitted = [_record(s) for s in (0, 1)]
    for r in fitted:
        r["questions"]["combined"] = r["questions"]["judge_own"]
        r["cots"]["combined"] = r["cots"]["judge_own"]
    combined = own_judge_summary.summarise(fitted, resamples=50, command="c")
    assert combined["modes"]["mirror"]["confidence"] == "combined"
    versus = combined["mode_pairs"]["mirror - vote"]
    assert versus["selective_0.5"]["diff"] == 0.5 and versus["selective_0.5"]["low"] > 0
    assert versus["aurc"]["high"] < 0
    # Seeds with and without a fitted model: both confidences are named.
    mixed = own_judge_summary.summarise([fitted[0], _record(1)], resamples=0, command="c")
    assert mixed["modes"]["mirror"]["confidence"] == "combined, weighted_vote"
    greedy_table = table.split("Confidence of the greedy `answer`")[1]
    assert "| vote_share | 0.500 |" in greedy_table and "-0.500 [" in greedy_table
    # Records made before the greedy answers were ranked: the rest of the summary stands.
    older = [{k: v for k, v in _record(s).items() if k != "answers"} for s in (0, 1)]
    assert "answer_signals" not in own_judge_summary.summarise(older, resamples=5, command="c")


def test_votes_confidence_is_the_share_vote_mode_reports() -> None:
    test = [Example(f"q{i}", "test", f"What is 1 + {i}?", str(i + 1)) for i in range(3)]
    # The first CoT is the minority's: the majority's share is not the first CoT's.
    cots = [("1 + 0 = 2.", "2"), ("1 + 0 = 1.", "1"), ("1 + 0 = 1, so 1.", "1"), ("no", None)]
    cots_1 = [("1 + 1 = 2.", "2"), ("1 + 1 = 3.", "3"), ("1 + 1 = 4.", "4"), ("hm", None)]
    sampled = [
        [_judged_cot(t, a) for t, a in cots],
        [_judged_cot(t, a) for t, a in cots_1],  # a tie of 1-vote answers
        [_judged_cot("no", None)] * 4,  # nothing parsed: vote has no answer
    ]
    verdict = {"correct": 0.5, "wrong": 0.5, "uncertain": 0.0}
    judges = {"own": [[verdict] * 4] * 3}
    greedy = [Prediction("answer", e.question, "1", "1", confidence=0.5) for e in test]
    record = run_signals(TASK, test, sampled, judges, greedy, model=None).to_dict()
    record["n_test"] = len(test)
    expected = [
        vote_prediction(e.question, s).confidence for e, s in zip(test, sampled, strict=True)
    ]
    assert own_judge_summary.vote_confidence(record) == expected == [0.5, 0.25, 0.0]


def test_the_summary_refuses_records_of_other_settings() -> None:
    with pytest.raises(UserError, match="n_test 20, 60 cannot be summarised together"):
        own_judge_summary.summarise([_record(0, n=20), _record(1)], resamples=0, command="c")
    with pytest.raises(UserError, match=r"2 settings \(a, b\)"):
        own_judge_summary.summarise(
            [_record(0, key="a"), _record(1, key="b")], resamples=0, command="c"
        )
    one = own_judge_summary.summarise([_record(0, key="a")], resamples=5, command="c")
    assert one["settings_key"] == "a"


def test_a_record_is_keyed_by_its_settings_but_not_its_seed(tmp_path: Path) -> None:
    train = {"method": "mind_mirror", "explain_target": "cot", "num_cots": 2}
    recipe = recipe_from_dict({"run_dir": str(tmp_path), "train": train})

    def key(seed: int, limit: int, settings: dict[str, Any]) -> str:
        cell = own_judge.own_cell(recipe, seed, tmp_path / "cell", settings)
        return own_judge.settings_key(own_judge.cell_settings(cell, limit))

    first = key(0, 20, {})
    assert key(1, 20, {}) == first and len(first) == 10
    assert key(0, 200, {}) != first
    assert key(0, 20, {"epochs": 2.0}) != first
    # The own CoTs are sampled as the test questions are unless set.
    cell = own_judge.own_cell(recipe, 0, tmp_path / "cell", {})
    assert cell.train.own_judge is not None and cell.train.own_judge.samples is None


def test_the_cell_trains_with_mind_mirrors_tuned_optimisation(tmp_path: Path) -> None:
    recipe = recipe_from_dict({"run_dir": str(tmp_path), "train": {"method": "mind_mirror"}})
    folder = tmp_path / "protocol"
    with pytest.raises(UserError, match=r"mind_mirror's tuning is not finished .*--untuned"):
        own_judge.protocol_grid(recipe, folder)
    for name, settings in own_judge.CANDIDATES.items():
        sub = RunDir(tmp_path / "tune" / name)
        best = settings["learning_rate"] == 2e-4 and settings["epochs"] == 3
        fake_training(sub, "mind_mirror", validation=0.5 if best else 0.4, seconds=1.0)
        made = {"train_settings": {}, "records_sha256": "0" * 64}
        record = tuning_record("mind_mirror", 5, name, settings, train_record(sub), made)
        write_tuning(folder, record)
    grid = own_judge.protocol_grid(recipe, folder)
    cell = own_judge.own_cell(grid, 1, tmp_path / "cell", {})
    # Only the optimisation changes: a record's key is the same whatever seeds a command runs.
    assert grid.experiment.seeds == recipe.experiment.seeds
    assert grid.experiment.records == recipe.experiment.records
    keys = {
        own_judge.settings_key(
            own_judge.cell_settings(own_judge.own_cell(grid, s, tmp_path, {}), 9)
        )
        for s in (0, 1, 2)
    }
    assert len(keys) == 1
    # As the protocol's cells: 5 CoTs at the examples of 3 epochs of 1 CoT, stage 1 alike.
    assert (cell.train.learning_rate, cell.seed) == (2e-4, 1)
    assert cell.train.epochs == pytest.approx(3 / 5)
    judged = grid.teacher.num_cots * grid.teacher.num_evals  # every CoT's evaluations
    assert cell.train.stage1_epochs == pytest.approx(3 / judged)


def test_the_protocols_cell_of_the_same_training_is_taken_not_trained_again(
    tmp_path: Path,
) -> None:
    student = save_tiny_student("causal", tmp_path / "student", corpus())
    train = {
        "student": str(student),
        "method": "mind_mirror",
        "explain_target": "cot",
        "num_cots": 2,
        "epochs": 1,
        "batch_size": 4,
        "eval_max_new_tokens": 8,
    }
    protocol = RunDir(tmp_path / "protocol")
    write_records(protocol.records, toy_records())
    # The protocol's seed-0 cell takes its student before the grid links the cell's records.
    source = protocol.cell("mind_mirror-n2-s1")
    write_records(source.records, toy_records())
    made = recipe_from_dict({"run_dir": str(source.root), "seed": 1, "train": train})
    trained = own_judge.train(made, source, quiet=True)
    source.records.unlink()
    sub = RunDir(tmp_path / "own" / "cells" / "own_judge-s1")
    write_records(sub.records, toy_records())
    own = {**train, "own_judge": {}}
    cell = recipe_from_dict({"run_dir": str(sub.root), "seed": 1, "train": own})
    other = recipe_from_dict(
        {"run_dir": str(sub.root), "seed": 1, "train": {**own, "learning_rate": 1e-3}}
    )
    assert "learning_rate differ" in adopt_protocol_student(source, protocol.records, sub, other)
    seed_2 = cell.model_copy(update={"seed": 2})
    assert "seed differ" in adopt_protocol_student(source, protocol.records, sub, seed_2)
    other_task = cell.model_copy(
        update={"task": cell.task.model_copy(update={"val_fraction": 0.5})}
    )
    assert "task differ" in adopt_protocol_student(source, protocol.records, sub, other_task)
    write_records(protocol.records, toy_records()[:-1])
    assert "other teacher records" in adopt_protocol_student(source, protocol.records, sub, cell)
    write_records(protocol.records, toy_records())
    assert not sub.student.exists()
    said = adopt_protocol_student(source, protocol.records, sub, cell)
    assert (
        said == "own_judge-s1 takes the student of protocol/mind_mirror-n2-s1 (the same training)"
    )
    # Training the same stages again finds them finished: their settings check passes (the
    # own-CoT judge is no stage's setting, so this is the check train_cell's training meets).
    again = own_judge.train(
        cell.model_copy(update={"train": cell.train.model_copy(update={"own_judge": None})}),
        sub,
        quiet=True,
    )
    for stage in ("evaluation", "reasoning"):
        assert again["stages"][stage]["train_seconds"] == trained["stages"][stage]["train_seconds"]
    assert again["stages"]["reasoning"]["init"] == str(sub.stage("evaluation") / "best")
    assert adopted_from(sub) == "protocol/mind_mirror-n2-s1"
    assert "has a student already" in adopt_protocol_student(source, protocol.records, sub, cell)
