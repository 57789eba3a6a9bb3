"""Worked self-evaluation examples: corrupting a worked solution, and the pairs built from shots."""

from __future__ import annotations

import pytest

from mindmirror.config import TaskConfig, TeacherConfig
from mindmirror.records import Cot, TeacherInfo
from mindmirror.tasks import load_task
from mindmirror.tasks.base import Example
from mindmirror.tasks.families import EquationTask, NumberTask
from mindmirror.teacher.eval_shots import corrupt_rationale, worked_evaluations
from mindmirror.teacher.prompts import parse_verdict
from mindmirror.teacher.sampling import Plan as _Plan
from mindmirror.teacher.sampling import cot_prompts
from mindmirror.teacher.sampling import eval_prompts as _eval_prompts

ARITH = EquationTask("arith")
GSM8K = NumberTask("gsm8k")


@pytest.mark.parametrize(
    ("task", "rationale", "expected"),
    [
        (
            ARITH,
            "Jack has 8 cards and gets 6 more, so 8 + 6 = 14. The answer is (8 + 6).",
            (
                "Jack has 8 cards and gets 6 more, so 8 - 6 = 2. The answer is (8 - 6).",
                "8 + 6 = 14",
                "8 - 6 = 2",
                "(8 - 6)",
            ),
        ),
        # + would go negative with -, so * is taken instead.
        (
            ARITH,
            "Together they have 3 + 8 = 11 apples. The answer is (3 + 8).",
            (
                "Together they have 3 * 8 = 24 apples. The answer is (3 * 8).",
                "3 + 8 = 11",
                "3 * 8 = 24",
                "(3 * 8)",
            ),
        ),
        # Only the last step and the outer operation of a two-step answer change.
        (
            ARITH,
            "Anna had 5 and found 4, so 5 + 4 = 9. Then she gave away 8, so 9 - 8 = 1. "
            "The answer is ((5 + 4) - 8).",
            (
                "Anna had 5 and found 4, so 5 + 4 = 9. Then she gave away 8, so 9 + 8 = 17. "
                "The answer is ((5 + 4) + 8).",
                "9 - 8 = 1",
                "9 + 8 = 17",
                "((5 + 4) + 8)",
            ),
        ),
        # A GSM8K-style worked solution with a plain-number answer (real train row 1).
        (
            GSM8K,
            "Natalia sold 48/2 = 24 clips in May.\n"
            "Natalia sold 48+24 = 72 clips altogether in April and May.\nThe answer is 72.",
            (
                "Natalia sold 48/2 = 24 clips in May.\n"
                "Natalia sold 48 - 24 = 24 clips altogether in April and May.\nThe answer is 24.",
                "48 + 24 = 72",
                "48 - 24 = 24",
                "24",
            ),
        ),
    ],
)
def test_corrupt_rationale_swaps_the_last_operation(
    task: EquationTask, rationale: str, expected: tuple[str, str, str, str]
) -> None:
    corrupted = corrupt_rationale(task, rationale)
    assert corrupted == expected
    text, _, _, answer = corrupted
    # The corrupted solution is wrong by the task's own scoring, the original is right.
    gold = task.parse_answer(rationale)
    assert task.is_correct(task.parse_answer(text), gold) is False
    assert task.parse_answer(text) == answer


@pytest.mark.parametrize(
    "rationale",
    [
        "The answer is (8 + 6).",  # no step at all
        "So 2 + 3 + 4 = 9. The answer is 9.",  # a chain, not a binary step
        "So 5 + 4 = 9. The answer is (5 + 45).",  # the last step is not the answer
        "So 5 + 4 = 10. The answer is 10.",  # the step's own arithmetic is wrong
        "It is 0 * 0 = 0. The answer is 0.",  # every swap is negative or keeps the value
    ],
)
def test_corrupt_rationale_refuses_what_it_cannot_corrupt_safely(rationale: str) -> None:
    assert corrupt_rationale(ARITH, rationale) is None


def test_worked_evaluations_pair_each_usable_shot_and_alternate_the_order() -> None:
    _, splits = load_task(TaskConfig(name="arith", num_examples=50), seed=0)
    shots = splits["train"][:3]
    no_rationale = Example("x", "train", "What is 2 + 2?", "( 2 + 2 )")
    worked = worked_evaluations(ARITH, [shots[0], no_rationale, shots[1], shots[2]])
    assert [w.verdict for w in worked] == [
        "correct",
        "wrong",
        "wrong",
        "correct",
        "correct",
        "wrong",
    ]
    assert [w.question for w in worked[::2]] == [s.question for s in shots]
    right, wrong = worked[0], worked[1]
    assert right.cot == shots[0].rationale and right.needed == right.given == "8 + 6 = 14"
    assert (wrong.needed, wrong.given, wrong.answer) == ("8 + 6 = 14", "8 - 6 = 2", "(8 - 6)")
    assert worked_evaluations(ARITH, [no_rationale]) == []


def test_worked_evaluation_texts_are_never_verdicts_by_themselves() -> None:
    """The judged solutions hold no verdict sentence a parser could pick up by mistake."""
    _, splits = load_task(TaskConfig(name="arith", num_examples=100), seed=0)
    for w in worked_evaluations(ARITH, splits["train"]):
        assert parse_verdict(w.cot) is None


def test_teach_puts_the_same_worked_shots_first_in_every_prompt() -> None:
    """CoT and evaluation prompts of a run share one few-shot prefix (the KV-cache reuse that
    keeps the embedded teacher fast), and no prompt shows its own question as a shot."""
    _, splits = load_task(TaskConfig(name="arith", num_examples=50), seed=0)
    cfg = TeacherConfig(few_shot=2, num_evals=1, cot_prompt="cot_v2", eval_prompt="eval_v2")
    examples = splits["train"][:6]
    shots = examples[:3]  # two shots and the spare; the first two questions are shots
    plan = _Plan(ARITH, examples, shots, None, None, TeacherInfo(model="m", backend="openai"))
    cot = Cot(
        text="So 1 + 2 = 3. The answer is (1 + 2).", answer="(1 + 2)", parsed=True, correct=None
    )
    cots = {ex.id: [cot] for ex in examples}
    for prompts, shot_turns in ((cot_prompts(plan, cfg), 4), (
        _eval_prompts(plan, cfg, cots, {ex.id: [0] for ex in examples}), 8
    )):  # fmt: skip
        prefixes = [tuple(map(str, p.messages[: 1 + shot_turns])) for p in prompts]
        assert len(set(prefixes[2:])) == 1  # every question that is not a shot
        for prompt, example in zip(prompts, examples, strict=True):
            shown = "".join(m["content"] for m in prompt.messages[1:-1])
            assert example.question not in shown
            assert len(prompt.messages) == 2 + shot_turns
