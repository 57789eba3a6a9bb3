"""The demo task: seeded one- and two-step arithmetic word problems with SVAMP-style equations.

Benchmark data cannot ship with the project, so the offline demo writes its own problems. They
are deliberately easy (small whole numbers, mostly one step of + or -, some * and exact /, a
few two-step problems) so that the embedded 135M teacher is right often enough for distilling
its reasoning and its self-evaluation to show an effect. Each problem comes with a worked
solution (its ``rationale``), which few-shot prompts show the teacher as the way to reason.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import NamedTuple

from mindmirror.tasks.base import Example, Task
from mindmirror.tasks.splits import question_key

NAMES = ("Tom", "Anna", "Sam", "Lily", "Ben", "Mia", "Jack", "Emma", "Leo", "Zoe")
ITEMS = ("apples", "books", "coins", "pencils", "stickers", "marbles", "cookies", "cards")


class Problem(NamedTuple):
    """One generated problem: the question, its SVAMP-style gold equation, a worked solution."""

    question: str
    equation: str
    rationale: str


def _eq(a: int, op: str, b: int) -> str:
    return f"( {a}.0 {op} {b}.0 )"


def _solved(steps: str, expression: str) -> str:
    """The worked solution: the reasoning, then the answer sentence the CoT prompt asks for."""
    return f"{steps} {Task.answer_sentence} {expression}."


def _add(rng: random.Random, name: str, other: str, item: str) -> Problem:
    a, b = rng.randint(2, 9), rng.randint(2, 9)
    return Problem(
        f"{name} has {a} {item}. {other} gives {name} {b} more {item}. "
        f"How many {item} does {name} have now?",
        _eq(a, "+", b),
        _solved(
            f"{name} has {a} {item} and gets {b} more, so {a} + {b} = {a + b}.", f"({a} + {b})"
        ),
    )


def _add_total(rng: random.Random, name: str, other: str, item: str) -> Problem:
    a, b = rng.randint(2, 9), rng.randint(2, 9)
    return Problem(
        f"{name} has {a} {item} and {other} has {b} {item}. How many {item} do they have in all?",
        _eq(a, "+", b),
        _solved(f"Together they have {a} + {b} = {a + b} {item}.", f"({a} + {b})"),
    )


def _sub(rng: random.Random, name: str, other: str, item: str) -> Problem:
    b = rng.randint(2, 8)
    a = b + rng.randint(1, 9)
    return Problem(
        f"{name} had {a} {item}. {name} gave {b} {item} to {other}. "
        f"How many {item} does {name} have left?",
        _eq(a, "-", b),
        _solved(
            f"{name} had {a} {item} and gave away {b}, so {a} - {b} = {a - b}.", f"({a} - {b})"
        ),
    )


def _sub_more(rng: random.Random, name: str, other: str, item: str) -> Problem:
    b = rng.randint(2, 8)
    a = b + rng.randint(1, 9)
    return Problem(
        f"{name} has {a} {item} and {other} has {b} {item}. "
        f"How many more {item} does {name} have than {other}?",
        _eq(a, "-", b),
        _solved(f"The difference is {a} - {b} = {a - b} {item}.", f"({a} - {b})"),
    )


def _mul(rng: random.Random, name: str, other: str, item: str) -> Problem:
    a, b = rng.randint(2, 5), rng.randint(2, 5)
    return Problem(
        f"{name} has {a} boxes. Each box has {b} {item}. How many {item} does {name} have in all?",
        _eq(a, "*", b),
        _solved(f"{a} boxes of {b} {item} make {a} * {b} = {a * b} {item}.", f"({a} * {b})"),
    )


def _div(rng: random.Random, name: str, other: str, item: str) -> Problem:
    b, q = rng.randint(2, 5), rng.randint(2, 5)
    return Problem(
        f"{name} shares {b * q} {item} equally among {b} friends. "
        f"How many {item} does each friend get?",
        _eq(b * q, "/", b),
        _solved(f"Each friend gets {b * q} / {b} = {q} {item}.", f"({b * q} / {b})"),
    )


def _add_sub(rng: random.Random, name: str, other: str, item: str) -> Problem:
    a, b = rng.randint(2, 9), rng.randint(2, 9)
    c = rng.randint(1, a + b - 1)
    return Problem(
        f"{name} had {a} {item}. {name} found {b} more {item} and then gave {c} {item} "
        f"to {other}. How many {item} does {name} have now?",
        f"( ( {a}.0 + {b}.0 ) - {c}.0 )",
        _solved(
            f"{name} had {a} {item} and found {b}, so {a} + {b} = {a + b}. "
            f"Then {name} gave away {c}, so {a + b} - {c} = {a + b - c}.",
            f"(({a} + {b}) - {c})",
        ),
    )


# (template, weight): mostly one-step + and -, the 135M teacher's reach.
TEMPLATES: tuple[tuple[Callable[[random.Random, str, str, str], Problem], int], ...] = (
    (_add, 5),
    (_add_total, 4),
    (_sub, 5),
    (_sub_more, 2),
    (_mul, 2),
    (_div, 1),
    (_add_sub, 2),
)


def generate_problems(count: int, seed: int) -> list[Problem]:
    """``count`` distinct problems (question, equation, worked solution), the same per seed."""
    rng = random.Random(seed)
    templates = [t for t, _ in TEMPLATES]
    weights = [w for _, w in TEMPLATES]
    problems: list[Problem] = []
    seen: set[str] = set()
    # The template space holds thousands of distinct problems; the attempt cap only guards
    # against a count beyond it.
    for _ in range(count * 50):
        if len(problems) == count:
            break
        name, other = rng.sample(NAMES, 2)
        template = rng.choices(templates, weights)[0]
        problem = template(rng, name, other, rng.choice(ITEMS))
        if question_key(problem.question) not in seen:
            seen.add(question_key(problem.question))
            problems.append(problem)
    return problems


def arith_splits(count: int, seed: int) -> dict[str, list[Example]]:
    """The demo task's splits: ``count`` problems, 60/20/20 train/validation/test by question."""
    problems = generate_problems(count, seed)
    n_train, n_val = round(len(problems) * 0.6), round(len(problems) * 0.2)
    splits: dict[str, list[Example]] = {"train": [], "validation": [], "test": []}
    for i, problem in enumerate(problems):
        split = "train" if i < n_train else "validation" if i < n_train + n_val else "test"
        splits[split].append(
            Example(
                f"arith-{i:04d}",
                split,
                problem.question,
                problem.equation,
                rationale=problem.rationale,
            )
        )
    return splits
