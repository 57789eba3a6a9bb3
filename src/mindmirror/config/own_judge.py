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

    samples: int | None = Field(
        None,
        ge=1,
        le=64,
        description="K: CoTs sampled from the final student per question (default: "
        "eval.num_samples). The combined confidence is fitted on the validation questions' K "
        "CoTs and keeps K: `mirror` refuses it with another eval.num_samples.",
    )
    temperature: float | None = Field(
        None, gt=0.0, le=2.0, description="Sampling temperature (default: eval.temperature)."
    )
    top_p: float | None = Field(
        None, gt=0.0, le=1.0, description="Nucleus sampling (default: eval.top_p)."
    )
    max_new_tokens: int | None = Field(
        None,
        ge=1,
        description="Max generated tokens per sampled CoT (default: eval.max_new_tokens).",
    )
    labels: Literal["gold", "teacher"] = Field(
        "gold",
        description="Label source of each sampled train CoT: gold (the task's scorer against "
        "the gold answer, the answer read by the task's parser), or teacher (the live teacher "
        "evaluates each with its self-evaluation prompt, teacher.num_evals times, as `teach` "
        "evaluates its own CoTs: the paper's self-evaluation, on the student's CoTs; the "
        "judge trains on the verdict and critique of each evaluation; requests are cached in "
        "teacher/own_cots_cache.sqlite). The judge is chosen, and the confidence fitted, on "
        "validation CoTs labelled against gold either way.",
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
        "the answered validation questions it is fitted on reach this accuracy "
        "(`predict`/`serve` abstain below it).",
    )
    split_validation: bool = Field(
        True,
        description="Split the validation questions in two halves (seeded by the recipe's "
        "seed): the judge's checkpoint is chosen on the first half's own CoTs, the combined "
        "confidence is fitted and its threshold chosen on the second half, so the reported "
        "validation figures are not on the questions the judge was chosen on. false: both on "
        "every validation question (the figures are then in-sample; for small splits).",
    )
