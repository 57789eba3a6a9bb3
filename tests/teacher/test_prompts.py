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


JACK = Example(
    id="arith-0000",
    split="train",
    question="Jack has 8 cards. Zoe gives Jack 6 more cards. How many cards does Jack have now?",
    gold="( 8.0 + 6.0 )",
    rationale="Jack has 8 cards and gets 6 more, so 8 + 6 = 14. The answer is (8 + 6).",
)


def test_packaged_templates_are_listed() -> None:
    assert {"cot_v1", "eval_v1", "cot_v2", "eval_v2"} <= set(available_templates())


def test_cot_v2_shots_show_the_worked_solution_or_fall_back_to_the_answer() -> None:
    messages = format_cot_messages(TASK, LUKE, [JACK, FAYE], "cot_v2")
    assert [m["role"] for m in messages] == ["system"] + ["user", "assistant"] * 2 + ["user"]
    assert messages[1] == {"role": "user", "content": f"Q: {JACK.question}"}
    assert messages[2] == {"role": "assistant", "content": JACK.rationale}
    # FAYE has no rationale: its shot is the v1 answer sentence.
    assert messages[4] == {"role": "assistant", "content": "The answer is (7 * 30)."}
    assert messages[-1] == {"role": "user", "content": f"Q: {LUKE.question}"}
    # The shots (the shared prefix) are the same whichever question follows.
    assert format_cot_messages(TASK, FAYE, [JACK], "cot_v2")[:3] == messages[:3]


def test_eval_v2_shows_worked_evaluations_before_the_question() -> None:
    cot = "Luke gets 84 / 2 = 42. The answer is (84 / 2)."
    messages = format_eval_messages(TASK, LUKE, cot, "eval_v2", [JACK, FAYE])
    roles = [m["role"] for m in messages]
    assert roles == ["system"] + ["user", "assistant"] * 2 + ["user"]
    shown = f"Question: {JACK.question}\n\nGiven answer: "
    assert messages[1]["content"] == shown + (JACK.rationale or "")
    assert messages[2]["content"] == (
        "The question needs 8 + 6 = 14, and the given answer computes 8 + 6 = 14.\n"
        "Evaluation result: the given answer is correct."
    )
    assert messages[3]["content"] == shown + (
        "Jack has 8 cards and gets 6 more, so 8 - 6 = 2. The answer is (8 - 6)."
    )
    assert messages[4]["content"] == (
        "The question needs 8 + 6 = 14, but the given answer computes 8 - 6 = 2.\n"
        "Evaluation result: the given answer is wrong."
    )
    assert messages[-1]["content"] == f"Question: {LUKE.question}\n\nGiven answer: {cot}"
    assert [parse_verdict(m["content"]) for m in messages[2:5:2]] == ["correct", "wrong"]
    # The system message names the verdict line without stating a verdict.
    assert parse_verdict(messages[0]["content"]) is None


def test_eval_prompts_without_worked_shots_are_zero_shot() -> None:
    cot = "The answer is (84 / 2)."
    assert [m["role"] for m in format_eval_messages(TASK, LUKE, cot, "eval_v2", [FAYE])] == [
        "system",
        "user",
    ]
    # eval_v1 has no shot sections and ignores shots.
    with_shots = format_eval_messages(TASK, LUKE, cot, "eval_v1", [JACK])
    assert with_shots == format_eval_messages(TASK, LUKE, cot, "eval_v1")


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
        ("End with: Evaluation result: the given answer is correct, wrong or uncertain.", None),
        ("Evaluation result: the given answer is correct or wrong.", None),
        ("Evaluation result: the given answer is not correct.", "wrong"),
        ("The given answer is not wrong.", "correct"),
        ("Evaluation result: the given answer is not uncertain.", None),
        ("The word correct appears here, and so does wrong.", None),
        # "The answer is X" without the label counts only as the last sentence.
        ("The answer is correct only when 84 / 2 = 42 holds. I am not sure it does.", None),
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


# Real SmolLM2-135M-Instruct evaluations (embedded teacher, eval_v1 and eval_v2 prompts) with
# the verdict a reader takes from them; None where the model stated no verdict.
SMOLLM2_EVALUATIONS = [
    (
        "The question needs 9 * 2 = 18, and the given answer computes 9 + 18 = 27.\n"
        "Evaluation result: the given answer is wrong.",
        "wrong",
    ),
    (
        "The question needs 20 - 3 = 17, and the given answer computes 20 + 1 = 21.\n"
        "Evaluation result: The answer is correct.",
        "correct",
    ),
    (
        "The question needs 1 + 4 = 5, and the given answer computes 3 + 4 = 7.\n"
        "Evaluation result: the answer is wrong.",
        "wrong",
    ),
    (
        "The question needs 9 - 6 = 3, and the given answer computes 9 + 6 = 15.\n"
        "Evaluation result: the given answer is incorrect.",
        "wrong",
    ),
    (
        "The question needs 3 * 4 = 12, and the given answer computes (3 x 4) = 12, so its "
        "final answer is correct.\nEvaluation result: the given answer is right.",
        "correct",
    ),
    (
        "The question needs 10 + 5 = 6, and the given answer computes 2 * 6 = 12. "
        "The final answer is correct.",
        "correct",
    ),
    ("The question needs 3 + 8 = 11, and the given answer is correct.", "correct"),
    (
        "The question needs 12 - 6 = 4 pencils, and the given answer computes 12 + 4 = 16. The "
        "final answer is correct.\nEvaluation result: the final answer (9) is right.",
        "correct",
    ),
    ("The answer is indeed correct/wrong.", None),
    ("The question needs 18 + 2 = 20, and the answer is (18 + 2) = 20.", None),
    (
        "The question needs 21 + 4 = 20, and the given answer computes 6.\n"
        "Evaluation result: 3 + 48 is incorrect; it is correct to 9/5 because of the 6 in 7",
        None,
    ),
    (
        "The given answer is indeed correct, but there's still a bit of uncertainty involved. "
        "To evaluate the possible outcomes and results:",
        None,
    ),
    (
        "The answer to the given question is (9 - 84) / 2 = (6 * -1) / (-1) = 3.",
        None,
    ),
]


@pytest.mark.parametrize(("text", "verdict"), SMOLLM2_EVALUATIONS)
def test_parse_verdict_on_real_smollm2_evaluations(text: str, verdict: str | None) -> None:
    assert parse_verdict(text) == verdict
