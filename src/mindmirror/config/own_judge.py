"""The `train.own_judge:` block: a judge trained on the student's own sampled CoTs (issue 25).

Off (null) in every paper recipe: the paper's judge learns from the teacher's CoTs only.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from mindmirror.config.base import Strict


class OwnJudgeConfig(Strict):
    """After the reasoning stage: sample the final student's CoTs on the train and validation
    questions, label each against gold, and fine-tune a separate judge on those verdicts (the
    answering student's weights are untouched); then fit the combined confidence on validation.
    """

    samples: int = Field(
        4, ge=1, le=64, description="K: CoTs sampled from the final student per question."
    )
    temperature: float = Field(0.7, gt=0.0, le=2.0, description="Sampling temperature.")
    top_p: float = Field(1.0, gt=0.0, le=1.0, description="Nucleus sampling.")
    max_new_tokens: int = Field(256, ge=1, description="Max generated tokens per sampled CoT.")
    labels: Literal["gold"] = Field(
        "gold",
        description="Label source of each sampled CoT: gold (the task's scorer against the gold "
        "answer, the answer read by the task's parser). A live teacher's self-evaluation of "
        "the student's CoTs is not implemented yet.",
    )
    mix: Literal["own", "own+teacher"] = Field(
        "own",
        description="Rows of the judge: own (verdicts on the student's CoTs only) or "
        "own+teacher (those plus the self-evaluation stage's rows on the teacher's CoTs).",
    )
    epochs: float = Field(1.0, gt=0, description="Epochs of the own-CoT judge stage.")
    learning_rate: float | None = Field(
        None, gt=0, description="Learning rate of the stage (default: train.learning_rate)."
    )
    target_accuracy: float = Field(
        0.8,
        gt=0.0,
        le=1.0,
        description="The combined confidence's abstention threshold is the lowest one at which "
        "the answered validation questions reach this accuracy (`predict`/`serve` abstain "
        "below it).",
    )
