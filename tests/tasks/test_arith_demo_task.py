"""The demo's generated arithmetic word problems."""

from __future__ import annotations

from collections import Counter

from mindmirror.config import TaskConfig
from mindmirror.tasks import EquationTask, load_task
from mindmirror.tasks.arith import safe_eval
from mindmirror.tasks.arith_problems import generate_problems
from mindmirror.tasks.splits import question_key


def test_seeded_and_deterministic() -> None:
    assert generate_problems(50, seed=7) == generate_problems(50, seed=7)
    assert generate_problems(50, seed=7) != generate_problems(50, seed=8)


def test_problems_are_distinct_easy_and_have_whole_answers() -> None:
    problems = generate_problems(300, seed=0)
    assert len({question_key(q) for q, _ in problems}) == 300
    values = [safe_eval(eq) for _, eq in problems]
    assert all(v is not None and v == int(v) and 0 <= v <= 100 for v in values)
    ops = Counter(eq.count("(") for _, eq in problems)
    assert ops[1] > 0.75 * 300  # mostly one-step
    assert ops[2] > 0  # some two-step
    kinds = Counter(op for _, eq in problems for op in "+-*/" if f" {op} " in eq)
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
