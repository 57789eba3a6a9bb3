"""The `train:` section of a recipe: the student, its training method, loss and optimiser."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from mindmirror.config.answer_confidence import AnswerConfidenceConfig
from mindmirror.config.base import Strict, settings_differ
from mindmirror.config.own_judge import OwnJudgeConfig

#: Trackers Trainer reports to (``report_to`` of transformers' ``TrainingArguments``).
Tracker = Literal[
    "none",
    "all",
    "tensorboard",
    "wandb",
    "mlflow",
    "trackio",
    "comet_ml",
    "clearml",
    "dvclive",
    "swanlab",
    "azure_ml",
    "codecarbon",
]


#: ``train:`` fields that change how a training runs, never what it learns: two trainings that
#: differ only in them are the same training (resume, reuse, records).
ENGINEERING_ONLY = ("keep_checkpoints", "gradient_checkpointing", "release_memory")


class TrainConfig(Strict):
    """Training the student: the method, the model, the loss and the optimisation."""

    method: Literal[
        "standard", "distill", "step_by_step", "multi_cot", "mind_mirror", "mind_mirror_joint"
    ] = Field(
        "mind_mirror",
        description="standard: gold answers; distill: the teacher's majority answer; "
        "step_by_step: answer + 1 CoT; multi_cot: answer + N CoTs; mind_mirror: stage 1 "
        "self-evaluation, then stage 2 as multi_cot; mind_mirror_joint: both in one stage.",
    )
    student: str = Field(
        "embedded",
        description="Student model: Hub id, local folder, .gguf file, or `embedded` (the "
        "packaged SmolLM2-135M-Instruct). Seq2seq or causal is detected from its config.",
    )
    labels: Literal["teacher", "gold"] = Field(
        "teacher",
        description="Target of `predict:` rows: each CoT's teacher answer (the paper) or gold.",
    )
    num_cots: int = Field(5, ge=1, le=64, description="N: parsed CoTs used per question.")
    num_evals: int = Field(5, ge=1, le=64, description="M: evaluations used per CoT (stage 1).")
    alpha: float = Field(
        0.5,
        ge=0.0,
        le=1.0,
        description="Weight of short targets (answer, verdict); long targets get 1 - alpha.",
    )
    dedupe: bool = Field(
        False,
        description="Merge identical rows into one counted as many times (same total loss per "
        "epoch, fewer steps; not the same optimisation). Off in the published code.",
    )
    loss_norm: Literal["task_token_mean", "row_mean"] = Field(
        "task_token_mean",
        description="task_token_mean (published): each task's loss is a token mean over its "
        "rows in the batch, then alpha * L_short + (1 - alpha) * L_long; row_mean: each row's "
        "token mean x its weight, averaged over rows (every row weighs the same).",
    )
    explain_target: Literal["rationale", "cot"] = Field(
        "rationale",
        description="`explain:` target. rationale (published): the CoT before its answer "
        "sentence; cot: the whole CoT with its answer, which the cot/vote/mirror inference "
        "modes need (they read the answer from the student's own CoT).",
    )
    distill_label: Literal["first", "majority"] = Field(
        "first",
        description="`distill` label: the first parsed CoT's answer (published) or the majority "
        "answer over the CoTs (labelled distill-majority in tables).",
    )
    batch_unit: Literal["examples", "rows"] = Field(
        "examples",
        description="What batch_size counts. examples (published): (question, CoT) examples, "
        "each of which is a short and a long row in two-task methods, so a micro-batch holds "
        "2 x batch_size rows there; rows: training rows.",
    )
    epochs: float = Field(3.0, gt=0, description="Epochs of each stage.")
    stage1_epochs: float | None = Field(
        None, gt=0, description="Epochs of the self-evaluation stage (default: `epochs`)."
    )
    max_steps: int | None = Field(
        None,
        ge=1,
        description="Stop each stage after this many optimizer steps (overrides epochs).",
    )
    batch_size: int = Field(8, ge=1, description="Rows per device per micro-batch.")
    grad_accum: int = Field(1, ge=1, description="Micro-batches per optimizer step.")
    learning_rate: float = Field(1e-4, gt=0, description="Peak learning rate (AdamW).")
    weight_decay: float = Field(0.0, ge=0, description="AdamW weight decay.")
    warmup: float = Field(
        0.0, ge=0, description="Warmup: a fraction of steps in [0, 1) or a number of steps."
    )
    scheduler: Literal["linear", "cosine", "constant"] = Field(
        "linear", description="Learning-rate schedule after warmup."
    )
    max_input_tokens: int = Field(512, ge=8, description="Inputs truncated to this many tokens.")
    max_target_tokens: int = Field(256, ge=4, description="Targets truncated to this many.")
    precision: Literal["auto", "fp32", "bf16", "bf16_force"] = Field(
        "auto",
        description="auto: bf16 autocast (fp32 master weights) where the hardware runs bf16 "
        "natively (a GPU from Ampere on, a CPU with AVX512-BF16 or AMX), else fp32; bf16: the "
        "same but warns when it falls back to fp32 (emulated bf16 is many times slower); "
        "bf16_force: bf16 even where it is emulated; fp32. fp16 is never used (T5 overflows).",
    )
    lora: bool = Field(False, description="Train LoRA adapters instead of all weights (peft).")
    lora_r: int = Field(16, ge=1, description="LoRA rank.")
    lora_alpha: int = Field(32, ge=1, description="LoRA scaling numerator.")
    lora_dropout: float = Field(0.05, ge=0, lt=1, description="LoRA dropout.")
    lora_targets: list[str] | None = Field(
        None, description="Module names to adapt (default: all linear layers)."
    )
    group_by_length: bool = Field(
        False,
        description="Sort examples by length within random mega-batches (less padding; "
        "ours, off in the published code). Either way the rows of one (question, CoT) "
        "example are trained in the same step, as the published trainer does.",
    )
    eval_steps: int | None = Field(
        None, ge=1, description="Validate (and checkpoint) every N steps; default: every epoch."
    )
    evaluations: int | None = Field(
        None,
        ge=1,
        description="Validate (and checkpoint) this many times per stage, evenly spaced, the "
        "last at the stage's end, whatever its length: every method then chooses its "
        "checkpoint among as many candidates (per epoch, a 3-epoch cell has 3 and a 0.6-epoch "
        "cell 1). Ours; the published code validates every epoch (the default here).",
    )
    verdict_metric: Literal["agreement", "balanced_agreement", "auroc"] = Field(
        "agreement",
        description="What the self-evaluation stage chooses its checkpoint on, over validation "
        "teacher CoTs. agreement (the published accuracy): greedy verdicts matching the "
        "reference; balanced_agreement: their mean recall over the verdicts present (always "
        "`correct` no longer scores 0.7 on 70%-correct CoTs); auroc: how the student's "
        "P(correct) ranks right CoTs above wrong ones, what `mirror` uses. All three, and the "
        "AUROC of CoT length alone, are logged at every validation.",
    )
    val_limit: int | None = Field(
        200, ge=1, description="Validation questions used to choose the checkpoint (None: all)."
    )
    eval_batch_size: int = Field(16, ge=1, description="Sequences per validation generate call.")
    eval_max_new_tokens: int = Field(
        32, ge=4, description="Max tokens generated for a validation answer or verdict."
    )
    save_total_limit: int = Field(
        2, ge=1, description="Checkpoints kept per stage (the best one is always kept)."
    )
    keep_checkpoints: bool = Field(
        False,
        description="Keep a stage's Trainer checkpoints (weights and optimizer state, about "
        "three times the student's size each) after it has finished and saved its best student "
        "as `best/`. By default they are deleted then: a finished stage is never resumed from "
        "them, and a grid of full fine-tuning cells would otherwise fill the disk.",
    )
    gradient_checkpointing: bool = Field(
        False,
        description="Recompute each layer's activations in the backward pass instead of "
        "keeping them from the forward pass: less memory for the same batch, more compute. "
        "Dropout's random state is replayed, so it does not change what is learnt; turn it on "
        "when a full fine-tuning stage does not fit in memory.",
    )
    compile_layers: bool = Field(
        False,
        description="Compile each of the student's repeated blocks (decoder layers) with "
        "torch.compile for training (`student/compiled.py`): element-wise kernels and bf16 "
        "casts fused, the same loss within bf16 rounding (tested). Costs a compile at the start "
        "of each stage (needs a C++ compiler on CPU); validation generates eagerly. "
        "Engineering only, off by default.",
    )
    release_memory: bool = Field(
        True,
        description="glibc only: map large blocks (128 KiB on) one by one and give them back to "
        "the system when freed (`student/heap.py`), so a long stage's resident memory stays near "
        "what a step holds instead of growing with a fragmented heap; costs page faults. false: "
        "glibc's default. Engineering only: what is learnt does not change.",
    )
    own_judge: OwnJudgeConfig | None = Field(
        None,
        description="Train a separate judge on the student's own sampled CoTs after the last "
        "stage, and a combined confidence (see OwnJudgeConfig; ours). null (the paper): the "
        "judge has seen the teacher's CoTs only.",
    )
    answer_confidence: AnswerConfidenceConfig | None = Field(
        None,
        description="Recalibrate `answer` mode's confidence (the answer's token probability) on "
        "the validation questions after the last stage, and abstain below a threshold chosen "
        "there for a target accuracy (see AnswerConfidenceConfig; ours). null (the paper): "
        "`answer` returns the raw token probability and never abstains.",
    )
    logging_steps: int = Field(10, ge=1, description="Log the training loss every N steps.")
    report_to: Tracker | list[Tracker] = Field(
        "none",
        description="Experiment trackers the Trainer logs to, as `report_to` of transformers: "
        "none, all (every one installed), tensorboard (events under "
        "student/<stage>/checkpoints/runs/), wandb, mlflow, trackio, ... or a list of them. "
        "Each needs its package installed (e.g. pip install tensorboard).",
    )

    @model_validator(mode="after")
    def _one_validation_schedule(self) -> TrainConfig:
        if self.eval_steps is not None and self.evaluations is not None:
            raise ValueError(
                "set train.eval_steps or train.evaluations, not both (both say when to validate)"
            )
        return self

    @model_validator(mode="after")
    def _own_judge_applies(self) -> TrainConfig:
        if self.own_judge is not None and (
            self.method not in ("mind_mirror", "mind_mirror_joint") or self.explain_target != "cot"
        ):
            raise ValueError(
                "train.own_judge needs a student that writes CoTs with their answer and judges "
                "them: method mind_mirror or mind_mirror_joint with explain_target cot"
            )
        return self


def train_settings_differ(made: dict[str, Any], now: dict[str, Any]) -> list[str]:
    """The ``train:`` fields in which recorded settings (``made``) differ from ``now`` (both
    JSON dumps), engineering-only fields left out. A field one side does not hold (added to
    the config since) counts as its default: new options default to the behaviour before them."""
    return settings_differ(made, now, TrainConfig().model_dump(mode="json"), ENGINEERING_ONLY)
