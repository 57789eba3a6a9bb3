"""The own-CoT judge stage (train.own_judge) on a tiny student: sampling, labels, rows, the
separate judge, the combined confidence, and what predict then uses."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from mindmirror.config import recipe_from_dict
from mindmirror.embedded import EMBEDDED_MODEL
from mindmirror.errors import UserError
from mindmirror.predict import Predictor
from mindmirror.records import Record, read_records, write_records
from mindmirror.rundir import RunDir
from mindmirror.student.confidence import CONFIDENCE_FILE, ConfidenceModel
from mindmirror.student.formats import CRITIQUE, VERDICT
from mindmirror.student.infer import infer
from mindmirror.student.loading import judge_folder
from mindmirror.student.own_confidence import split_validation
from mindmirror.student.own_judge import sampling_settings
from mindmirror.student.train import train
from mindmirror.teacher.judge_cots import cot_judge
from tests.student.conftest import evaluation


def own_recipe(run: RunDir, student: Path, **own: Any) -> Any:
    settings = {
        "student": str(student),
        "method": "mind_mirror",
        "explain_target": "cot",
        "num_cots": 2,
        "epochs": 1,
        "batch_size": 4,
        "learning_rate": 1e-3,
        "eval_batch_size": 8,
        "eval_max_new_tokens": 8,
        "own_judge": {"target_accuracy": 0.6, **own},
    }
    return recipe_from_dict(
        {
            "run_dir": str(run.root),
            "seed": 1,
            "train": settings,
            "eval": {
                "engine": "transformers",
                "num_samples": 2,
                "max_new_tokens": 12,
                "answer_max_tokens": 8,
            },
        }
    )


def without_own_judge(recipe: Any) -> Any:
    """The same recipe with the own-CoT judge off (its stages train the same)."""
    return recipe.model_copy(update={"train": recipe.train.model_copy(update={"own_judge": None})})


def test_the_own_cots_are_sampled_as_mirror_samples_unless_set(tmp_path: Path) -> None:
    run = RunDir(tmp_path / "run")
    recipe = own_recipe(run, tmp_path / "student")
    recipe = recipe.model_copy(
        update={
            "eval": recipe.eval.model_copy(
                update={"num_samples": 3, "temperature": 0.5, "top_p": 0.9, "max_new_tokens": 40}
            )
        }
    )
    final = run.root / "student" / "reasoning" / "best"
    settings = sampling_settings(recipe, final, {"train_seconds": 12.5})
    assert settings["samples"] == 3 and settings["temperature"] == 0.5
    assert settings["top_p"] == 0.9 and settings["max_new_tokens"] == 40
    # The final stage's training is part of what decides the samples.
    assert settings["student_train_seconds"] == 12.5
    assert sampling_settings(recipe, final, {"train_seconds": 13.0}) != settings
    own = recipe.train.own_judge
    assert own is not None
    train_cfg = recipe.train.model_copy(
        update={"own_judge": own.model_copy(update={"samples": 6, "temperature": 1.0})}
    )
    mine = sampling_settings(recipe.model_copy(update={"train": train_cfg}), final, {})
    assert mine["samples"] == 6 and mine["temperature"] == 1.0 and mine["top_p"] == 0.9


def test_the_validation_split_is_seeded_and_disjoint(tmp_path: Path) -> None:
    recipe = own_recipe(RunDir(tmp_path / "run"), tmp_path / "student")
    samples = [{"id": f"v{i}", "split": "validation"} for i in range(7) for _ in range(2)]
    samples += [{"id": "t0", "split": "train"}]
    judge, fit = split_validation(samples, recipe)
    assert len(judge) == 4 and len(fit) == 3 and not set(judge) & set(fit)
    assert set(judge) | set(fit) == {f"v{i}" for i in range(7)}
    assert split_validation(samples, recipe) == (judge, fit)
    seeds = [recipe.model_copy(update={"seed": seed}) for seed in range(2, 6)]
    assert any(split_validation(samples, other)[0] != judge for other in seeds)
    own = recipe.train.own_judge
    assert own is not None
    unsplit = recipe.train.model_copy(
        update={"own_judge": own.model_copy(update={"split_validation": False})}
    )
    every = [f"v{i}" for i in range(7)]
    assert split_validation(samples, recipe.model_copy(update={"train": unsplit})) == (
        every,
        every,
    )


def test_own_judge_needs_a_student_that_writes_and_judges_cots() -> None:
    with pytest.raises(UserError, match="own_judge needs"):
        recipe_from_dict({"train": {"method": "multi_cot", "own_judge": {}}})
    with pytest.raises(UserError, match="own_judge needs"):
        recipe_from_dict({"train": {"method": "mind_mirror", "own_judge": {}}})
    assert recipe_from_dict({}).train.own_judge is None


def test_own_judge_samples_labels_and_trains_a_separate_judge(
    tmp_path: Path, records: list[Record], tiny_llama: Path
) -> None:
    run = RunDir(tmp_path / "run")
    write_records(run.records, records)
    summary = train(own_recipe(run, tiny_llama), run, quiet=True)
    own = summary["stages"]["own_judge"]
    # The answering student is the reasoning stage's; the judge is a new checkpoint.
    assert summary["final"] == summary["stages"]["reasoning"]["best"]
    assert own["best"] == "student/own_judge/best"
    assert own["init"].endswith("student/evaluation/best")
    assert own["label_source"] == "gold" and own["mix"] == "own"
    samples = [json.loads(x) for x in (run.stage("own_cots") / "samples.jsonl").open()]
    # 8 train + 3 validation questions, 2 CoTs each, every one labelled against gold.
    assert len(samples) == 22 and {s["split"] for s in samples} == {"train", "validation"}
    assert all(isinstance(s["correct"], bool) and s["logprob"] is not None for s in samples)
    assert own["labels"]["train"]["cots"] == 16
    assert own["rows"]["by_prefix"] == {VERDICT: own["rows"]["rows"]}
    assert judge_folder(run.root) == run.root / "student" / "own_judge" / "best"
    # The judge is chosen on 2 of the 3 validation questions, the confidence fitted on the 3rd.
    assert own["judge_chosen_on"] == 2 and own["validation_items"] <= 4
    assert own["confidence"]["validation_questions"] == 1
    # The random student is never right: nothing to calibrate on, said so, mirror unchanged.
    assert "skipped" in own["confidence"]
    assert not (run.root / own["best"] / CONFIDENCE_FILE).exists()
    # A second run pays nothing twice: the samples are read back, the stage is reused.
    again = train(own_recipe(run, tiny_llama), run, quiet=True)
    assert again["stages"]["own_judge"]["train_seconds"] == own["train_seconds"]
    assert again["stages"]["own_judge"]["sampling_seconds"] == own["sampling_seconds"]
    # The final student trained again in place: its old CoTs are not reused.
    result_path = run.stage("reasoning") / "result.json"
    result = json.loads(result_path.read_text())
    result_path.write_text(json.dumps({**result, "train_seconds": result["train_seconds"] + 1}))
    with pytest.raises(UserError, match="own_judge was trained with other settings"):
        train(own_recipe(run, tiny_llama), run, quiet=True)
    meta = json.loads((run.stage("own_cots") / "samples.json").read_text())
    assert meta["settings"]["student_train_seconds"] == result["train_seconds"] + 1
    assert meta["seconds"] != own["sampling_seconds"]


def test_mixed_labels_fit_a_confidence_that_predict_returns(
    tmp_path: Path, records: list[Record], tiny_llama: Path
) -> None:
    run = RunDir(tmp_path / "run")
    # Six validation questions: the judge is chosen on three, the confidence fitted on three.
    more = [r.model_copy(update={"id": f"{r.id}-b"}) for r in records if r.split == "validation"]
    records = records + more
    write_records(run.records, records)
    recipe = own_recipe(run, tiny_llama, mix="own+teacher")
    # The stages first: the kept samples name the final student's training.
    train(without_own_judge(recipe), run, quiet=True)
    trained = json.loads((run.stage("reasoning") / "result.json").read_text())
    _, fit_ids = split_validation([{"id": r.id, "split": r.split} for r in records], recipe)
    # Own CoTs as a student that is sometimes right would write them (kept samples are
    # reused); of the questions the confidence is fitted on, one always right, one never.
    fixed = {fit_ids[0]: [True, True], fit_ids[1]: [False, False]}
    folder = run.stage("own_cots")
    folder.mkdir(parents=True)
    rows = []
    for k, record in enumerate(r for r in records if r.split in ("train", "validation")):
        right, wrong = record.cots[0].text, "Tom has 2 apples. The answer is (1 + 1)."
        for j, ok in enumerate(fixed.get(record.id, [True, False] if k % 3 else [False, False])):
            text, answer = (right, record.cots[0].answer) if ok else (wrong, "(1 + 1)")
            rows.append(
                {"id": record.id, "split": record.split, "sample": j, "text": text,
                 "logprob": -0.5 if ok else -2.0, "answer": answer, "correct": ok}
            )  # fmt: skip
    (folder / "samples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    final = run.root / "student" / "reasoning" / "best"
    meta = {"settings": sampling_settings(recipe, final, trained), "seconds": 1.5}
    (folder / "samples.json").write_text(json.dumps(meta))
    summary = train(recipe, run, quiet=True)
    own = summary["stages"]["own_judge"]
    assert own["sampling_seconds"] == 1.5
    # Own rows (2 per train question) plus the teacher-CoT verdict rows.
    assert own["rows"]["evals_used"] > 16
    # The judge is chosen on the own CoTs of one half, the confidence fitted on the other.
    assert own["judge_chosen_on"] == 3 and own["validation_items"] == 6
    fit = own["confidence"]
    assert "skipped" not in fit and 0.0 <= fit["validation_brier"] <= 1.0
    assert fit["validation_questions"] == 3 and fit["figures"].startswith("in-sample for the fit")
    model = ConfidenceModel.load(run.root / own["best"] / CONFIDENCE_FILE)
    assert model.features[0] == "judge" and model.fitted_on == 3 and model.samples == 2
    with Predictor.load(run.root) as predictor:
        assert predictor.student.confidence == model
        (pred,) = predictor.predict([records[9].question], mode="mirror")
        # The confidence is refused for CoTs sampled another number at a time.
        other = predictor.eval.model_copy(update={"num_samples": 3})
        with pytest.raises(UserError, match=r"fitted on 2 sampled CoTs .* eval\.num_samples is 3"):
            infer(predictor.student, predictor.task, ["q"], "mirror", other)
    assert 0.0 <= pred.confidence <= 1.0
    assert pred.abstained == (pred.canonical is None or pred.confidence < model.threshold)
    assert all(s.logprob is not None for s in pred.samples)
    # Another target accuracy refits the threshold only: the judge is not trained again.
    stricter = own_recipe(run, tiny_llama, mix="own+teacher", target_accuracy=0.95)
    again = train(stricter, run, quiet=True)["stages"]["own_judge"]
    assert again["train_seconds"] == own["train_seconds"]
    assert again["confidence"]["target_accuracy"] == 0.95
    refit = ConfidenceModel.load(run.root / own["best"] / CONFIDENCE_FILE)
    assert refit.target_accuracy == 0.95 and refit.threshold >= model.threshold


def test_choosing_the_own_judge_on_auroc_needs_both_kinds_of_own_cots(
    tmp_path: Path, records: list[Record], tiny_llama: Path
) -> None:
    run = RunDir(tmp_path / "run")
    write_records(run.records, records)
    recipe = own_recipe(run, tiny_llama)
    recipe = recipe.model_copy(
        update={"train": recipe.train.model_copy(update={"verdict_metric": "auroc"})}
    )
    # The random student is never right: its own validation CoTs are all wrong.
    with pytest.raises(UserError, match=r"all wrong: train\.verdict_metric auroc"):
        train(recipe, run, quiet=True)


def teacher_labelled(recipe: Any, **teacher: Any) -> Any:
    """The recipe with the own CoTs labelled by the teacher (``teacher`` settings changed)."""
    own = recipe.train.own_judge.model_copy(update={"labels": "teacher"})
    return recipe.model_copy(
        update={
            "train": recipe.train.model_copy(update={"own_judge": own}),
            "teacher": recipe.teacher.model_copy(update=teacher),
        }
    )


def test_teacher_labels_need_a_teacher_that_can_judge(
    tmp_path: Path, records: list[Record], tiny_llama: Path
) -> None:
    train_cfg = {
        "method": "mind_mirror",
        "explain_target": "cot",
        "own_judge": {"labels": "teacher"},
    }
    imported = {"backend": "import", "import": {"format": "jsonl", "path": "cots.jsonl"}}
    with pytest.raises(UserError, match=r"set teacher\.import\.evaluate_with"):
        recipe_from_dict({"teacher": imported, "train": train_cfg})
    with pytest.raises(UserError, match=r"num_evals >= 1"):
        recipe_from_dict({"teacher": {"num_evals": 0}, "train": train_cfg})
    run = RunDir(tmp_path / "run")
    write_records(run.records, records)
    # Without a teacher to ask, nothing is trained before saying so.
    with pytest.raises(UserError, match="needs the teacher to judge the student's CoTs"):
        train(teacher_labelled(own_recipe(run, tiny_llama)), run, quiet=True)
    assert not run.student.exists()


def test_teacher_labels_train_the_judge_on_the_teachers_evaluations(
    tmp_path: Path, records: list[Record], tiny_llama: Path
) -> None:
    run = RunDir(tmp_path / "run")
    write_records(run.records, records)
    asked: list[Record] = []

    def says_wrong(cots: list[Record]) -> tuple[list[Record], dict[str, Any]]:
        # A stand-in for the teacher (tests/teacher/test_judge_cots.py asks the real one).
        asked.extend(cots)
        judged = [
            r.model_copy(
                update={
                    "cots": [
                        c.model_copy(update={"evaluations": [evaluation("wrong")]}) for c in r.cots
                    ]
                }
            )
            for r in cots
        ]
        return judged, {"samples_new": sum(len(r.cots) for r in cots)}

    recipe = teacher_labelled(own_recipe(run, tiny_llama))
    own = train(recipe, run, quiet=True, judge_cots=says_wrong)["stages"]["own_judge"]
    assert own["label_source"] == "teacher"
    # Asked about the train questions' own CoTs, under their questions' ids.
    train_ids = {r.id for r in records if r.split == "train"}
    assert {r.split for r in asked} == {"train"} and {r.id for r in asked} <= train_ids
    samples = [json.loads(x) for x in (run.stage("own_cots") / "samples.jsonl").open()]
    judged = [s for s in samples if s["split"] == "train" and s["text"].strip()]
    assert [c.text for r in asked for c in r.cots] == [s["text"] for s in judged]
    # Each evaluation gives a verdict and a critique row, as in the self-evaluation stage.
    n = len(judged)
    assert own["rows"]["by_prefix"] == {VERDICT: n, CRITIQUE: n}
    assert own["label_usage"]["samples_new"] == n and own["label_usage"]["seconds"] >= 0
    # "wrong" agrees with gold on the CoTs that are wrong.
    wrong = sum(not s["correct"] for s in judged) / n
    assert own["teacher_labels"]["agreement_with_gold"] == pytest.approx(wrong)
    assert own["teacher_labels"]["cots"] == n and own["teacher_labels"]["parsed_share"] == 1.0
    # The judged CoTs are kept as records: a second run asks the teacher nothing.
    assert len(read_records(run.stage("own_cots") / "judged.jsonl")) == len(asked)
    before = len(asked)
    again = train(recipe, run, quiet=True, judge_cots=says_wrong)["stages"]["own_judge"]
    assert len(asked) == before and again["label_usage"] == own["label_usage"]
    assert again["train_seconds"] == own["train_seconds"]
    # Another teacher's verdicts make another judge: the stage is not silently reused.
    other = teacher_labelled(own_recipe(run, tiny_llama), model="another-teacher")
    with pytest.raises(UserError, match="own_judge was trained with other settings"):
        train(other, run, quiet=True, judge_cots=says_wrong)


@pytest.mark.server
def test_the_live_teacher_labels_the_students_own_cots(
    tmp_path: Path, records: list[Record], tiny_llama: Path, llama_url: str
) -> None:
    run = RunDir(tmp_path / "run")
    write_records(run.records, records)
    recipe = teacher_labelled(
        own_recipe(run, tiny_llama),
        backend="openai",
        base_url=llama_url,
        model=EMBEDDED_MODEL,
        num_evals=1,
        eval_max_tokens=32,
        few_shot=1,
        timeout_s=120,
    )
    # The generated word problems: few-shot examples without a dataset on disk.
    recipe = recipe.model_copy(update={"task": recipe.task.model_copy(update={"name": "arith"})})
    own = train(recipe, run, quiet=True, judge_cots=cot_judge(recipe, run))["stages"]["own_judge"]
    samples = [json.loads(x) for x in (run.stage("own_cots") / "samples.jsonl").open()]
    judged = sum(s["split"] == "train" and bool(s["text"].strip()) for s in samples)
    labels = own["teacher_labels"]
    assert labels["cots"] == labels["evaluations"] == judged
    assert own["label_usage"]["samples_new"] == judged
    assert own["rows"]["evals_used"] == round(labels["parsed_share"] * judged) > 0
    assert labels["agreement_with_gold"] is not None
