"""Worked self-evaluation examples for few-shot evaluation prompts, built from train shots.

A small teacher only ends its critique with the verdict sentence when it has seen it done, so
an evaluation prompt can show worked evaluations: a train shot's own worked solution judged
``correct``, and the same solution with its last calculation step corrupted (a wrong
operation, so the final answer changes) judged ``wrong``. Both are derived from the shot's
rationale by pure functions; a shot whose rationale has no recognizable last step ``a op b = c``
gives no worked evaluations at all, so the prompt never shows only one verdict for it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from mindmirror.records import Verdict
from mindmirror.tasks.arith import format_number, safe_eval
from mindmirror.tasks.base import Example, Task

# One binary calculation with its result, e.g. "9 - 6 = 3" or "48/2 = 24". The look-behinds
# skip the tail of a longer chain ("2 + 3 + 4 = 9"), whose result depends on more than a and b.
_STEP = re.compile(
    r"(?<![\d.)*/+\-])(?<![\d.)*/+\-]\s)"
    r"(?P<a>\d+(?:\.\d+)?)\s*(?P<op>[-+*/])\s*(?P<b>\d+(?:\.\d+)?)\s*=\s*(?P<c>\d+(?:\.\d+)?)"
)
# The operation a wrong solution uses instead, in order of preference; the first one that
# changes the result to a non-negative number is taken.
_SWAPS = {"+": ("-", "*"), "-": ("+",), "*": ("+", "-"), "/": ("*", "-")}
_PLAIN_NUMBER = re.compile(r"^\d+(?:\.\d+)?$")


@dataclass(frozen=True)
class WorkedEvaluation:
    """One worked evaluation: the solution shown to the grader and what the critique says.

    Attributes:
        question: the shot's question.
        cot: the solution being judged (the shot's rationale, or its corrupted copy).
        verdict: ``correct`` for the rationale, ``wrong`` for the corrupted copy.
        needed: the last step the question needs, e.g. ``8 + 6 = 14``.
        given: the last step the judged solution computes, e.g. ``8 - 6 = 2``.
        answer: the judged solution's final answer as written, e.g. ``(8 - 6)``.
    """

    question: str
    cot: str
    verdict: Verdict
    needed: str
    given: str
    answer: str


def _calc(a: str, op: str, b: str) -> float | None:
    return safe_eval(f"{a} {op} {b}")


def corrupt_rationale(task: Task, rationale: str) -> tuple[str, str, str, str] | None:
    """The rationale with its last step's operation swapped, and the answer changed to match.

    Returns ``(wrong_text, needed_step, given_step, wrong_answer)``, e.g. for
    ``"... so 8 + 6 = 14. The answer is (8 + 6)."``: ``("... so 8 - 6 = 2. The answer is
    (8 - 6).", "8 + 6 = 14", "8 - 6 = 2", "(8 - 6)")``. None when the rationale has no step
    ``a op b = c`` whose result is its final answer, or the answer cannot be rewritten to the
    new result (the task's own parser must read the new answer with the new value).
    """
    steps = list(_STEP.finditer(rationale))
    answer = task.parse_answer(rationale)
    if not steps or answer is None:
        return None
    step = steps[-1]
    a, op, b, c = step.group("a", "op", "b", "c")
    right = _calc(a, op, b)
    if right is None or task.canonical(c) != format_number(right):
        return None  # the step's own arithmetic is off: not a solution to corrupt
    if task.canonical(answer) != task.canonical(c):
        return None  # the last step is not what the answer states
    for new_op in _SWAPS[op]:
        value = _calc(a, new_op, b)
        if value is None or value < 0 or format_number(value) == format_number(right):
            continue
        new_result = format_number(value)
        if _PLAIN_NUMBER.match(answer):
            new_answer = new_result
        else:
            # An expression answer ("((5 + 4) - 8)"): swap the operator before its last b.
            last = rf"{re.escape(op)}\s*{re.escape(b)}(?![\d.])"
            pattern = re.compile(rf"{last}(?!.*{last})")
            new_answer = pattern.sub(f"{new_op} {b}", answer, count=1)
        given = f"{a} {new_op} {b} = {new_result}"
        head = rationale[: step.start()] + given + rationale[step.end() :]
        cut = head.rfind(answer)
        text = head[:cut] + new_answer + head[cut + len(answer) :]
        parsed = task.parse_answer(text)
        if parsed is not None and task.canonical(parsed) == new_result:
            return text, f"{a} {op} {b} = {c}", given, new_answer
    return None


def worked_evaluations(task: Task, shots: list[Example]) -> list[WorkedEvaluation]:
    """Two worked evaluations per shot that has a corruptible rationale: right and wrong.

    The order alternates between shots (right, wrong, then wrong, right, ...) so that no
    verdict always comes last, which a small model would copy.
    """
    worked: list[WorkedEvaluation] = []
    for shot in shots:
        if shot.rationale is None:
            continue
        corrupted = corrupt_rationale(task, shot.rationale)
        if corrupted is None:
            continue
        text, needed, given, wrong_answer = corrupted
        answer = task.parse_answer(shot.rationale) or ""
        pair = [
            WorkedEvaluation(shot.question, shot.rationale, "correct", needed, needed, answer),
            WorkedEvaluation(shot.question, text, "wrong", needed, given, wrong_answer),
        ]
        worked.extend(pair if len(worked) % 4 == 0 else pair[::-1])
    return worked
