"""Names of the methods, modes and figures that the grid, its tables and the report share.

Kept below all three (no imports of the project), so ``experiment``, ``tables`` and ``report``
depend on it and never on each other's internals.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

SELF_EVAL_METHODS = ("mind_mirror", "mind_mirror_joint")
COT_METHODS = ("step_by_step", "multi_cot", *SELF_EVAL_METHODS)
#: Column headers of the inference modes; ``mirror`` is shown at full coverage (every question
#: answered), ``mirror_final`` appears when a separate stage-1 student judged ``mirror``.
MODE_HEADERS = {
    "answer": "answer (paper)",
    "cot": "cot",
    "vote": "vote",
    "mirror": "mirror (ours), full coverage",
    "mirror_final": "mirror, own verdicts",
}
# The figures of ``evaluate.self_evaluation_agreement`` that tables average over seeds and show.
AGREEMENT_FIGURES = ("teacher", "gold", "auroc", "teacher_vs_gold")
EvalSource = Literal["teacher", "gold", "none"]


def applicable_modes(method: str, modes: Sequence[str], explain_target: str) -> tuple[str, ...]:
    """The requested modes that mean something for a method's student.

    Students of ``standard``/``distill`` never learnt ``explain:``, so only ``answer``;
    ``cot``/``vote``/``mirror`` read the answer from the student's own CoT, so they need CoT
    targets that carry it (``explain_target: cot``); ``mirror`` also needs a student that
    learnt ``verdict:`` (the self-evaluation methods).
    """
    allowed = {"answer"}
    if method in COT_METHODS and explain_target == "cot":
        allowed |= {"cot", "vote"}
        if method in SELF_EVAL_METHODS:
            allowed.add("mirror")
    return tuple(m for m in modes if m in allowed)
