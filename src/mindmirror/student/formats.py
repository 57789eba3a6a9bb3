"""Task prefixes and input/target formats of the student, shared by training and inference.

The reasoning and self-evaluation skills get *different* prefixes (the published code reused
``predict:``/``explain:`` for both stages, so stage 2 overwrote what stage 1 taught), and the
self-evaluation input holds the question *and* the CoT (the published code gave the CoT alone).
"""

from __future__ import annotations

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


#: Causal students see ``<input>`` + this separator, then learn the target after it; the
#: separator tells the model where the prompt ends (seq2seq students need none).
CAUSAL_SEPARATOR = "\n"


def causal_prompt(input_text: str) -> str:
    """Prompt of a causal student for one input (training and generation use the same)."""
    return f"{input_text}{CAUSAL_SEPARATOR}"
