"""Trainer arguments from a ``train:`` config: the schedule, precision and trackers of a stage.

Evaluation and checkpoints share one schedule, and the best checkpoint on validation is kept,
so that every stage chooses its model the same way whatever its length.
"""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import TrainingArguments

from mindmirror.config import TrainConfig
from mindmirror.errors import UserError
from mindmirror.student.precision import resolve_precision
from mindmirror.student.rows import Stage
from mindmirror.student.validate import metric_name

#: A step interval no stage reaches (Trainer still validates at a stage's last step).
NEVER = 2**31 - 1


def use_bf16(cfg: TrainConfig) -> bool:
    """bf16 autocast where the hardware runs it natively (``student/precision.py``); fp16
    never (T5 overflows in it)."""
    return resolve_precision(cfg.precision) == "bf16"


def trackers(cfg: TrainConfig) -> list[str]:
    """``train.report_to`` as a list for Trainer; UserError naming the package when one of
    them is not installed (Trainer would fail with a traceback at its first step)."""
    from transformers.integrations import get_available_reporting_integrations

    wanted = [cfg.report_to] if isinstance(cfg.report_to, str) else list(cfg.report_to)
    wanted = [name for name in wanted if name != "none"]
    if "all" in wanted:
        return ["all"]
    available = get_available_reporting_integrations()
    for name in wanted:
        if name not in available:
            raise UserError(
                f"train.report_to: {name} is not installed: pip install {name.replace('_', '-')} "
                "(or remove it from train.report_to)"
            )
    return wanted


def training_args(
    cfg: TrainConfig, stage: Stage, out: Path, seed: int, batch_rows: int
) -> TrainingArguments:
    """Trainer arguments: evaluation and checkpoints on the same schedule, best on validation.

    With ``evaluations`` the schedule is :class:`EvenEvaluations`'s; Trainer's own step
    schedule is then set never to fire before the stage's end.
    """
    strategy = "steps" if cfg.eval_steps or cfg.evaluations else "epoch"
    every = NEVER if cfg.evaluations else cfg.eval_steps
    epochs = cfg.stage1_epochs if stage == "evaluation" and cfg.stage1_epochs else cfg.epochs
    # transformers 5.x renamed gradient_checkpointing; the old name still works but warns.
    checkpointing = (
        "activation_checkpointing"
        if "activation_checkpointing" in TrainingArguments.__dataclass_fields__
        else "gradient_checkpointing"
    )
    return TrainingArguments(
        output_dir=str(out),
        num_train_epochs=epochs,
        max_steps=cfg.max_steps or -1,
        per_device_train_batch_size=batch_rows,
        per_device_eval_batch_size=cfg.eval_batch_size,
        gradient_accumulation_steps=cfg.grad_accum,
        learning_rate=cfg.learning_rate,
        weight_decay=cfg.weight_decay,
        warmup_steps=cfg.warmup,
        lr_scheduler_type=cfg.scheduler,
        bf16=use_bf16(cfg),
        eval_strategy=strategy,
        save_strategy=strategy,
        eval_steps=every,
        save_steps=every,
        load_best_model_at_end=True,
        metric_for_best_model=metric_name(stage, cfg.verdict_metric),
        greater_is_better=True,
        save_total_limit=cfg.save_total_limit,
        logging_steps=cfg.logging_steps,
        train_sampling_strategy="group_by_length" if cfg.group_by_length else "random",
        remove_unused_columns=False,
        report_to=trackers(cfg),
        seed=seed,
        data_seed=seed,
        disable_tqdm=True,
        use_cpu=not torch.cuda.is_available(),
        ddp_find_unused_parameters=False,
        # DDP broadcasts buffers at every forward pass, and a micro-batch may take one or two
        # passes (length_buckets) on each process independently: the broadcasts would then pair
        # with other collectives and hang. The only buffers (rotary frequencies) are the same
        # on every process anyway.
        ddp_broadcast_buffers=False,
        **{checkpointing: cfg.gradient_checkpointing},
    )
