"""The default templates put every prompt's fixed part first (system message, few-shot turns)
and the question last, so a provider that caches long prompt prefixes bills the fixed part
once per run (issue 26)."""

from __future__ import annotations

from mindmirror.tasks.base import Example
from mindmirror.tasks.families import EquationTask
from mindmirror.teacher.prompts import format_cot_messages, format_eval_messages

TASK = EquationTask("svamp")
SHOTS = [
    Example(
        f"s{i}",
        "train",
        f"Tom has {i} apples and buys 3 more. How many apples does he have?",
        f"( {i} + 3 )",
        rationale=f"{i} + 3 = {i + 3}. The answer is ({i} + 3).",
    )
    for i in range(3)
]
ONE = Example("q1", "train", "Ann has 8 pens and loses 2. How many are left?", "( 8 - 2 )")
TWO = Example("q2", "train", "Bob reads 5 pages a day for 4 days. How many pages?", "( 5 * 4 )")


def test_cot_v2_prompts_differ_only_in_their_last_turn() -> None:
    one = format_cot_messages(TASK, ONE, SHOTS, "cot_v2")
    two = format_cot_messages(TASK, TWO, SHOTS, "cot_v2")
    assert len(one) == len(two) == 2 + 2 * len(SHOTS)
    assert one[:-1] == two[:-1]
    assert one[-1]["role"] == "user" and one[-1]["content"].endswith(ONE.question)


def test_eval_v2_prompts_put_the_question_and_the_cot_last() -> None:
    cot = "8 - 2 = 6. The answer is (8 - 2)."
    one = format_eval_messages(TASK, ONE, cot, "eval_v2", SHOTS)
    two = format_eval_messages(TASK, TWO, "5 * 4 = 20. The answer is (5 * 4).", "eval_v2", SHOTS)
    assert len(one) > 2 and one[:-1] == two[:-1]
    last = one[-1]["content"]
    assert last.index(ONE.question) < last.index(cot) and last.endswith(cot)
