"""The `train.answer_confidence:` block: ``answer`` mode's confidence recalibrated on
validation, with an abstention threshold (issue 25).

Off (null) in every paper recipe: the paper reports no confidence for its answers.
"""

from __future__ import annotations

from pydantic import Field

from mindmirror.config.base import Strict


class AnswerConfidenceConfig(Strict):
    """After the last stage: answer the validation questions greedily (``predict:``), fit a
    Platt scaling of the answers' token probability against their correctness, and choose
    the abstention threshold there (``mindmirror.student.answer_confidence``)."""

    target_accuracy: float = Field(
        0.8,
        gt=0.0,
        le=1.0,
        description="The abstention threshold is the lowest calibrated confidence at which the "
        "answered validation questions reach this accuracy (`predict`/`serve`/`eval` in "
        "`answer` mode abstain below it).",
    )
