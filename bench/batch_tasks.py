"""In how many training steps each task is trained, by batching rule (issue 23, point 1).

Builds the SVAMP protocol's rows (``recipes/svamp_repro_cpu.yaml``: the MCC-KD gpt-3.5 CoTs
imported onto the DSS questions) for the CoT methods, measures every row's tokens with the
embedded student's tokenizer, and orders one epoch's rows four ways:

- ``rows by length``: transformers' LengthGroupedSampler over rows (our trainer until issue 23,
  ``group_by_length`` on in every recipe);
- ``rows at random``: a random permutation of rows (``group_by_length`` off before issue 23);
- ``examples``: ``batching.example_order`` (now: each example's rows in one micro-batch);
- ``examples by length``: the same with ``group_by_length`` on.

For each it prints the share of micro-batches (steps) that train the answer task (hold a
``predict:`` row) and the share of (question, CoT) examples whose two rows share a step, as the
published trainer guarantees. Standard fine-tuning trains its one task in every step.

    python bench/batch_tasks.py          # about a minute; no training
"""

from __future__ import annotations

import statistics
import tempfile
from pathlib import Path

import torch
from transformers.trainer_pt_utils import LengthGroupedSampler

from mindmirror.config import load_recipe
from mindmirror.records import read_records
from mindmirror.rundir import RunDir
from mindmirror.student.batching import example_order
from mindmirror.student.encoding import encode_row, feature_length
from mindmirror.student.formats import SHORT_TASKS
from mindmirror.student.model import load_student
from mindmirror.student.rows import Row, build_rows
from mindmirror.student.train import row_spec, rows_per_batch
from mindmirror.tasks import build_task
from mindmirror.teacher.teach import teach

ROOT = Path(__file__).resolve().parent.parent
RECIPE = ROOT / "recipes" / "svamp_repro_cpu.yaml"
SEEDS = (0, 1, 2)
CELLS = (("1 CoT", "step_by_step", 1), ("5 CoTs", "multi_cot", 5))


def orders(rows: list[Row], lengths: list[int], size: int, seed: int) -> dict[str, list[int]]:
    """One epoch's row order under each batching rule, from the same seed."""
    examples = [row.example for row in rows]
    torch.manual_seed(seed)
    grouped = list(LengthGroupedSampler(size, lengths=lengths))
    generator = torch.Generator().manual_seed(seed)
    return {
        "rows by length": grouped,
        "rows at random": torch.randperm(len(rows), generator=generator).tolist(),
        "examples": example_order(examples, lengths, size, by_length=False, generator=generator),
        "examples by length": example_order(
            examples, lengths, size, by_length=True, generator=generator
        ),
    }


def shares(rows: list[Row], order: list[int], size: int) -> tuple[float, float]:
    """(steps holding a predict row, examples whose rows share a step) for one order."""
    batches = [order[start : start + size] for start in range(0, len(order), size)]
    answer = sum(any(rows[i].prefix in SHORT_TASKS for i in b) for b in batches) / len(batches)
    step_of = {i: n for n, batch in enumerate(batches) for i in batch}
    steps: dict[str, set[int]] = {}
    for index, row in enumerate(rows):
        steps.setdefault(row.example, set()).add(step_of[index])
    together = sum(len(s) == 1 for s in steps.values()) / len(steps)
    return answer, together


def main() -> None:
    """Print the table of shares for the protocol's CoT cells."""
    base = load_recipe(RECIPE)
    task = build_task(base.task)
    _, tokenizer, kind = load_student(base.train.student)
    with tempfile.TemporaryDirectory() as tmp:
        run = RunDir(Path(tmp) / "run")
        teach(load_recipe(RECIPE, [f"run_dir={run.root}"]), run, quiet=True)
        records = read_records(run.records)
    limits = {
        "max_input_tokens": base.train.max_input_tokens,
        "max_target_tokens": base.train.max_target_tokens,
    }
    print(
        "| cell | batching | steps training the answer task | examples with both rows in one step |"
    )
    print("|---|---|---|---|")
    for name, method, n in CELLS:
        cfg = base.train.model_copy(update={"method": method, "num_cots": n})
        rows, _ = build_rows(records, task, row_spec(cfg), "reasoning")
        lengths = [feature_length(encode_row(tokenizer, kind, r, **limits)) for r in rows]
        size = rows_per_batch(cfg, rows)
        results: dict[str, list[tuple[float, float]]] = {}
        for seed in SEEDS:
            for rule, order in orders(rows, lengths, size, seed).items():
                results.setdefault(rule, []).append(shares(rows, order, size))
        for rule, values in results.items():
            answer = statistics.median(v[0] for v in values)
            together = statistics.median(v[1] for v in values)
            print(f"| {name} ({len(rows)} rows, {size} a step) | {rule} | {answer:.1%} | "
                  f"{together:.1%} |")  # fmt: skip
    print(f"\nmedians over seeds {', '.join(map(str, SEEDS))}")


if __name__ == "__main__":
    main()
