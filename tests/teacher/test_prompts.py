"""Prompt templates: golden renderings, template loading, and verdict parsing on real samples."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from mindmirror.errors import UserError
from mindmirror.tasks.base import Example
from mindmirror.tasks.families import EquationTask
from mindmirror.teacher.prompts import (
    available_templates,
    format_cot_messages,
    format_eval_messages,
    load_template,
    parse_verdict,
)
from tests.conftest import shared_path

TASK = EquationTask("svamp")
LUKE = Example(
    id="svamp-train-0000",
    split="train",
    question="Luke scored 84 points after playing 2 rounds of a trivia game. If he gained the "
    "same number of points each round\nHow many points did he score per round?",
    gold="( 84.0 / 2.0 )",
)
FAYE = Example(
    id="svamp-train-0001",
    split="train",
    question="Faye was placing her pencils and crayons into 7 rows with 36 pencils and 30 "
    "crayons in each row.\nHow many crayons does she have?",
    gold="( 7.0 * 30.0 )",
)
FORMAT = "an arithmetic expression over the numbers in the question, such as (84 / 2)"


def test_packaged_templates_are_listed() -> None:
    assert {"cot_v1", "eval_v1"} <= set(available_templates())


def test_cot_prompt_golden_with_one_shot() -> None:
    messages = format_cot_messages(TASK, LUKE, [FAYE], "cot_v1")
    assert messages == [
        {
            "role": "system",
            "content": "You are an expert at solving problems step by step. Reason briefly and "
            "clearly, one step per sentence. End your reply with exactly one final sentence of "
            f'the form "The answer is <answer>." where <answer> is {FORMAT}.',
        },
        {"role": "user", "content": f"Q: {FAYE.question}"},
        {"role": "assistant", "content": "The answer is (7 * 30)."},
        {
            "role": "user",
            "content": f"Q: {LUKE.question}\nThink step by step, then finish with "
            f'"The answer is <answer>." where <answer> is {FORMAT}.',
        },
    ]


def test_cot_prompt_without_shots_skips_shots_without_gold() -> None:
    unlabelled = Example(id="x", split="train", question="What is 1 + 1?", gold=None)
    messages = format_cot_messages(TASK, LUKE, [unlabelled])
    assert [m["role"] for m in messages] == ["system", "user"]


def test_eval_prompt_golden_shows_question_and_one_cot() -> None:
    cot = "84 / 2 = 42. The answer is (84 / 2)."
    messages = format_eval_messages(TASK, LUKE, cot, "eval_v1")
    assert messages[0]["role"] == "system"
    assert messages[1] == {
        "role": "user",
        "content": f"Question: {LUKE.question}\n\nGiven answer: {cot}\n\nEvaluate the given "
        "answer step by step in a few sentences: are the reasoning and the final answer "
        f"({FORMAT}) correct? Then end with exactly one line, choosing one word:\n"
        "Evaluation result: the given answer is correct/wrong/uncertain.",
    }
    # The instruction lists the options; that echo must never read as a verdict.
    assert parse_verdict(messages[1]["content"]) is None


def test_question_with_braces_renders_verbatim() -> None:
    odd = Example(id="b", split="train", question="Is {x} a set? {0}", gold="1")
    assert "Q: Is {x} a set? {0}" in format_cot_messages(TASK, odd, [])[-1]["content"]


def test_unknown_template_is_a_user_error() -> None:
    with pytest.raises(UserError, match=r"unknown prompt template 'cot_v9'.*cot_v1"):
        load_template("cot_v9")
    with pytest.raises(UserError, match="not found"):
        load_template("/nonexistent/my_cot.txt")


def test_user_template_file_gets_a_content_versioned_name(tmp_path: Path) -> None:
    path = tmp_path / "mine.txt"
    path.write_text("# mine\n=== system ===\nS {answer_sentence}\n=== user ===\nU {question}\n")
    template = load_template(str(path))
    assert template.version.startswith("mine@") and len(template.version) == len("mine@") + 8
    messages = format_cot_messages(TASK, LUKE, [], str(path))
    assert messages == [
        {"role": "system", "content": "S The answer is"},
        {"role": "user", "content": f"U {LUKE.question}"},
    ]
    bad = tmp_path / "bad.txt"
    bad.write_text("=== system ===\n{nope}\n=== user ===\n{question}\n")
    with pytest.raises(UserError, match=r"unknown placeholder \{nope\}"):
        format_cot_messages(TASK, LUKE, [], str(bad))


@pytest.mark.parametrize(
    ("text", "verdict"),
    [
        ("Evaluation result: the given answer is correct.", "correct"),
        ("evaluation RESULT: The Given Answer Is WRONG", "wrong"),
        ("**Evaluation result:** the given answer is **uncertain**.", "uncertain"),
        ("Evaluation result: the given answer is incorrect.", "wrong"),
        ("Evaluation result: correct", "correct"),
        ("Evaluation result: the given answer is correct. Extra words after it.", "correct"),
        # The last occurrence wins (a model that changes its mind).
        (
            "Evaluation result: the given answer is correct.\nOn reflection...\n"
            "Evaluation result: the given answer is wrong.",
            "wrong",
        ),
        ("I checked it: the given answer is wrong.", "wrong"),
        ("The reasoning looks fine.", None),
        ("", None),
        ("Evaluation result: the given answer is correct/wrong/uncertain.", None),
    ],
)
def test_parse_verdict_forms(text: str, verdict: str | None) -> None:
    assert parse_verdict(text) == verdict


def test_parse_verdict_on_the_real_minds_mirror_samples() -> None:
    """All 100 gpt-3.5 evaluations of the published sample parse, with their real verdicts."""
    folder = shared_path("svamp", "minds_mirror_samples", "svamp_tree1", "llm")
    counts: Counter[str | None] = Counter()
    for name in ("train_CoT_0.json", "test_CoT_0.json"):
        for item in json.loads((folder / name).read_text()):
            for evaluations in item["steps"][0]["value_outputs_list"]:
                for text in evaluations:
                    verdict = parse_verdict(text)
                    counts[verdict] += 1
                    last_line = text.strip().splitlines()[-1].lower()
                    assert verdict is not None and verdict in last_line
    assert counts == {"correct": 83, "wrong": 15, "uncertain": 2}
