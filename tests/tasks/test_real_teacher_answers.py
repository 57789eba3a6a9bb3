"""Parse rate, answer cleanliness and teacher accuracy over the real teacher outputs in
../shared/data.

The floors and ranges bracket what was measured (noted beside each) so a parser regression
shows up as a drop, while the exact figures live in the report. Parse rates may not fall more
than 2 points below what the parser before issue 8 measured (``BEFORE_*``), although that
parser counted junk such as ``(2 * x)`` read as ``2`` as parsed.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from mindmirror.config import TaskConfig
from mindmirror.tasks import ChoiceTask, EquationTask, LabelTask, Task, load_task
from mindmirror.tasks.arith import safe_eval
from mindmirror.tasks.families import NLI_LABELS, NLI_SYNONYMS
from tests.conftest import shared_path

# Parse rates of the parser before issue 8 (the committed families.py this change started
# from), measured with this file's _rates on the same files: an answer found that has a value.
BEFORE_PALM_SVAMP_TRAIN = 0.996
BEFORE_PALM_SVAMP_TEST = 0.995
BEFORE_MCC_KD = 0.977
BEFORE_MINDS_MIRROR = 1.0
ALLOWED_DROP = 0.02
# A clean answer: numbers, + - * / and parentheses, balanced (the safe evaluator reads it).
_CLEAN_CHARS = re.compile(r"[\d\s.,+\-*/()]+")


def _clean_share(task: Task, cots: list[str]) -> float:
    """Share of the parsed answers that are clean expressions (what becomes a target)."""
    answers = [a for a in (task.parse_answer(cot) for cot in cots) if a is not None]
    clean = [a for a in answers if _CLEAN_CHARS.fullmatch(a) and safe_eval(a) is not None]
    return len(clean) / len(answers)


def _cut(text: str, marker: str) -> str:
    """PaLM's few-shot completions run on into the next exemplar: keep the first answer."""
    return text.split(marker, 1)[0]


def _rates(
    task: Task,
    cots: list[str],
    golds: list[str | None],
    choices: list[tuple[str, ...]] | None = None,
    questions: list[str] | None = None,
) -> tuple[float, float]:
    """Share of CoTs with a parseable answer, and share answered correctly."""
    parsed = correct = 0
    for i, (cot, gold) in enumerate(zip(cots, golds, strict=True)):
        row_choices = choices[i] if choices else None
        answer = task.parse_answer(cot, row_choices, questions[i] if questions else None)
        parsed += answer is not None and task.canonical(answer, row_choices) is not None
        correct += bool(task.is_correct(answer, gold, row_choices))
    return parsed / len(cots), correct / len(cots)


def test_palm_svamp_dss_train() -> None:
    folder = shared_path("svamp", "dss")
    task, splits = load_task(TaskConfig(name="svamp", path=str(folder), val_fraction=0.0), 0)
    assert isinstance(task, EquationTask)
    rows = {int(e.id.rsplit("-", 1)[1]): e for e in splits["train"]}
    cots = []
    for k in (0, 1):
        cots += json.loads((folder / "llm" / f"train_CoT_{k}.json").read_text())
    assert len(cots) == len(rows) == 800
    cots = [_cut(c, "\n\nQ:") for c in cots]
    parse_rate, accuracy = _rates(task, cots, [rows[i].gold for i in range(len(cots))])
    # measured 0.9825: the rest state an unknown ("(2 * x)", "(some - 8)") or two answers
    assert parse_rate >= BEFORE_PALM_SVAMP_TRAIN - ALLOWED_DROP
    assert 0.70 <= accuracy <= 0.80  # measured 0.7462
    assert _clean_share(task, cots) >= 0.99  # measured 1.0


def test_palm_svamp_dss_test() -> None:
    folder = shared_path("svamp", "dss")
    _, splits = load_task(TaskConfig(name="svamp", path=str(folder)), 0)
    cots = json.loads((folder / "llm" / "test_CoT_0.json").read_text())
    golds = [e.gold for e in sorted(splits["test"], key=lambda e: e.id)]
    cots = [_cut(c, "\n\nQ:") for c in cots]
    parse_rate, accuracy = _rates(EquationTask("svamp"), cots, golds)
    assert parse_rate >= BEFORE_PALM_SVAMP_TEST - ALLOWED_DROP  # measured 0.98
    assert 0.72 <= accuracy <= 0.84  # measured 0.78
    assert _clean_share(EquationTask("svamp"), cots) >= 0.99  # measured 1.0


def test_gpt35_mcc_kd_cots() -> None:
    folder = shared_path("svamp", "mcc_kd")
    task, splits = load_task(TaskConfig(name="svamp", path=str(folder)), 0)
    rows = json.loads((folder / "train.json").read_text())
    cots = [cot for row in rows for cot in row["output"]]
    golds = [str(row["label"]) for row in rows for _ in row["output"]]
    questions = [row["instruction"] for row in rows for _ in row["output"]]
    assert len(cots) == 7000
    parse_rate, accuracy = _rates(task, cots, golds, questions=questions)
    # measured 0.988 (no answer sentence: the conclusion's result counts)
    assert parse_rate >= BEFORE_MCC_KD - ALLOWED_DROP
    # measured 0.736: raw, unfiltered gpt-3.5 samples, scored by the expression's value. The
    # last-number reading measured 0.676: it read numbers the conclusion restates from the
    # question ("... 1463 animals in 77 aquariums" as 77) as the answer.
    assert 0.70 <= accuracy <= 0.78
    # measured 1.0 (0.762 before: "100 - 68 = 32", ") = 59", "÷ 2", "3(971")
    assert _clean_share(task, cots) >= 0.99
    assert [e.gold for e in splits["train"][:3]] == [str(r["label"]) for r in rows[:3]]


def test_minds_mirror_tree_of_thought_cots() -> None:
    folder = shared_path("svamp", "minds_mirror_samples", "svamp_tree1")
    task = EquationTask("svamp")
    every: list[str] = []
    for split in ("train", "test"):
        trees = json.loads((folder / "llm" / f"{split}_CoT_0.json").read_text())
        lines = (folder / f"svamp_tree1_{split}.json").read_text().splitlines()
        golds = [json.loads(line)["label"] for line in lines]
        for tree, gold in zip(trees, golds, strict=True):
            cots = tree["steps"][0]["new_ys"]
            assert len(cots) == 5
            assert all(task.is_correct(task.parse_answer(cot), gold) for cot in cots)
            every += cots
    assert _rates(task, every, [None] * len(every))[0] >= BEFORE_MINDS_MIRROR - ALLOWED_DROP
    assert _clean_share(task, every) == 1.0


def _jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_palm_commonsenseqa() -> None:
    folder = shared_path("cqa", "dss")
    task = ChoiceTask("cqa")
    rows = _jsonl(folder / "cqa_test.json")
    cots = []
    for k in (0, 1):
        cots += json.loads((folder / "llm" / f"test_CoT_{k}.json").read_text())
    choices = [tuple(r["choices"]) for r in rows]
    golds = ["ABCDE"[r["choices"].index(r["answer"])] for r in rows]
    parse_rate, accuracy = _rates(task, [_cut(c, "\n\nQ:") for c in cots], golds, choices)
    assert parse_rate >= 0.96  # measured 0.980; the rest are "either (a) ... or (e) ..."
    assert 0.72 <= accuracy <= 0.84  # measured 0.785


def test_palm_anli() -> None:
    folder = shared_path("anli1", "dss")
    task = LabelTask("anli", NLI_LABELS, NLI_SYNONYMS)
    for split, low, high in (("valid", 0.62, 0.73), ("test", 0.61, 0.72)):
        rows = _jsonl(folder / f"anli1_{split}.json")
        cots = json.loads((folder / "llm" / f"{split}_CoT_0.json").read_text())
        golds = [NLI_LABELS[r["label"]] for r in rows]
        parse_rate, accuracy = _rates(task, [_cut(c, "\n\nPremise:") for c in cots], golds)
        assert parse_rate >= 0.99  # measured 0.999 (valid), 1.0 (test)
        assert low <= accuracy <= high  # measured 0.675 (valid), 0.664 (test)
