"""Validating a judge: its greedy verdicts and verdict probabilities from one prompt pass or two.

At each validation of a self-evaluation stage the trainer wants, for every validation CoT, the
student's greedy verdict (agreement) and its P(correct) (AUROC). It used to run each prompt
twice for them: ``greedy_generate``, then ``verdict_probs``. ``greedy_judge`` runs it once (the
KV cache of the greedy generation, cut back to the prompt, is continued with the three
verdicts). The prompts are the SVAMP protocol's (``recipes/svamp_repro_cpu.yaml``): the
validation questions' MCC-KD gpt-3.5 CoTs in the ``verdict:`` format, imported through the
project's ``import`` backend; the student is the embedded SmolLM2-135M in fp32, as the trainer
validates it, with the recipe's validation batch (32) and token limits (384 prompt tokens, 24
new). An untrained student does not stop after its verdict, so every row generates all 24
tokens: the worst case for the gain (a trained judge stops after about 7).

Both arms run ``--repeats`` times, interleaved. Prints each arm's seconds (median and range),
whether the two arms' texts are identical and the largest difference of their probabilities,
the machine's load, and last ``RESULT judge_validation <two passes / one pass, median
seconds>``.

    python bench/judge_validation.py                  # 64 CoTs, 3 repeats
    python bench/judge_validation.py --items 32       # quicker
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch

from mindmirror.config import load_recipe
from mindmirror.progress import quiet_libraries
from mindmirror.records import read_records
from mindmirror.rundir import RunDir
from mindmirror.student.generate import verdict_probs
from mindmirror.student.model import load_student
from mindmirror.student.validate import greedy_generate, greedy_judge, validation_items
from mindmirror.teacher.teach import teach

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "recipes" / "svamp_repro_cpu.yaml"


def verdict_inputs(folder: Path, count: int) -> list[str]:
    """The first ``count`` validation prompts of the protocol's self-evaluation stage."""
    recipe = load_recipe(RECIPE, [f"run_dir={folder}", "teacher.splits=[validation]"])
    run = RunDir(folder)
    teach(recipe, run, quiet=True)
    items = validation_items(read_records(run.records), "evaluation", limit=None)
    return [item.input for item in items[:count]]


def main() -> None:
    """Time both arms, interleaved, and print the comparison."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=64, help="validation CoTs judged")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch", type=int, default=32, help="train.eval_batch_size")
    parser.add_argument("--max-new-tokens", type=int, default=24)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    quiet_libraries()
    torch.set_num_threads(args.threads)
    recipe = load_recipe(RECIPE)
    options = {
        "max_new_tokens": args.max_new_tokens,
        "max_input_tokens": recipe.train.max_input_tokens,
        "batch_size": args.batch,
    }
    with tempfile.TemporaryDirectory(prefix="mm-bench-") as tmp:
        inputs = verdict_inputs(Path(tmp) / "run", args.items)
    model, tok, kind = load_student(recipe.train.student)
    print(f"{len(inputs)} verdict prompts, batch {args.batch}, {args.threads} threads, fp32")

    def two_passes() -> tuple[list[str], list[dict[str, float]]]:
        texts = greedy_generate(model, tok, kind, inputs, **options)
        probs = verdict_probs(
            model,
            tok,
            inputs,
            batch_size=options["batch_size"],
            max_input_tokens=options["max_input_tokens"],
        )
        return texts, probs

    def one_pass() -> tuple[list[str], list[dict[str, float]]]:
        return greedy_judge(model, tok, kind, inputs, **options)

    arms = {"two passes": two_passes, "one pass": one_pass}
    seconds: dict[str, list[float]] = {name: [] for name in arms}
    results = {}
    for repeat in range(args.repeats):
        for name, arm in arms.items():
            start = time.perf_counter()
            results[name] = arm()
            seconds[name].append(time.perf_counter() - start)
            print(f"repeat {repeat + 1} {name}: {seconds[name][-1]:.1f} s", flush=True)
    (texts_a, probs_a), (texts_b, probs_b) = results.values()
    gap = max(abs(a[v] - b[v]) for a, b in zip(probs_a, probs_b, strict=True) for v in a)
    print(
        f"same greedy text: {sum(a == b for a, b in zip(texts_a, texts_b, strict=True))}"
        f" of {len(texts_a)}; largest verdict probability difference {gap:.2e}"
    )
    print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print("| arm | seconds, median (min-max) |\n|---|---|")
    for name, values in seconds.items():
        median = statistics.median(values)
        print(f"| {name} | {median:.1f} ({min(values):.1f}-{max(values):.1f}) |")
    ratio = statistics.median(seconds["two passes"]) / statistics.median(seconds["one pass"])
    print(f"RESULT judge_validation {ratio:.2f}")


if __name__ == "__main__":
    main()
