"""Task prefixes and input/target formats of the student, shared by training and inference.

The reasoning and self-evaluation skills get *different* prefixes (the published code reused
``predict:``/``explain:`` for both stages, so stage 2 overwrote what stage 1 taught), and the
self-evaluation input holds the question *and* the CoT (the published code gave the CoT alone).
"""

from __future__ import annotations

import re

PREDICT = "predict"
EXPLAIN = "explain"
VERDICT = "verdict"
CRITIQUE = "critique"
PREFIXES = (PREDICT, EXPLAIN, VERDICT, CRITIQUE)

#: Short targets get weight ``alpha``, long targets ``1 - alpha`` (the paper's loss).
SHORT_TASKS = frozenset({PREDICT, VERDICT})


def reasoning_input(prefix: str, question: str) -> str:
    """Input of a reasoning row: ``predict: <question>`` or ``explain: <question>``."""
    return f"{prefix}: {question}"


def evaluation_input(prefix: str, question: str, cot: str) -> str:
    """Input of a self-evaluation row: the question and one CoT to judge."""
    return f"{prefix}: Question: {question}\nAnswer: {cot}"


def verdict_target(verdict: str) -> str:
    """Target of a ``verdict:`` row: the paper's final sentence of an evaluation."""
    return f"the given answer is {verdict}"


# The published rationale split (data_utils.py): the text before the last "answer is", cut at
# its last period. Case-insensitive here, so "So the Answer is" splits too.
_ANSWER_IS = re.compile(r"answer\s+is\b", re.IGNORECASE)
# The paper's closing line of an evaluation ("Evaluation result: the given answer is wrong."),
# or a bare final verdict sentence when a teacher shortens it.
_VERDICT_LINE = re.compile(
    r"(?:evaluation\s+result\s*:.*|the\s+given\s+answer\s+is\s+(?:correct|wrong|incorrect|"
    r"uncertain)\b[^\n]*)\s*$",
    re.IGNORECASE | re.DOTALL,
)


def rationale(cot: str) -> str:
    """The CoT without its answer sentence: the published ``explain:`` target.

    ``"... 84 / 2 = 42 points. The answer is (84 / 2)."`` -> ``"... 84 / 2 = 42 points."``.
    A CoT with no "answer is" (gpt-3.5 often just ends on the result) is kept whole. Unlike the
    published code, a CoT whose split leaves nothing is kept whole too, never ``' '``.
    """
    marks = list(_ANSWER_IS.finditer(cot))
    if not marks:
        return cot.strip()
    head = cot[: marks[-1].start()]
    cut = head.rfind(".")
    kept = head[: cut + 1].strip() if cut >= 0 else ""
    return kept or cot.strip()


def critique_target(evaluation: str) -> str:
    """An evaluation without its final verdict line: the ``critique:`` target.

    The verdict is the ``verdict:`` task's target; leaving it in the critique would teach it
    twice and make the long target end on the short one. Empty when nothing else is left.
    """
    match = _VERDICT_LINE.search(evaluation)
    body = evaluation[: match.start()] if match else evaluation
    return body.strip()


#: Causal students see ``<input>`` + this separator, then learn the target after it; the
#: separator tells the model where the prompt ends (seq2seq students need none).
CAUSAL_SEPARATOR = "\n"


def causal_prompt(input_text: str) -> str:
    """Prompt of a causal student for one input (training and generation use the same)."""
    return f"{input_text}{CAUSAL_SEPARATOR}"
