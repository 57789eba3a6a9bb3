"""Each (question, CoT) example's rows are trained in the same step (issue 23, point 1).

Sorting rows by length put short ``predict:`` rows and long ``explain:`` rows in different
batches, so the CoT methods trained the answer task in only about half of their steps while
standard fine-tuning trained it in all of them. The published trainer batches examples, each
carrying both tasks; these tests hold our rows to that, with and without length grouping.
"""

from __future__ import annotations

from collections import defaultdict

import pytest
import torch

from mindmirror.config import TrainConfig
from mindmirror.records import Record
from mindmirror.student.batching import example_order, example_units
from mindmirror.student.formats import SHORT_TASKS
from mindmirror.student.rows import Row, RowSpec, build_rows
from mindmirror.student.train import make_trainer, rows_per_batch
from mindmirror.student.validate import validation_items
from mindmirror.tasks.families import EquationTask


def _rows(records: list[Record], task: EquationTask, method: str, stage: str) -> list[Row]:
    spec = RowSpec(method=method, labels="gold", num_cots=2, explain_target="cot")  # type: ignore[arg-type]
    rows, _ = build_rows(records, task, spec, stage)  # type: ignore[arg-type]
    return rows


def _batches(order: list[int], size: int) -> list[list[int]]:
    return [order[start : start + size] for start in range(0, len(order), size)]


@pytest.mark.parametrize("by_length", [False, True])
@pytest.mark.parametrize("method", ["step_by_step", "multi_cot"])
def test_every_step_trains_both_tasks_of_each_example(records, task, method, by_length) -> None:
    # Targets of very different lengths, as real CoTs and answers are.
    rows = _rows(records, task, method, "reasoning")
    lengths = [8 if row.prefix in SHORT_TASKS else 200 + 7 * i for i, row in enumerate(rows)]
    size = rows_per_batch(TrainConfig(batch_size=2, method=method), rows)  # type: ignore[arg-type]
    assert size == 4
    for seed in range(10):
        generator = torch.Generator().manual_seed(seed)
        order = example_order(
            [r.example for r in rows], lengths, size, by_length=by_length, generator=generator
        )
        assert sorted(order) == list(range(len(rows)))
        batch_of = {}
        for number, batch in enumerate(_batches(order, size)):
            prefixes = {rows[i].prefix in SHORT_TASKS for i in batch}
            assert prefixes == {True, False}, "a step without one of the two tasks"
            batch_of.update({i: number for i in batch})
        together = defaultdict(set)
        for index, row in enumerate(rows):
            together[row.example].add(batch_of[index])
        assert all(len(batches) == 1 for batches in together.values())


def test_single_row_examples_never_shift_the_pairs_across_batches() -> None:
    # Joint training with gold verdicts: verdict rows alone, reasoning rows in pairs, and an
    # odd number of lone rows.
    examples = ["v1", "p1", "p1", "v2", "p2", "p2", "v3", "p3", "p3", "p4", "p4"]
    units = example_units(examples)
    assert units[:3] == [[0, 3], [1, 2], [4, 5]]
    for seed in range(20):
        generator = torch.Generator().manual_seed(seed)
        order = example_order(
            examples, [1] * len(examples), 4, by_length=False, generator=generator
        )
        for batch in _batches(order, 4):
            names = [examples[i] for i in batch]
            pairs = [n for n in names if n.startswith("p")]
            assert all(pairs.count(n) == 2 for n in pairs), names


@pytest.mark.parametrize("group_by_length", [False, True])
def test_the_trainers_batches_hold_both_tasks(
    tmp_path, records, task, tiny_llama, group_by_length
) -> None:
    cfg = TrainConfig(
        student=str(tiny_llama),
        method="multi_cot",
        labels="gold",
        num_cots=2,
        batch_size=2,
        explain_target="cot",
        group_by_length=group_by_length,
    )
    rows = _rows(records, task, "multi_cot", "reasoning")
    items = validation_items(records, "reasoning", limit=None)
    trainer = make_trainer(cfg, "reasoning", tiny_llama, rows, items, task, tmp_path, seed=0)
    batches = list(trainer.get_train_dataloader())
    assert len(batches) == len(rows) // 4
    for batch in batches:
        assert batch["short"].any() and not batch["short"].all()


def test_length_grouping_is_off_by_default_as_in_the_published_code() -> None:
    assert TrainConfig().group_by_length is False
