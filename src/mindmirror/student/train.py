"""``mindmirror train``: teacher records in, the best student on validation out.

Reads top to bottom: records -> rows of each stage -> a student (LoRA optional) -> Trainer ->
the best checkpoint on validation saved as ``student/<stage>/best/`` with its validation curve.
``mind_mirror`` runs two stages; the second starts from the first one's best weights.

Run directory outputs::

    student/<stage>/checkpoints/   Trainer checkpoints (resume after a kill: run it again);
                                   deleted once the stage finishes unless keep_checkpoints
    student/<stage>/best/          the chosen student (load_student(path) loads it)
    student/<stage>/curve.json     validation metrics at every evaluation
    student/<stage>/result.json    rows kept/skipped, best metric, steps, throughput
    student/train.json             resolved recipe, seed, library versions, per-stage results,
                                   and ``final``: the student later commands use

Multi-process: ``accelerate launch --multi_gpu --num_processes 2 -m mindmirror train RECIPE``
(``--multi_gpu`` is accelerate's torchrun launcher: without GPUs it starts CPU processes on
gloo, whereas ``--cpu`` starts one process). Every process builds the same rows; Trainer
shards the batches and each process validates its share of the validation items.
"""

from __future__ import annotations

import gc
import json
import os
import platform
import shutil
import time
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import torch.distributed as dist
from transformers import PrinterCallback, set_seed
from transformers.trainer_utils import get_last_checkpoint

from mindmirror.config import Recipe, TrainConfig, dump_recipe
from mindmirror.config.train import ENGINEERING_ONLY, train_settings_differ
from mindmirror.errors import UserError
from mindmirror.files import write_json
from mindmirror.progress import log_console
from mindmirror.records import CotJudge, Record, read_records
from mindmirror.rundir import RunDir
from mindmirror.student import precision
from mindmirror.student.answer_confidence import calibrate_final_student
from mindmirror.student.compiled import compile_blocks
from mindmirror.student.encoding import WeightedCollator, encode_row, feature_length
from mindmirror.student.formats import SHORT_TASKS
from mindmirror.student.heap import release_freed_memory
from mindmirror.student.model import add_lora, load_student, save_student
from mindmirror.student.peak_memory import peak_rss_mb, reset_peak
from mindmirror.student.rows import Row, RowSpec, RowStats, Stage, build_rows, stages
from mindmirror.student.train_args import training_args
from mindmirror.student.trainer import (
    ElapsedSeconds,
    EvenEvaluations,
    RichProgress,
    StudentTrainer,
    checkpoint_seconds,
)
from mindmirror.student.validate import ValItem, metric_name, validation_items
from mindmirror.tasks import build_task
from mindmirror.tasks.base import Task
from mindmirror.threads import share_torch_threads

LIBRARIES = ("torch", "transformers", "peft", "accelerate", "mindmirror")


def library_versions() -> dict[str, str]:
    """Versions of Python and the libraries that decide what training does."""
    versions = {"python": platform.python_version()}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def row_spec(cfg: TrainConfig) -> RowSpec:
    """The row-building settings of a training config."""
    return RowSpec(
        method=cfg.method,
        labels=cfg.labels,
        num_cots=cfg.num_cots,
        num_evals=cfg.num_evals,
        alpha=cfg.alpha,
        dedupe=cfg.dedupe,
        explain_target=cfg.explain_target,
        distill_label=cfg.distill_label,
    )


def rows_per_batch(cfg: TrainConfig, rows: list[Row]) -> int:
    """Rows per micro-batch: ``batch_size``, doubled when it counts (question, CoT) examples
    and each example is two rows (a short and a long target), as the published trainer runs
    both tasks of every example in one step."""
    two_tasks = len({row.prefix in SHORT_TASKS for row in rows}) == 2
    return cfg.batch_size * (2 if cfg.batch_unit == "examples" and two_tasks else 1)


def _unread_by_stage1(train: dict[str, Any]) -> dict[str, Any]:
    """``train:`` settings (a JSON dump) without what the self-evaluation stage never reads:
    N (its rows are every judged CoT whatever N) and ``epochs`` when ``stage1_epochs`` sets its
    length; so the ``mind_mirror`` cells of one seed at several N train the same stage 1."""
    unread = ("num_cots", "epochs") if train.get("stage1_epochs") else ("num_cots",)
    return {k: v for k, v in train.items() if k not in unread}


def stage_settings(
    recipe: Recipe, stage: Stage, init: str | Path, from_records: bool = True
) -> dict[str, Any]:
    """What decides a stage's result: the train settings, seed, starting weights and records
    (``from_records``: the stage's rows are built from the teacher records, not handed in as
    the own-CoT judge's are)."""
    train = recipe.train.model_dump(mode="json")
    if stage == "reasoning":
        # Stage 1's length cannot change stage 2 except through stage 1, whose own settings
        # are checked first; a finished single-stage run stays reusable when it changes.
        train["stage1_epochs"] = None
    if stage == "evaluation" and from_records:
        train = _unread_by_stage1(train)
    # Neither keeping checkpoints afterwards, recomputing activations nor how freed memory goes
    # back to the system changes a result; the own-CoT judge and the answer calibration come
    # after every stage and change none of them.
    for key in (*ENGINEERING_ONLY, "own_judge", "answer_confidence"):
        del train[key]
    return {
        "stage": stage,
        "init": str(init),
        "seed": recipe.seed,
        "task": recipe.task.name,
        "train": train,
    }


def settings_changed(before: dict[str, Any], settings: dict[str, Any]) -> list[str]:
    """What differs between the settings a stage was trained with (``before``, its
    ``settings.json``) and ``settings``. A ``train:`` field the stage's settings do not hold
    (an option added since) counts as its default: new options default to the behaviour
    before them. A self-evaluation stage's settings written before they left out what it
    never reads (``_unread_by_stage1``) are read without it."""
    made = before.get("train", {})
    if settings.get("stage") == "evaluation" and "data" not in settings:
        made = _unread_by_stage1(made)
    return train_settings_differ(made, settings["train"]) + sorted(
        k for k in {*before, *settings} - {"train"} if before.get(k) != settings.get(k)
    )


def check_settings(path: Path, settings: dict[str, Any]) -> None:
    """Resume or reuse a stage only with the settings it was started with
    (``settings_changed``)."""
    if not path.is_file():
        return
    changed = settings_changed(json.loads(path.read_text()), settings)
    if changed:
        raise UserError(
            f"{path.parent} was trained with other settings ({', '.join(changed)} differ); "
            "use another run_dir or delete that folder to train again"
        )


def _curve(log_history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {k: v for k, v in entry.items() if k.startswith("eval_") or k in ("step", "epoch")}
        for entry in log_history
        if any(k.startswith("eval_") for k in entry)
    ]


def _write_json(path: Path, data: Any) -> None:
    """Write ``path`` whole or not at all: under several processes another may read it
    (``check_settings``) while the main process writes it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(path, data)


def make_trainer(
    cfg: TrainConfig,
    stage: Stage,
    init: str | Path,
    rows: list[Row],
    items: list[ValItem],
    task: Task,
    folder: Path,
    seed: int,
) -> StudentTrainer:
    """The student (LoRA when asked), its encoded rows and a Trainer validating on ``items``."""
    model, tokenizer, kind = load_student(init)
    if cfg.lora:
        model = add_lora(
            model,
            kind,
            r=cfg.lora_r,
            alpha=cfg.lora_alpha,
            dropout=cfg.lora_dropout,
            targets=cfg.lora_targets or "all-linear",
        )
    if cfg.compile_layers:
        compile_blocks(model)
    limits = {"max_input_tokens": cfg.max_input_tokens, "max_target_tokens": cfg.max_target_tokens}
    features = [encode_row(tokenizer, kind, row, **limits) for row in rows]
    collator = WeightedCollator(
        pad_token_id=tokenizer.pad_token_id,
        kind=kind,
        decoder_start_token_id=getattr(model.config, "decoder_start_token_id", None),
    )
    trainer = StudentTrainer(
        model=model,
        args=training_args(cfg, stage, folder / "checkpoints", seed, rows_per_batch(cfg, rows)),
        train_dataset=features,
        eval_dataset=items,
        data_collator=collator,
        processing_class=tokenizer,
        kind=kind,
        stage=stage,
        task=task,
        lengths=[feature_length(f) for f in features],
        examples=[row.example for row in rows],
        eval_max_new_tokens=cfg.eval_max_new_tokens,
        eval_max_input_tokens=cfg.max_input_tokens,
        loss_norm=cfg.loss_norm,
        verdict_metric=cfg.verdict_metric,
    )
    if cfg.evaluations:
        trainer.add_callback(EvenEvaluations(cfg.evaluations))
    return trainer


@dataclass(frozen=True)
class StageData:
    """Rows and validation items built elsewhere than from the teacher records (the own-CoT
    judge's), with ``settings``: what else decides the stage's result."""

    rows: list[Row]
    stats: RowStats
    items: list[ValItem]
    settings: dict[str, Any]


def train_stage(
    stage: Stage,
    init: str | Path,
    records: list[Record],
    task: Task,
    recipe: Recipe,
    run: RunDir,
    quiet: bool = False,
    *,
    name: str | None = None,
    data: StageData | None = None,
) -> dict[str, Any]:
    """Train one stage from ``init``; return its result (also in ``student/<stage>/result.json``).

    A finished stage (its ``result.json`` exists) is returned as it is; an interrupted one
    resumes from its last checkpoint. ``name`` is the stage's folder (default ``stage``);
    ``data`` replaces the rows and validation items built from ``records``.
    """
    cfg = recipe.train
    folder = run.stage(name or stage)
    result_path = folder / "result.json"
    settings = stage_settings(recipe, stage, init, from_records=data is None)
    if data is not None:
        settings["data"] = data.settings
    check_settings(folder / "settings.json", settings)
    if result_path.is_file() and (folder / "best").is_dir():
        return json.loads(result_path.read_text())
    console = log_console(quiet=quiet)
    if data is None:
        rows, stats = build_rows(records, task, row_spec(cfg), stage)
        items = validation_items(records, stage, limit=cfg.val_limit)
    else:
        rows, stats, items = data.rows, data.stats, data.items
    if not rows:
        raise UserError(
            f"{run.records}: no training rows for method {cfg.method} stage {stage} "
            f"({stats.questions} train questions, {stats.questions_skipped} skipped, "
            f"{stats.cots_unparsed} unparsed CoTs, {stats.evals_unparsed} unparsed evaluations)"
        )
    if not items:
        need = "CoTs with parsed evaluations" if stage == "evaluation" else "questions with gold"
        raise UserError(
            f"{run.records}: no validation {need} to choose a checkpoint on; teach the "
            "`validation` split (teacher.splits) first"
        )
    one_class = len({item.reference == "correct" for item in items}) < 2
    if stage == "evaluation" and cfg.verdict_metric == "auroc" and one_class:
        raise UserError(
            f"{run.records}: train.verdict_metric auroc needs validation CoTs judged both "
            "correct and not correct; choose agreement or balanced_agreement"
        )
    set_seed(recipe.seed)
    trainer = make_trainer(cfg, stage, init, rows, items, task, folder, recipe.seed)
    tokenizer, kind = trainer.processing_class, trainer.kind
    # disable_tqdm makes Trainer print raw log dicts; our rich bar shows them instead.
    trainer.remove_callback(PrinterCallback)
    if not quiet:
        trainer.add_callback(RichProgress(f"{cfg.method}/{stage}", console))
    console.print(
        f"[bold]{stage}[/]: {stats.rows} rows ({stats.rows_before_dedupe} before merging "
        f"duplicates) from {stats.questions} questions; {len(items)} validation items"
    )
    if trainer.is_world_process_zero():
        _write_json(folder / "settings.json", settings)
    last = (
        get_last_checkpoint(str(folder / "checkpoints"))
        if (folder / "checkpoints").is_dir()
        else None
    )
    before = checkpoint_seconds(last)
    peak_is_stage = reset_peak()
    timer = ElapsedSeconds(before or 0.0)
    trainer.add_callback(timer)
    output = trainer.train(resume_from_checkpoint=last)
    seconds = (before or 0.0) + time.perf_counter() - timer.started
    metric = f"eval_{metric_name(stage, cfg.verdict_metric)}"
    hardware = precision.probe()
    result = {
        "stage": stage,
        "init": str(init),
        "kind": kind,
        "rows": asdict(stats),
        "validation_items": len(items),
        "batch_rows": trainer.args.per_device_train_batch_size,
        "best_metric": {metric: trainer.state.best_metric},
        "best_step": trainer.state.best_global_step,
        # Deleted below unless kept: a path to nothing would mislead; best/ holds that model.
        "best_checkpoint": trainer.state.best_model_checkpoint if cfg.keep_checkpoints else None,
        "best": str((folder / "best").relative_to(run.root)),
        "steps": trainer.state.global_step,
        "train_loss": output.training_loss,
        # Every run of the stage up to its final model; without a count from before a resume
        # (a checkpoint older than that count), the seconds since the resume only.
        "train_seconds": seconds,
        "train_seconds_complete": before is not None,
        "train_rows_per_second": output.metrics.get("train_samples_per_second"),
        # This process's peak resident memory while the stage trained (since the resume, if
        # resumed): it starts from what is resident after loading the model, so the model
        # counts and memory an earlier stage freed does not. Under several processes, each
        # reads its own, and every process goes on with the main process's (below).
        "peak_rss_mb": peak_rss_mb(),
        "peak_rss_scope": "stage" if peak_is_stage else "process",
        "resumed_from": last,
        "processes": trainer.args.world_size,
        "backend": dist.get_backend() if dist.is_initialized() else None,
        "bf16": trainer.args.bf16,
        "precision": "bf16" if trainer.args.bf16 else "fp32",
        # Where it trained: a stage reused on another machine keeps the one that trained it.
        "device": hardware.device,
        "device_name": hardware.detail,
    }
    if trainer.args.world_size > 1:
        # Every process goes on with the main process's result (its seconds and memory, as
        # result.json has them), so that what is derived from it later (the own-CoT judge's
        # settings, which decide whether its samples can be read back) is the same on all.
        shared = [result]
        dist.broadcast_object_list(shared, src=0)
        result = shared[0]
    if trainer.is_world_process_zero():
        save_student(
            trainer.model,
            tokenizer,
            folder / "best",
            kind=kind,
            info={
                "method": cfg.method,
                "stage": stage,
                "task": recipe.task.name,
                metric: trainer.state.best_metric,
            },
        )
        _write_json(folder / "curve.json", _curve(trainer.state.log_history))
        _write_json(result_path, result)
        if not cfg.keep_checkpoints:
            # Only after result.json: a kill before it leaves checkpoints to resume from.
            # Tracker logs under checkpoints/runs/ stay.
            for checkpoint in (folder / "checkpoints").glob("checkpoint-*"):
                shutil.rmtree(checkpoint)
    # Every process must see the saved best student before the next stage loads it.
    trainer.accelerator.wait_for_everyone()
    return result


def train(
    recipe: Recipe, run: RunDir, quiet: bool = False, judge_cots: CotJudge | None = None
) -> dict[str, Any]:
    """Train the recipe's method on the run's teacher records; return the summary.

    The summary (also ``student/train.json``) holds each stage's result (best validation
    metric, paths, row counts), the resolved recipe, seed, library versions and ``final``, the
    student folder later commands load, and ``answer_confidence``, the figures of ``answer``
    mode's calibration (``train.answer_confidence``; None when off). ``judge_cots`` is the
    teacher that labels the student's own CoTs under ``train.own_judge.labels: teacher``
    (``mindmirror.teacher.judge_cots.cot_judge``).

    Raises:
        UserError: missing or malformed records, no rows or no validation items, a student
            that cannot be loaded, ``own_judge.labels: teacher`` without ``judge_cots``.
    """
    own = recipe.train.own_judge
    if own is not None and own.labels == "teacher" and judge_cots is None:
        from mindmirror.student.own_judge import NO_TEACHER

        raise UserError(NO_TEACHER)  # before training anything
    share_torch_threads(quiet)
    precision.avoid_cudnn_attention()
    if recipe.train.release_memory:
        release_freed_memory()
    task = build_task(recipe.task)
    records = read_records(run.records)
    init: str | Path = recipe.train.student
    results: dict[str, Any] = {}
    for stage in stages(recipe.train.method):
        result = train_stage(stage, init, records, task, recipe, run, quiet)
        results[stage] = result
        init = run.root / result["best"]
        # Under bf16 autocast accelerate binds the model's forward to the model itself, a
        # cycle that only a full collection frees: free this stage's student now, not after
        # the next stage or grid cell has loaded its own.
        gc.collect()
    if recipe.train.own_judge is not None:
        # Imported here: the own-CoT judge module trains its stage with train_stage.
        from mindmirror.student.own_judge import OWN_JUDGE_STAGE, train_own_judge

        results[OWN_JUDGE_STAGE] = train_own_judge(
            recipe, run, records, task, results, quiet, judge_cots=judge_cots
        )
    calibration = calibrate_final_student(recipe, run, records, task, results[stage], quiet)
    summary = {
        "method": recipe.train.method,
        "seed": recipe.seed,
        "stages": results,
        # answer mode's recalibrated confidence (train.answer_confidence), None when off.
        "answer_confidence": calibration,
        "final": str(Path(init).relative_to(run.root)),
        # The precision the final student trained in (a bf16 recipe may have fallen back).
        "precision": results[stage].get("precision"),
        # Where the final stage trained, so that cells trained on a GPU and on a CPU are told
        # apart (None for a stage trained before it was recorded).
        "device": results[stage].get("device"),
        "device_name": results[stage].get("device_name"),
        "versions": library_versions(),
        "recipe": dump_recipe(recipe),
    }
    # Under `accelerate launch` only the main process (RANK 0) writes the summary.
    if int(os.environ.get("RANK", "0")) == 0:
        _write_json(run.student / "train.json", summary)
    return summary
