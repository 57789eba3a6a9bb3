"""``answer`` mode's recalibrated confidence (train.answer_confidence): the Platt fit, its file,
the abstention, and a tiny student's run that fits it, loads it, exports it and drops it."""

from __future__ import annotations

import itertools
import json
import random
import sys
from pathlib import Path
from typing import Any

import pytest

from mindmirror.config import dump_recipe, recipe_from_dict
from mindmirror.deployment.export import export
from mindmirror.errors import UserError
from mindmirror.predict import Predictor
from mindmirror.records import Record, write_records
from mindmirror.reporting.calibration import ece
from mindmirror.reporting.metrics import mode_metrics
from mindmirror.rundir import RunDir
from mindmirror.student.answer_confidence import (
    ANSWER_CONFIDENCE_FILE,
    AnswerCalibration,
    calibrated_answers,
    fit_answer_calibration,
    fit_figures,
)
from mindmirror.student.infer import Prediction, Student, infer
from mindmirror.student.model import find_student, load_student
from mindmirror.student.train import train
from mindmirror.tasks import build_task

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))


def overconfident(n: int = 300, seed: int = 0) -> tuple[list[float], list[bool]]:
    """Token probabilities between 0.85 and 1 (a distilled student's), each answer right with
    a chance that rises from 0.1 to 0.9 with its probability: ranked, but far too sure."""
    rng = random.Random(seed)
    probability = [0.85 + 0.15 * rng.random() for _ in range(n)]
    correct = [rng.random() < 0.1 + 0.8 * (p - 0.85) / 0.15 for p in probability]
    return probability, correct


def test_platt_scaling_keeps_the_order_and_makes_the_confidence_mean_what_it_says() -> None:
    probability, correct = overconfident()
    model = fit_answer_calibration(probability, correct, target_accuracy=0.7)
    scores = [model.confidence(p) for p in probability]
    # The order is kept (ranking, AURC and selective accuracy do not change) ...
    by_raw = sorted(range(len(scores)), key=lambda i: probability[i])
    assert all(scores[i] <= scores[j] for i, j in itertools.pairwise(by_raw))
    # ... and a raw ECE near 0.45 falls to a few points.
    raw, fitted = ece(probability, correct), ece(scores, correct)
    assert raw is not None and fitted is not None and raw > 0.35 and fitted < 0.1
    figures = fit_figures(model, probability, correct)
    assert figures["raw"]["auroc"] == pytest.approx(figures["calibrated"]["auroc"])
    # The threshold answers the fit's questions at the target accuracy, and not all of them.
    assert figures["accuracy_at_threshold"] >= 0.7 > figures["validation_accuracy"]
    assert 0.0 < figures["coverage_at_threshold"] < 1.0
    answered = [ok for s, ok in zip(scores, correct, strict=True) if s >= model.threshold]
    assert len(answered) / len(scores) == figures["coverage_at_threshold"]
    assert model.fitted_on == 300 and model.target_accuracy == 0.7


def test_a_fit_that_would_turn_the_order_round_or_has_one_class_is_refused() -> None:
    probability, correct = overconfident()
    with pytest.raises(UserError, match="does not mean a right answer more often"):
        fit_answer_calibration(probability, [not ok for ok in correct], 0.8)
    with pytest.raises(UserError, match=r"both right and wrong \(3 answers, 0 right\)"):
        fit_answer_calibration([0.9, 0.95, 0.99], [False] * 3, 0.8)
    # A probability of exactly 1 (it happens) has a finite logit.
    model = fit_answer_calibration([*probability, 1.0], [*correct, True], 0.8)
    assert 0.0 < model.confidence(1.0) < 1.0


def test_the_calibration_file_round_trips_and_a_bad_one_is_named(tmp_path: Path) -> None:
    model = fit_answer_calibration(*overconfident(), target_accuracy=0.8)
    path = tmp_path / ANSWER_CONFIDENCE_FILE
    model.save(path)
    assert AnswerCalibration.load(path) == model
    path.write_text("{not json")
    with pytest.raises(UserError, match=rf"{ANSWER_CONFIDENCE_FILE}: not an answer calibration"):
        AnswerCalibration.load(path)
    path.write_text(json.dumps({"slope": 1.0}))
    with pytest.raises(UserError, match="not an answer calibration"):
        AnswerCalibration.load(path)
    path.write_text(json.dumps({**json.loads(json.dumps(model.__dict__)), "slope": -2.0}))
    with pytest.raises(UserError, match="finite positive slope"):
        AnswerCalibration.load(path)


def _answer(canonical: str | None, confidence: float) -> Prediction:
    return Prediction("answer", "q", canonical, canonical, confidence)


def test_calibrated_answers_abstain_under_the_threshold_and_without_an_answer() -> None:
    model = AnswerCalibration(slope=1.0, intercept=-3.0, threshold=0.5, target_accuracy=0.8,
                              fitted_on=10)  # fmt: skip
    sure, unsure, unparsed = calibrated_answers(
        [_answer("4", 0.99), _answer("4", 0.9), _answer(None, 0.999)], model
    )
    assert sure.confidence == pytest.approx(model.confidence(0.99)) and not sure.abstained
    assert unsure.confidence < 0.5 and unsure.abstained
    assert unparsed.abstained
    # A mode that abstains reports its coverage and the accuracy of what it answered, even
    # where it answered everything (the metrics do not change shape with the data).
    preds, correct = [sure, unsure, unparsed], [True, False, False]
    metrics = mode_metrics(preds, correct, 1.0, resamples=0, abstains=True)
    assert metrics["coverage"] == pytest.approx(1 / 3) and metrics["selective_accuracy"] == 1.0
    everything = mode_metrics([sure], [True], 1.0, resamples=0, abstains=True)
    assert everything["coverage"] == 1.0
    raw = mode_metrics([_answer("4", 0.9)], [True], 1.0, resamples=0)
    assert "coverage" not in raw  # a raw answer never abstains


def test_the_fit_keeps_its_answers_so_a_new_target_only_fits_again(
    tmp_path: Path, records: list[Record], tiny_llama: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil

    from mindmirror.student import answer_confidence as module

    folder = tmp_path / "best"
    shutil.copytree(tiny_llama, folder)
    probability, correct = overconfident()
    calls = []

    def answers(final: Any, records: Any, task: Any, recipe: Any) -> Any:
        calls.append(final)  # the student loaded from folder, answering the validation split
        return ["id"] * len(correct), probability, correct

    monkeypatch.setattr(module, "validation_answers", answers)
    run = RunDir(tmp_path / "run")
    fit_path = tmp_path / "fit.json"
    trained = {"best": "student/reasoning/best", "train_seconds": 12.0}
    task = build_task(answer_recipe(run, tiny_llama, True).task)

    def fit(target: float, made: dict[str, Any] = trained) -> dict[str, Any]:
        recipe = answer_recipe(run, tiny_llama, calibrate=True, target=target)
        return module.answer_confidence_fit(folder, made, records, task, recipe, fit_path)

    first = fit(0.7)
    model = AnswerCalibration.load(folder / ANSWER_CONFIDENCE_FILE)
    assert first["threshold"] == model.threshold and len(calls) == 1
    assert first["validation_questions"] == 300 and "warning" not in first
    # Another target: the kept answers are fitted again, nothing is answered again.
    stricter = fit(0.85)
    assert len(calls) == 1 and stricter["threshold"] > first["threshold"]
    assert AnswerCalibration.load(folder / ANSWER_CONFIDENCE_FILE).target_accuracy == 0.85
    # The student trained again answers again; here its surest answer is wrong, so no
    # threshold reaches a target of 1: it abstains on everything, and says so.
    correct[probability.index(max(probability))] = False
    assert "abstains on every question" in fit(1.0, {**trained, "train_seconds": 13.0})["warning"]
    assert len(calls) == 2
    # Answers that cannot be fitted remove the earlier calibration.
    correct[:] = [False] * len(correct)
    assert "both right and wrong" in fit(0.7, {**trained, "train_seconds": 14.0})["skipped"]
    assert not (folder / ANSWER_CONFIDENCE_FILE).exists()


def answer_recipe(run: RunDir, student: Path, calibrate: bool, target: float = 0.75) -> Any:
    return recipe_from_dict(
        {
            "run_dir": str(run.root),
            "seed": 1,
            "train": {
                "student": str(student),
                "method": "standard",
                "epochs": 1,
                "batch_size": 4,
                "learning_rate": 1e-3,
                "eval_batch_size": 8,
                "eval_max_new_tokens": 8,
                "answer_confidence": {"target_accuracy": target} if calibrate else None,
            },
            "eval": {"engine": "transformers", "answer_max_tokens": 8},
        }
    )


def test_a_run_fits_loads_exports_and_drops_the_answer_calibration(
    tmp_path: Path, records: list[Record], tiny_llama: Path
) -> None:
    run = RunDir(tmp_path / "run")
    write_records(run.records, records)
    summary = train(answer_recipe(run, tiny_llama, calibrate=True), run, quiet=True)
    fit = summary["answer_confidence"]
    final = run.root / summary["final"]
    # The random student answers none of the 3 validation questions right: said, no file.
    assert fit["validation_questions"] == 3 and "both right and wrong" in fit["skipped"]
    assert not (final / ANSWER_CONFIDENCE_FILE).exists()
    fit_path = run.student / "answer_confidence_fit.json"
    assert json.loads(fit_path.read_text())["seconds"] == fit["seconds"]
    # A fit made beside the final student (as a student right half the time would get) is
    # what predict returns and abstains under.
    model = fit_answer_calibration(*overconfident(), target_accuracy=0.75)
    model.save(final / ANSWER_CONFIDENCE_FILE)
    question = records[9].question
    with Predictor.load(run.root) as predictor:
        assert predictor.student.answer_confidence == model
        (pred,) = predictor.predict([question], mode="answer")
    with Predictor.load(final) as predictor:
        predictor.student.answer_confidence = None
        (raw,) = predictor.predict([question], mode="answer")
    assert pred.confidence == pytest.approx(model.confidence(raw.confidence))
    assert pred.abstained == (pred.canonical is None or pred.confidence < model.threshold)
    assert not raw.abstained
    # It travels with an export, and the model card says so.
    exported = export(run.root, "hf", tmp_path / "hf")
    folder = exported.files[0]
    assert AnswerCalibration.load(folder / ANSWER_CONFIDENCE_FILE) == model
    assert ANSWER_CONFIDENCE_FILE in (folder / "README.md").read_text()
    # Switched off, the reused student keeps no earlier calibration; nothing is trained again.
    again = train(answer_recipe(run, tiny_llama, calibrate=False), run, quiet=True)
    assert again["answer_confidence"] is None
    assert (
        again["stages"]["reasoning"]["train_seconds"]
        == summary["stages"]["reasoning"]["train_seconds"]
    )
    assert not (final / ANSWER_CONFIDENCE_FILE).exists()


def protocol_cell(runs: Path, records: list[Record], student: Path) -> tuple[RunDir, Any]:
    """A trained protocol cell (``multi_cot-n5-s0``) under ``runs``, as the bench finds one:
    its run directory and recipe."""
    run = RunDir(runs / "cells" / "multi_cot-n5-s0")
    write_records(run.records, records)
    recipe = answer_recipe(run, student, calibrate=False)
    (run.root / "recipe.yaml").write_text(dump_recipe(recipe))
    train(recipe, run, quiet=True)
    return run, recipe


def _protocol_record(cell: str, seed: int, probability: list[float], correct: list[bool]) -> dict:
    """The part of a SVAMP protocol cell record the bench reads."""
    bits = "".join("1" if ok else "0" for ok in correct)
    answer = {"confidence": probability, "correct": bits}
    return {"cell": cell, "label": "5 CoTs", "seed": seed, "engine": "llama_cpp",
            "modes": {"answer": answer}}  # fmt: skip


def test_the_bench_fits_on_validation_and_checks_the_threshold_on_test(
    tmp_path: Path, records: list[Record], tiny_llama: Path
) -> None:
    import answer_confidence as bench  # bench/, on sys.path above

    # The generation half: a protocol cell's student answers its validation questions.
    protocol_cell(tmp_path / "runs", records, tiny_llama)
    made = bench.answer_cell("multi_cot-n5-s0", tmp_path / "runs", tmp_path / "records")
    assert len(made["ids"]) == 3 == len(made["probability"]) == len(made["correct"])
    assert (tmp_path / "records" / "cells" / "multi_cot-n5-s0.json").is_file()
    # The summary half, on an overconfident student's answers (ranked, far too sure).
    val_p, val_y = overconfident(80, seed=1)
    test_p, test_y = overconfident(200, seed=2)
    bits = "".join("1" if ok else "0" for ok in val_y)
    validation = [
        {"cell": "multi_cot-n5-s0", "probability": val_p, "correct": bits},
        {"cell": "multi_cot-n5-s1", "probability": val_p[:3], "correct": "000"},
        {"cell": "not-in-the-protocol", "probability": val_p, "correct": bits},
    ]
    protocol = [
        _protocol_record("multi_cot-n5-s0", 0, test_p, test_y),
        _protocol_record("multi_cot-n5-s1", 1, test_p, test_y),
    ]
    summary = bench.summarise(validation, protocol, "python bench/answer_confidence.py")
    fitted, skipped = summary["cells"]
    assert "both right and wrong" in skipped["skipped"]
    assert fitted["ece_raw"] > 0.35 > 0.15 > fitted["ece_calibrated"]
    assert fitted["ece_change"]["high"] < 0  # the interval excludes no change
    # A stricter target answers fewer test questions, more of them right; each lands near
    # its target on this student, whose validation and test answers are drawn alike.
    loose, strict = (fitted[f"target_{t:g}"] for t in bench.TARGETS)
    assert 0 < strict["test_coverage"] < loose["test_coverage"] < 1
    assert strict["threshold"] > loose["threshold"]
    for target, at in zip(bench.TARGETS, (loose, strict), strict=True):
        assert abs(at["test_accuracy"]["accuracy"] - target) < 0.12
        assert at["validation_coverage"] > 0
    assert summary["rows"]["5 CoTs"]["seeds"] == [0]
    table = bench.markdown(summary)
    assert "| multi_cot-n5-s0 | " in table and "| multi_cot-n5-s1 | " in table
    assert "skipped: answer calibration needs" in table
    assert "engine_gap" not in fitted  # no transformers test answers given


def test_the_bench_answers_test_again_with_transformers_and_measures_the_engines_gap(
    tmp_path: Path, records: list[Record], tiny_llama: Path
) -> None:
    import answer_confidence as bench  # bench/, on sys.path above

    # A protocol cell whose eval (its engine) answered 3 test questions: the first as
    # transformers will (the untrained student reads no answer), the others otherwise.
    run, recipe = protocol_cell(tmp_path / "runs", records, tiny_llama)
    questions = [r.question for r in records[:3]]
    student = Student(*load_student(find_student(run.root)))
    (first,) = infer(student, build_task(recipe.task), questions[:1], "answer", recipe.eval)
    engine_answers = [first.answer, "not an answer", "42"]
    rows = [
        {"id": f"t{i}", "mode": "answer", "question": q, "gold": "42", "answer": answer,
         "correct": answer == "42", "confidence": 0.5 + i / 10}
        for i, (q, answer) in enumerate(zip(questions, engine_answers, strict=True))
    ]  # fmt: skip
    rows.insert(1, {**rows[1], "mode": "vote"})  # other modes' rows are not answered
    run.evaluation.mkdir(parents=True)
    (run.evaluation / "predictions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    committed = _protocol_record("multi_cot-n5-s0", 0, [0.5, 0.7, 0.6], [False, False, True])
    committed["questions"] = ["t0", "t1", "t2"]
    # The run folder scored again since its record was committed: refused, by name.
    with pytest.raises(UserError, match=r"multi_cot-n5-s0: .* other answers"):
        bench.answer_test_cell(committed, tmp_path / "runs", tmp_path / "records")
    committed["modes"]["answer"]["confidence"] = [0.5, 0.6, 0.7]
    made = bench.answer_test_cell(committed, tmp_path / "runs", tmp_path / "records")
    assert made["ids"] == ["t0", "t1", "t2"] and made["engine"] == "transformers"
    assert made["same_answer"] == "100" and made["correct"] == "000"
    assert made["probability"][0] == pytest.approx(first.confidence, abs=1e-6)
    assert (tmp_path / "records" / "engines" / "multi_cot-n5-s0.json").is_file()

    # The gap, on an overconfident student: the same answers and probabilities give none;
    # probabilities moved towards 1 on the right answers make the calibrated ECE differ.
    val_p, val_y = overconfident(80, seed=1)
    test_p, test_y = overconfident(200, seed=2)
    validation = [
        {"cell": "c", "probability": val_p, "correct": "".join(map(str, map(int, val_y)))}
    ]
    protocol = [_protocol_record("c", 0, test_p, test_y) | {"questions": list(range(200))}]
    same = {"cell": "c", "engine": "transformers", "ids": list(range(200)),
            "probability": test_p, "correct": protocol[0]["modes"]["answer"]["correct"],
            "same_answer": "1" * 200}  # fmt: skip
    gap = bench.summarise(validation, protocol, "cmd", [same])["cells"][0]["engine_gap"]
    assert gap["engines"] == ["llama_cpp", "transformers"]
    assert gap["same_answer"] == gap["same_correct"] == 1.0
    assert gap["probability_gap_max"] == 0.0 and gap["ece_calibrated_change"]["diff"] == 0.0
    assert gap["abstention_differs"] == {f"{t:g}": 0 for t in bench.TARGETS}
    moved = [min(1.0, p + 0.05) if ok else p for p, ok in zip(test_p, test_y, strict=True)]
    other = same | {"probability": moved, "same_answer": "0" + "1" * 199}
    summary = bench.summarise(validation, protocol, "cmd", [other])
    gap = summary["cells"][0]["engine_gap"]
    assert gap["same_answer"] == pytest.approx(199 / 200)
    assert 0 < gap["probability_gap_mean"] <= gap["probability_gap_max"] <= 0.05 + 1e-9
    assert gap["ece_calibrated"][0] != gap["ece_calibrated"][1]
    # Right answers made surer: some of them cross a threshold.
    assert 0 < max(gap["abstention_differs"].values()) <= sum(test_y)
    assert "| c | 0.995 | 1.000 |" in bench.engine_markdown(summary)
    with pytest.raises(UserError, match="other questions"):
        bench.summarise(validation, protocol, "cmd", [other | {"ids": [0]}])


def test_the_bench_finds_what_is_left_and_skips_the_engine_check_of_a_transformers_cell(
    tmp_path: Path,
) -> None:
    """A cell scored through transformers (the batching-fix row) has no other engine to
    compare with: answering its test questions again through transformers would only cost."""
    import answer_confidence as bench  # bench/, on sys.path above

    runs, folder = tmp_path / "runs", tmp_path / "records"
    protocol = [
        {"cell": "a", "engine": "llama_cpp"},
        {"cell": "b", "engine": "transformers"},
        {"cell": "c", "engine": "llama_cpp"},
    ]
    for cell in ("a", "b"):
        (runs / "cells" / cell / "student").mkdir(parents=True)
        (runs / "cells" / cell / "student" / "train.json").write_text("{}")
        (runs / "cells" / cell / "eval").mkdir()
        (runs / "cells" / cell / "eval" / "predictions.jsonl").write_text("")
    work = bench.missing_work(protocol, runs, folder)
    assert [(kind, r["cell"]) for kind, r in work] == [
        ("validation", "a"),
        ("test", "a"),
        ("validation", "b"),
    ]
    (folder / "cells").mkdir(parents=True)
    (folder / "cells" / "a.json").write_text("{}")
    (folder / "engines").mkdir()
    (folder / "engines" / "a.json").write_text("{}")
    assert [(k, r["cell"]) for k, r in bench.missing_work(protocol, runs, folder)] == [
        ("validation", "b")
    ]
