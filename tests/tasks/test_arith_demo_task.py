"""The demo's generated arithmetic word problems."""

from __future__ import annotations

import re
from collections import Counter

from mindmirror.config import TaskConfig
from mindmirror.tasks import EquationTask, load_task
from mindmirror.tasks.arith import safe_eval
from mindmirror.tasks.arith_problems import generate_problems
from mindmirror.tasks.splits import question_key

TASK = EquationTask("arith")
# One calculation of a worked solution: "8 + 6 = 14".
STEP = re.compile(r"(\d+) ([-+*/]) (\d+) = (\d+)")


def test_seeded_and_deterministic() -> None:
    assert generate_problems(50, seed=7) == generate_problems(50, seed=7)
    assert generate_problems(50, seed=7) != generate_problems(50, seed=8)


def test_problems_are_distinct_easy_and_have_whole_answers() -> None:
    problems = generate_problems(300, seed=0)
    assert len({question_key(p.question) for p in problems}) == 300
    values = [safe_eval(p.equation) for p in problems]
    assert all(v is not None and v == int(v) and 0 <= v <= 100 for v in values)
    ops = Counter(p.equation.count("(") for p in problems)
    assert ops[1] > 0.75 * 300  # mostly one-step
    assert ops[2] > 0  # some two-step
    kinds = Counter(op for p in problems for op in "+-*/" if f" {op} " in p.equation)
    assert kinds["+"] > kinds["*"] and kinds["-"] > kinds["/"] > 0


def test_splits_60_20_20_by_question() -> None:
    task, splits = load_task(TaskConfig(name="arith", num_examples=200), seed=0)
    assert isinstance(task, EquationTask)
    assert [len(splits[s]) for s in ("train", "validation", "test")] == [120, 40, 40]
    keys = {s: {question_key(e.question) for e in splits[s]} for s in splits}
    assert keys["train"].isdisjoint(keys["test"]) and keys["train"].isdisjoint(keys["validation"])
    assert keys["validation"].isdisjoint(keys["test"])
    example = splits["train"][0]
    assert example.id.startswith("arith-") and example.split == "train"
    assert task.is_correct(str(safe_eval(example.gold or "")), example.gold)
    assert load_task(TaskConfig(name="arith", num_examples=200), seed=0)[1] == splits


def test_worked_solutions_reason_correctly_and_end_in_the_gold_answer() -> None:
    problems = generate_problems(300, seed=0)
    for problem in problems:
        rationale = problem.rationale
        # It ends in the answer sentence the CoT prompt asks for, stating the gold answer.
        assert rationale.endswith(").") and TASK.answer_sentence in rationale
        answer = TASK.parse_answer(rationale)
        assert answer is not None and TASK.is_correct(answer, problem.equation)
        # Every step's arithmetic is right, and the last step's result is the gold value.
        steps = STEP.findall(rationale)
        assert steps, rationale
        for a, op, b, c in steps:
            assert safe_eval(f"{a} {op} {b}") == float(c), rationale
        assert float(steps[-1][3]) == safe_eval(problem.equation)
        # Reasoning uses the question's numbers, never numbers from elsewhere.
        question_numbers = set(re.findall(r"\d+", problem.question))
        assert {a for a, *_ in steps[:1]} <= question_numbers
    two_step = next(p for p in problems if p.equation.count("(") == 2)
    assert len(STEP.findall(two_step.rationale)) == 2


def test_examples_carry_the_worked_solution() -> None:
    _, splits = load_task(TaskConfig(name="arith", num_examples=50), seed=0)
    example = splits["train"][0]
    assert example.rationale == (
        "Jack has 8 cards and gets 6 more, so 8 + 6 = 14. The answer is (8 + 6)."
    )
    assert all(e.rationale for split in splits.values() for e in split)
