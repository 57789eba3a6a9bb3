"""Adaptive CoTs replayed on real teacher outputs: tokens against answer quality (issue 26).

The MCC-KD SVAMP training file holds 10 gpt-3.5-turbo CoTs per question (700 questions) and a
gold answer, so the gold verdict of each CoT is known. The replay draws each question's CoTs in
the order of the file, as ``teach`` would draw sample indices 0, 1, 2, ..., and stops where a
stopping rule of ``mindmirror.teacher.adaptive`` (the code ``teach`` runs) says the majority is
settled. For fixed N = 1..10 and for each adaptive rule it reports:

- tokens per question: the CoT prompt (``cot_v2`` with 4 shots, rendered by the project for
  each question) once per request, since one request asks for a round's ``n`` samples (``n``
  bills the prompt once: a fixed N is one request, an adaptive question one per round), plus
  each drawn CoT's completion tokens. Counted with the embedded model's GGUF tokenizer (a
  49K BPE vocabulary; no gpt-3.5 tokenizer is installed here), so the token figures are
  relative, not gpt-3.5's bill;
- ``agree_full``: the share of questions whose majority answer equals the majority of all 10;
- ``accuracy``: the share whose majority answer is correct on gold.

The headline compares the default adaptive rule with the smallest fixed N whose accuracy is at
least the rule's: the token saving, and the accuracy lost against it (target: >= 40% fewer
tokens at <= 1 point). The file lists each question's CoTs best first (accuracy by position
falls from 95% to 40%), so the file's order is not how a teacher's samples arrive: the
``RESULT`` line is the mean over ``--orders`` seeded random orders of each question's CoTs
(exchangeable draws); the file-order figure is printed beside it. Writes
``docs/img/adaptive_replay_frontier.png`` with ``--plot``.

    python bench/adaptive_replay.py --plot

Ends with ``RESULT adaptive_token_savings <fraction>``.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mindmirror.config.task import TaskConfig
from mindmirror.config.teacher import AdaptiveConfig, ImportConfig
from mindmirror.tasks import build_task
from mindmirror.tasks.base import Example
from mindmirror.teacher.adaptive import majority, next_count
from mindmirror.teacher.backends.importers import read_tot
from mindmirror.teacher.prompts import format_cot_messages, format_eval_messages
from mindmirror.teacher.tokens import TokenCounter, token_counter

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "svamp" / "mcc_kd" / "train.json"
SAMPLES = ROOT.parent / "shared" / "data" / "svamp" / "minds_mirror_samples"
FULL = 10
SHOTS = 4
EVALS = 5
TOKENS = "bill_per_question"
PLOT = ROOT / "docs" / "img" / "adaptive_replay_frontier.png"


@dataclass
class Question:
    """One question's replay material: canonical answers in file order, their correctness,
    the prompt's tokens and each CoT's completion tokens."""

    answers: list[str | None]
    correct: list[bool]
    prompt_tokens: int
    cot_tokens: list[int]
    eval_tokens: list[int]


def critique_tokens(counter: TokenCounter) -> float:
    """Mean tokens of the published Mind's Mirror gpt-3.5 critiques (the only ones there are)."""
    config = ImportConfig(format="tot", path=str(SAMPLES))
    texts = [e for entry in read_tot(config) for cot in entry.evaluations or [] for e in cot]
    return sum(counter.completion(text) for text in texts) / len(texts)


def load_questions(path: Path) -> list[Question]:
    """Parse every CoT of the file with the project's equation family; count tokens."""
    task = build_task(TaskConfig(name="generic", family="equation"))
    rows = json.loads(path.read_text(encoding="utf-8"))
    counter = token_counter("embedded", "")
    critique = round(critique_tokens(counter))
    examples = [
        Example(f"mcc-{i}", "train", row["instruction"], str(row["label"]))
        for i, row in enumerate(rows)
    ]
    shots = random.Random(0).sample(examples, SHOTS + 1)
    questions = []
    for example, row in zip(examples, rows, strict=True):
        own = [shot for shot in shots if shot.id != example.id][:SHOTS]
        messages = format_cot_messages(task, example, own, "cot_v2")
        answers: list[str | None] = []
        correct = []
        for text in row["output"][:FULL]:
            answer = task.parse_answer(text, None, example.question)
            answers.append(task.canonical(answer) if answer is not None else None)
            correct.append(bool(task.is_correct(answer, example.gold)))
        cot_tokens = [counter.completion(text) for text in row["output"][:FULL]]
        eval_tokens = [
            counter.prompt(format_eval_messages(task, example, text, "eval_v2", own)) + critique
            for text in row["output"][:FULL]
        ]
        questions.append(
            Question(answers, correct, counter.prompt(messages), cot_tokens, eval_tokens)
        )
    return questions


def shuffled(questions: list[Question], seed: int) -> list[Question]:
    """The questions with each one's CoTs in a seeded random order (exchangeable draws)."""
    rng = random.Random(seed)
    out = []
    for q in questions:
        order = rng.sample(range(len(q.answers)), len(q.answers))
        out.append(
            Question(
                [q.answers[i] for i in order],
                [q.correct[i] for i in order],
                q.prompt_tokens,
                [q.cot_tokens[i] for i in order],
                [q.eval_tokens[i] for i in order],
            )
        )
    return out


def replay(questions: list[Question], rule: AdaptiveConfig | None, fixed: int = FULL) -> dict:
    """Tokens (``n`` requests: the prompt once per round; one call per CoT: the prompt once
    per CoT), requests, CoTs and the two quality figures of one policy over all questions."""
    tokens = per_call = bill = requests = cots = agree = right = 0
    for q in questions:
        drawn = 0
        limit = fixed if rule is None else FULL
        while True:
            want = next_count(q.answers[:drawn], rule, limit)
            if want <= drawn:
                break
            tokens += q.prompt_tokens + sum(q.cot_tokens[drawn:want])
            requests += 1
            drawn = want
        per_call += q.prompt_tokens * drawn + sum(q.cot_tokens[:drawn])
        bill += EVALS * sum(q.eval_tokens[:drawn])
        cots += drawn
        vote = majority(q.answers[:drawn])
        agree += vote is not None and vote == majority(q.answers)
        truth = dict(zip(q.answers, q.correct, strict=True))
        right += vote is not None and truth[vote]
    count = len(questions)
    return {
        "bill_per_question": round((tokens + bill) / count, 1),
        "tokens_per_question": round(tokens / count, 1),
        "tokens_per_question_call_per_cot": round(per_call / count, 1),
        "requests_per_question": round(requests / count, 3),
        "cots_per_question": round(cots / count, 3),
        "agree_full": round(agree / count, 4),
        "accuracy": round(right / count, 4),
    }


def averaged(runs: list[dict]) -> dict:
    """The mean of each figure over replays of several CoT orders."""
    return {key: round(sum(run[key] for run in runs) / len(runs), 4) for key in runs[0]}


RULES = {
    "margin 2 first 2 step 1 (default)": AdaptiveConfig(),
    "margin 3 first 3 step 1": AdaptiveConfig(margin=3, first=3),
    "margin 3 first 3 step 7": AdaptiveConfig(margin=3, first=3, step=7),
    "beta 0.8 first 2 step 1": AdaptiveConfig(rule="beta", threshold=0.8),
    "beta 0.9 first 2 step 1": AdaptiveConfig(rule="beta", threshold=0.9),
    "beta 0.95 first 3 step 1": AdaptiveConfig(rule="beta", threshold=0.95, first=3),
    "beta 0.95 first 4 step 6": AdaptiveConfig(rule="beta", threshold=0.95, first=4, step=6),
}
DEFAULT = "margin 2 first 2 step 1 (default)"


def plot(panels: dict[str, tuple[dict, dict]], path: Path) -> None:
    """Per CoT order: agreement with the full-budget majority and accuracy, against tokens."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, grid = plt.subplots(len(panels), 2, figsize=(11, 4 * len(panels)), squeeze=False)
    for (order, (fixed, adaptive)), axes in zip(panels.items(), grid, strict=True):
        _panel(axes, order, fixed, adaptive)
    grid[0][1].legend(fontsize=6, loc="lower right")
    fig.suptitle("Adaptive CoTs replayed on MCC-KD SVAMP (gpt-3.5-turbo CoTs, 700 questions)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)


def _panel(axes: Any, order: str, fixed: dict[int, dict], adaptive: dict[str, dict]) -> None:
    for axis, key, label in (
        (axes[0], "agree_full", "majority = full-budget (N=10) majority"),
        (axes[1], "accuracy", "majority answer correct on gold"),
    ):
        xs = [fixed[n][TOKENS] for n in fixed]
        axis.plot(xs, [fixed[n][key] for n in fixed], "o-", color="grey", label="fixed N")
        for n in fixed:
            axis.annotate(str(n), (fixed[n][TOKENS], fixed[n][key]), fontsize=7)
        for name, row in adaptive.items():
            marker = "*" if name == DEFAULT else "x"
            axis.plot(row[TOKENS], row[key], marker, markersize=10, label=name)
        axis.set_xlabel("teacher tokens per question (CoTs + 5 evaluations of each)")
        axis.set_ylabel(label)
        axis.set_title(order, fontsize=9)
        axis.grid(alpha=0.3)


def headline(fixed: dict[int, dict], rule: dict[str, Any], tokens: str) -> dict[str, Any]:
    """The rule against the smallest fixed N that reaches its accuracy (else N = 10), and
    against N = 10; ``tokens`` names the accounting."""
    reach = [n for n in fixed if fixed[n]["accuracy"] >= rule["accuracy"]]
    n = min(reach) if reach else FULL
    return {
        "fixed_n": n,
        "savings": round(1 - rule[tokens] / fixed[n][tokens], 4),
        "accuracy_loss_points": round(100 * (fixed[n]["accuracy"] - rule["accuracy"]), 2),
        "savings_vs_10": round(1 - rule[tokens] / fixed[FULL][tokens], 4),
        "accuracy_loss_vs_10_points": round(100 * (fixed[FULL]["accuracy"] - rule["accuracy"]), 2),
    }


def report(title: str, questions_sets: list[list[Question]]) -> tuple[dict, dict]:
    """Replay every policy on each CoT order, print the averaged table; return it."""
    fixed = {
        n: averaged([replay(qs, None, n) for qs in questions_sets]) for n in range(1, FULL + 1)
    }
    adaptive = {
        name: averaged([replay(qs, rule) for qs in questions_sets]) for name, rule in RULES.items()
    }
    print(f"\n### {title}\n")
    print(
        "| policy | whole bill/q | CoT tokens/q (n requests) | CoT tokens/q (a call per CoT) "
        "| requests/q | CoTs/q | = N=10 majority | accuracy |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    rows = [(f"fixed N={n}", r) for n, r in fixed.items()] + list(adaptive.items())
    for name, r in rows:
        print(
            f"| {name} | {r['bill_per_question']:,.0f} | {r['tokens_per_question']:,.0f} | "
            f"{r['tokens_per_question_call_per_cot']:,.0f} | {r['requests_per_question']:.2f} | "
            f"{r['cots_per_question']:.2f} | {r['agree_full']:.1%} | {r['accuracy']:.1%} |"
        )
    print()
    for name in RULES:
        for tokens in ("bill_per_question", "tokens_per_question"):
            print(f"{name}, {tokens}: {json.dumps(headline(fixed, adaptive[name], tokens))}")
    return fixed, adaptive


def main() -> None:
    """Replay fixed N = 1..10 and the rules; print the table and the headline."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--orders", type=int, default=20, help="random CoT orders to average")
    parser.add_argument("--plot", type=Path, nargs="?", const=PLOT, help="write the figure")
    args = parser.parse_args()
    if not args.data.is_file():
        sys.exit(f"needs the MCC-KD SVAMP file at {args.data} (../shared/data)")
    questions = load_questions(args.data)
    print(f"{len(questions)} questions, {FULL} CoTs each")
    print(
        "accuracy of the CoT at each file position:",
        [round(sum(q.correct[i] for q in questions) / len(questions), 3) for i in range(FULL)],
    )
    fixed, adaptive = report("CoTs in the order of the file", [questions])
    orders = [shuffled(questions, seed) for seed in range(args.orders)]
    shuffled_fixed, shuffled_adaptive = report(
        f"CoTs in {args.orders} seeded random orders (mean)", orders
    )
    if args.plot:
        plot(
            {"file order": (fixed, adaptive), "random orders": (shuffled_fixed, shuffled_adaptive)},
            args.plot,
        )
        print(f"plot: {args.plot}")
    in_file_order = headline(fixed, adaptive[DEFAULT], "bill_per_question")
    print(
        f"file order (MCC-KD lists CoTs best first, so not a sampling order): savings "
        f"{in_file_order['savings']}"
    )
    # The headline is the teacher's own situation: CoTs arrive as exchangeable draws.
    drawn = headline(shuffled_fixed, shuffled_adaptive[DEFAULT], "bill_per_question")
    print(f"RESULT adaptive_token_savings {drawn['savings']}")


if __name__ == "__main__":
    main()
