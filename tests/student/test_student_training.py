"""Training end to end on tiny random students: outputs, both stages, selection, resume, LoRA."""

from __future__ import annotations

import gc
import json
import sys
import weakref
from pathlib import Path
from typing import Any

import pytest
import torch

from mindmirror.config import recipe_from_dict
from mindmirror.errors import UserError
from mindmirror.records import Record, write_records
from mindmirror.rundir import RunDir
from mindmirror.student.model import find_student, load_student
from mindmirror.student.peak_memory import reset_peak
from mindmirror.student.train import train
from mindmirror.student.trainer import StudentTrainer, checkpoint_seconds, evaluation_steps
from mindmirror.student.validate import (
    ValItem,
    balanced_agreement,
    judge_rankings,
    validation_items,
)


def make_run(tmp_path: Path, records: list[Record]) -> RunDir:
    run = RunDir(tmp_path / "run")
    write_records(run.records, records)
    return run


def recipe(run: RunDir, student: Path, **train: Any) -> Any:
    settings = {
        "student": str(student),
        "epochs": 1,
        "batch_size": 4,
        "learning_rate": 1e-3,
        "eval_batch_size": 8,
        "eval_max_new_tokens": 8,
        "logging_steps": 1,
        **train,
    }
    return recipe_from_dict({"run_dir": str(run.root), "seed": 1, "train": settings})


def test_step_by_step_on_tiny_t5_leaves_a_loadable_student(tmp_path, records, tiny_t5) -> None:
    run = make_run(tmp_path, records)
    summary = train(recipe(run, tiny_t5, method="step_by_step"), run, quiet=True)
    stage = summary["stages"]["reasoning"]
    assert summary["final"] == "student/reasoning/best"
    assert stage["rows"]["rows"] == 16 and stage["validation_items"] == 3
    assert set(summary["versions"]) >= {"torch", "transformers", "peft", "accelerate"}
    assert "method: step_by_step" in summary["recipe"]
    saved = json.loads((run.student / "train.json").read_text())
    assert saved["final"] == summary["final"]
    curve = json.loads((run.stage("reasoning") / "curve.json").read_text())
    assert curve and "eval_accuracy" in curve[-1]
    model, _, kind = load_student(run.root)
    assert kind == "seq2seq" and model.config.is_encoder_decoder
    assert find_student(run.root) == run.stage("reasoning") / "best"
    # A finished stage is not trained again.
    again = train(recipe(run, tiny_t5, method="step_by_step"), run, quiet=True)
    assert again["stages"]["reasoning"]["train_seconds"] == stage["train_seconds"]
    # Other settings never silently reuse (or resume) what was trained before.
    with pytest.raises(UserError, match=r"other settings \(epochs differ\)"):
        train(recipe(run, tiny_t5, method="step_by_step", epochs=2), run, quiet=True)
    # ... but a self-evaluation length it never used does not make it stale.
    reused = train(recipe(run, tiny_t5, method="step_by_step", stage1_epochs=2), run, quiet=True)
    assert reused["stages"]["reasoning"]["train_seconds"] == stage["train_seconds"]


def test_mind_mirror_trains_two_stages_second_from_first(tmp_path, records, tiny_llama) -> None:
    run = make_run(tmp_path, records)
    summary = train(recipe(run, tiny_llama, method="mind_mirror", num_cots=2), run, quiet=True)
    first, second = summary["stages"]["evaluation"], summary["stages"]["reasoning"]
    assert "eval_verdict_agreement" in first["best_metric"]
    assert "eval_accuracy" in second["best_metric"]
    assert second["init"] == str(run.root / first["best"])
    if sys.platform == "linux":  # each stage's own peak, with the model it trained
        scope = "stage" if reset_peak() else "process"  # a sandbox may refuse the reset
        assert first["peak_rss_scope"] == second["peak_rss_scope"] == scope
        assert first["peak_rss_mb"] > 0 and second["peak_rss_mb"] > 0
    # Stage 1 judges every CoT (3 per question, 5 evaluations) whatever num_cots says.
    assert first["rows"]["by_prefix"] == {"verdict": 40, "critique": 40}
    # Batches count (question, CoT) examples: 2 rows (verdict + critique) each.
    assert first["batch_rows"] == 2 * 4 and second["batch_rows"] == 2 * 4
    info = json.loads((run.stage("evaluation") / "best" / "student.json").read_text())
    assert info["kind"] == "causal" and info["stage"] == "evaluation"
    _, tokenizer, kind = load_student(run.root)
    assert kind == "causal" and tokenizer.padding_side == "left"


def test_best_checkpoint_is_chosen_on_validation_never_test(
    tmp_path, records, tiny_t5, monkeypatch
) -> None:
    # Test questions are never validation items.
    assert all(
        "toy-test" not in item.input for item in validation_items(records, "reasoning", limit=None)
    )
    # Validation scores that go up then down: the checkpoint with the best one must win.
    scores = iter([0.25, 0.75, 0.5])
    seen: list[list[str]] = []

    def fake_score(stage, task, items, outputs):  # the trainer's scorer, replaced
        seen.append([item.input for item in items])
        hits = round(next(scores) * 4)
        return hits, 4, 4

    monkeypatch.setattr("mindmirror.student.trainer.score", fake_score)
    run = make_run(tmp_path, records)
    summary = train(
        recipe(run, tiny_t5, method="standard", max_steps=6, eval_steps=2, keep_checkpoints=True),
        run,
        quiet=True,
    )
    stage = summary["stages"]["reasoning"]
    assert stage["best_metric"]["eval_accuracy"] == 0.75
    assert stage["best_checkpoint"].endswith("checkpoint-4") and stage["best_step"] == 4
    validation = {r.question for r in records if r.split == "validation"}
    assert all(any(q in text for q in validation) for items in seen for text in items)
    curve = json.loads((run.stage("reasoning") / "curve.json").read_text())
    assert [(p["step"], p["eval_accuracy"]) for p in curve] == [(2, 0.25), (4, 0.75), (6, 0.5)]
    best = load_student(run.root)[0]
    chosen = load_student(stage["best_checkpoint"])[0]
    for (name, a), b in zip(best.named_parameters(), chosen.parameters(), strict=True):
        assert torch.equal(a, b), name


@pytest.mark.parametrize(
    ("method", "epochs"), [("standard", 3.0), ("step_by_step", 1.0), ("multi_cot", 0.5)]
)
def test_every_stage_validates_as_often_whatever_its_length(
    tmp_path, records, tiny_llama, method, epochs
) -> None:
    # Issue 23, point 2: per epoch, the 3-epoch cells chose among 3 checkpoints and the
    # fractional-epoch cells had one, with no choice. `evaluations` gives each the same count.
    run = make_run(tmp_path, records)
    settings = {"method": method, "epochs": epochs, "num_cots": 2, "evaluations": 3}
    summary = train(recipe(run, tiny_llama, batch_size=1, **settings), run, quiet=True)
    curve = json.loads((run.stage("reasoning") / "curve.json").read_text())
    steps = summary["stages"]["reasoning"]["steps"]
    assert [point["step"] for point in curve] == evaluation_steps(steps, 3)
    assert len(curve) == 3 and curve[-1]["step"] == steps


def test_evaluation_steps_are_evenly_spaced_and_end_the_stage() -> None:
    assert evaluation_steps(10, 3) == [4, 7, 10]
    assert evaluation_steps(9, 3) == [3, 6, 9]
    assert evaluation_steps(5, 4) == [2, 3, 4, 5]
    assert evaluation_steps(2, 3) == [1, 2]
    with pytest.raises(UserError, match=r"train.eval_steps or train.evaluations, not both"):
        recipe(RunDir(Path("unused")), Path("unused"), eval_steps=2, evaluations=3)


def test_self_evaluation_stage_reports_its_judge_beside_length_and_chooses_on_auroc(
    tmp_path, records, tiny_llama
) -> None:
    # Issue 23, point 5: raw agreement rewards answering "correct" on mostly-correct CoTs, and
    # wrong CoTs are longer; the stage logs balanced agreement, its P(correct) AUROC and CoT
    # length's AUROC, and can choose its checkpoint on the AUROC.
    run = make_run(tmp_path, records)
    settings = {"method": "mind_mirror", "num_cots": 2, "verdict_metric": "auroc"}
    summary = train(recipe(run, tiny_llama, **settings), run, quiet=True)
    stage = summary["stages"]["evaluation"]
    assert list(stage["best_metric"]) == ["eval_verdict_auroc"]
    curve = json.loads((run.stage("evaluation") / "curve.json").read_text())
    for point in curve:
        assert 0.0 <= point["eval_verdict_balanced_agreement"] <= 1.0
        assert 0.0 <= point["eval_verdict_auroc"] <= 1.0
        assert 0.0 <= point["eval_length_auroc"] <= 1.0
    assert stage["best_metric"]["eval_verdict_auroc"] == max(p["eval_verdict_auroc"] for p in curve)


def test_choosing_on_auroc_without_both_verdicts_is_a_clear_error(
    tmp_path, records, tiny_llama
) -> None:
    for record in records:
        if record.split == "validation":
            record.cots = [c for c in record.cots if c.parsed]
            for cot in record.cots:
                cot.evaluations = cot.evaluations[:1]
    run = make_run(tmp_path, records)
    settings = {"method": "mind_mirror", "num_cots": 2, "verdict_metric": "auroc"}
    with pytest.raises(UserError, match="verdict_metric auroc needs validation CoTs judged both"):
        train(recipe(run, tiny_llama, **settings), run, quiet=True)


def test_judge_metrics_see_through_class_imbalance_and_length() -> None:
    references = ["correct"] * 7 + ["wrong"] * 3
    always_correct = ["correct"] * 10
    assert balanced_agreement(always_correct, references) == 0.5
    assert balanced_agreement(references, references) == 1.0
    items = [ValItem("x", r, cot="word " * (5 if r == "correct" else 9)) for r in references]
    # Wrong CoTs are longer here: length alone ranks perfectly, a constant judge at chance.
    ranked = judge_rankings(items, [0.9] * 10, [5 if r == "correct" else 9 for r in references])
    assert ranked == {"verdict_auroc": 0.5, "length_auroc": 1.0}


def test_interrupted_training_resumes_from_its_last_checkpoint(
    tmp_path, records, tiny_llama, monkeypatch
) -> None:
    run = make_run(tmp_path, records)
    settings = {"method": "multi_cot", "max_steps": 6, "eval_steps": 2}
    original = StudentTrainer.training_step

    def dies_at_step_5(self, model, inputs, num_items_in_batch=None):
        if self.state.global_step == 4:
            raise KeyboardInterrupt  # what a kill leaves behind: checkpoints up to step 4
        return original(self, model, inputs, num_items_in_batch)

    monkeypatch.setattr(StudentTrainer, "training_step", dies_at_step_5)
    with pytest.raises(KeyboardInterrupt):
        train(recipe(run, tiny_llama, **settings), run, quiet=True)
    checkpoints = sorted(p.name for p in (run.stage("reasoning") / "checkpoints").iterdir())
    assert checkpoints == ["checkpoint-2", "checkpoint-4"]
    assert not (run.student / "train.json").exists()
    # Each checkpoint keeps the seconds behind it, so the resumed stage counts them too.
    before = checkpoint_seconds(run.stage("reasoning") / "checkpoints" / "checkpoint-4")
    assert before is not None and before > 0
    assert before > checkpoint_seconds(run.stage("reasoning") / "checkpoints" / "checkpoint-2")
    monkeypatch.setattr(StudentTrainer, "training_step", original)
    summary = train(recipe(run, tiny_llama, **settings), run, quiet=True)
    stage = summary["stages"]["reasoning"]
    assert stage["resumed_from"].endswith("checkpoint-4")
    assert stage["train_seconds"] > before and stage["train_seconds_complete"]
    assert stage["steps"] == 6
    # Finished: the checkpoints are deleted (keep_checkpoints is off), the best student stays.
    assert not list((run.stage("reasoning") / "checkpoints").glob("checkpoint-*"))
    assert stage["best_checkpoint"] is None and stage["best_step"] in (2, 4, 6)
    assert load_student(run.root)[0] is not None
    curve = json.loads((run.stage("reasoning") / "curve.json").read_text())
    assert [p["step"] for p in curve] == [2, 4, 6]


def test_a_checkpoint_from_before_the_seconds_were_kept_says_so(tmp_path) -> None:
    assert checkpoint_seconds(None) == 0.0  # a fresh stage: nothing before it
    assert checkpoint_seconds(tmp_path) is None  # unknown, not zero


def test_lora_with_bf16_autocast_saves_a_merged_plain_student(
    tmp_path, records, tiny_llama
) -> None:
    run = make_run(tmp_path, records)
    settings = {
        "method": "mind_mirror_joint",
        "lora": True,
        "lora_r": 4,
        "precision": "bf16_force",  # bf16 even on a CPU that only emulates it
        "max_steps": 2,
    }
    summary = train(recipe(run, tiny_llama, **settings), run, quiet=True)
    best = run.root / summary["final"]
    assert summary["final"] == "student/joint/best"
    assert not (best / "adapter_config.json").exists()
    model, _, _ = load_student(best)
    assert not any("lora" in name for name, _ in model.named_parameters())
    base, _, _ = load_student(tiny_llama)
    changed = [
        not torch.equal(a, b) for a, b in zip(model.parameters(), base.parameters(), strict=True)
    ]
    assert any(changed)


def test_gradient_checkpointing_recomputes_without_changing_what_is_learnt(
    tmp_path, records, tiny_llama, monkeypatch
) -> None:
    import transformers.modeling_utils

    calls = []
    original = transformers.modeling_utils.checkpoint

    def counted(*args: Any, **kwargs: Any) -> Any:  # torch's checkpoint, counted
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(transformers.modeling_utils, "checkpoint", counted)
    trained = {}
    for on in (False, True):
        run = make_run(tmp_path / str(on), records)
        settings = {"method": "multi_cot", "max_steps": 2, "gradient_checkpointing": on}
        summary = train(recipe(run, tiny_llama, **settings), run, quiet=True)
        trained[on] = load_student(run.root / summary["final"])[0]
        assert bool(calls) is on  # every layer recomputed in the backward pass, only when asked
    # It cannot change a result, so a finished run is reused with it switched off.
    again = train(recipe(run, tiny_llama, **{**settings, "gradient_checkpointing": False}), run)
    assert (
        again["stages"]["reasoning"]["train_seconds"]
        == summary["stages"]["reasoning"]["train_seconds"]
    )
    for (name, a), b in zip(
        trained[False].named_parameters(), trained[True].parameters(), strict=True
    ):
        torch.testing.assert_close(a, b, msg=name)
    base = load_student(tiny_llama)[0]

    def moved(model: torch.nn.Module) -> bool:
        pairs = zip(model.parameters(), base.parameters(), strict=True)
        return any(not torch.equal(a, b) for a, b in pairs)

    assert moved(trained[True])
    # Through the LoRA wrapper too, and the adapters still learn.
    before = len(calls)
    run = make_run(tmp_path / "lora", records)
    settings = {"method": "multi_cot", "max_steps": 2, "lora": True, "lora_r": 4}
    settings["gradient_checkpointing"] = True
    summary = train(recipe(run, tiny_llama, **settings), run, quiet=True)
    assert len(calls) > before and moved(load_student(run.root / summary["final"])[0])


def test_no_rows_or_no_validation_is_one_clear_user_error(tmp_path, records, tiny_t5) -> None:
    run = make_run(tmp_path, [r for r in records if r.split != "validation"])
    with pytest.raises(UserError, match="no validation"):
        train(recipe(run, tiny_t5, method="step_by_step"), run, quiet=True)
    run = make_run(tmp_path / "b", [r for r in records if r.split != "train"])
    with pytest.raises(UserError, match="no training rows"):
        train(recipe(run, tiny_t5, method="step_by_step"), run, quiet=True)
    with pytest.raises(UserError, match="records not found"):
        train(recipe(RunDir(tmp_path / "none"), tiny_t5), RunDir(tmp_path / "none"), quiet=True)


def test_each_stage_frees_its_student_before_the_next_loads(
    tmp_path, records, tiny_llama, monkeypatch: pytest.MonkeyPatch
) -> None:
    # bf16 autocast makes accelerate bind the model's forward to the model itself (a cycle), so
    # without a collection every stage's student stayed in memory until Python's next full
    # collection, across the stages and cells of a long grid.
    import mindmirror.student.train as train_module

    loaded: list[weakref.ref[torch.nn.Module]] = []

    def remembered(*args: Any, **kwargs: Any) -> Any:
        model, tokenizer, kind = load_student(*args, **kwargs)
        loaded.append(weakref.ref(model))
        return model, tokenizer, kind

    monkeypatch.setattr(train_module, "load_student", remembered)
    run = make_run(tmp_path, records)
    settings = {"method": "mind_mirror", "precision": "bf16_force", "max_steps": 2}
    gc.disable()  # no automatic collection may hide a model that is kept alive
    try:
        train(recipe(run, tiny_llama, **settings), run, quiet=True)
        assert len(loaded) == 2
        assert [ref() for ref in loaded] == [None, None]
    finally:
        gc.enable()


def test_a_stage_from_before_a_new_option_resumes_unless_a_setting_differs(tmp_path) -> None:
    from mindmirror.config import TrainConfig
    from mindmirror.student.train import check_settings

    train = TrainConfig().model_dump(mode="json")
    settings = {"stage": "reasoning", "init": "embedded", "seed": 0, "task": "svamp"}
    path = tmp_path / "settings.json"
    older = {k: v for k, v in train.items() if k != "compile_layers"}  # written before it
    path.write_text(json.dumps({**settings, "train": older}))
    check_settings(path, {**settings, "train": train})  # the new option at its default
    with pytest.raises(UserError, match=r"\(compile_layers differ\)"):
        check_settings(path, {**settings, "train": {**train, "compile_layers": True}})
    with pytest.raises(UserError, match=r"\(learning_rate differ\)"):
        check_settings(path, {**settings, "train": {**train, "learning_rate": 1.0}})
    with pytest.raises(UserError, match=r"\(init differ\)"):
        check_settings(path, {**settings, "init": "other", "train": train})
    path.write_text(json.dumps({**settings, "train": train, "data": {"rows": 3}}))
    with pytest.raises(UserError, match=r"\(data differ\)"):  # a key no longer there
        check_settings(path, {**settings, "train": train})


def test_engineering_only_fields_do_not_make_another_training() -> None:
    from mindmirror.config import TrainConfig
    from mindmirror.config.train import train_settings_differ

    made = TrainConfig().model_dump(mode="json")
    memory = TrainConfig(gradient_checkpointing=True, release_memory=False)
    assert train_settings_differ(made, memory.model_dump(mode="json")) == []
    assert train_settings_differ(made, TrainConfig(learning_rate=1.0).model_dump(mode="json")) == [
        "learning_rate"
    ]
    assert train_settings_differ(
        made, TrainConfig(compile_layers=True).model_dump(mode="json")
    ) == ["compile_layers"]
