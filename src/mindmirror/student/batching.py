"""The order rows are trained in: each example's rows in the same step, as the paper trains.

The published trainer (Distilling Step-by-Step, Mind's Mirror) batches *examples*: one item
per (question, CoT) carries its ``predict:`` and its ``explain:`` row, so every optimizer step
trains both tasks of every example in it. We keep rows separate (one padded sequence each) and
recover that guarantee here: rows that share :attr:`Row.example` form a *unit* that is never
split across micro-batches. Length grouping (``train.group_by_length``, ours) then sorts units,
not rows, so it saves padding without ever sending a step only short ``predict:`` rows (which
trained the answer task in about 55% of the steps of the CoT methods when rows were sorted).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
from torch.utils.data import Sampler

#: Units per length-sorted mega-batch, in micro-batches (as transformers' LengthGroupedSampler).
MEGABATCH = 50


def example_units(examples: Sequence[str]) -> list[list[int]]:
    """Row indices grouped by example, in first-seen order; single-row units are joined two by
    two (in order), so that every unit but perhaps the last holds two rows and an even
    micro-batch never cuts one. Units of more than two rows are kept whole."""
    grouped: dict[str, list[int]] = {}
    for index, example in enumerate(examples):
        grouped.setdefault(example, []).append(index)
    units: list[list[int]] = []
    single: list[int] | None = None
    for unit in grouped.values():
        if len(unit) > 1:
            units.append(unit)
        elif single is None:
            single = unit
            units.append(single)
        else:
            single.extend(unit)
            single = None
    return units


def example_order(
    examples: Sequence[str],
    lengths: Sequence[int],
    rows_per_batch: int,
    *,
    by_length: bool,
    generator: torch.Generator | None = None,
) -> list[int]:
    """One epoch's row order: units (see :func:`example_units`) in random order, or with
    ``by_length`` in random mega-batches each sorted longest unit first. With an even
    ``rows_per_batch`` (``batch_unit: examples`` always is for two-task methods) no micro-batch
    cuts a unit.

    Args:
        examples: the example each row belongs to (rows of one example stay together).
        lengths: each row's token count (only used with ``by_length``).
        rows_per_batch: rows per micro-batch; mega-batches hold ``MEGABATCH`` of them.
        by_length: sort units by their longest row within each mega-batch.
        generator: the random source (None: torch's global one, which Trainer seeds and
            restores on resume).
    """
    units = example_units(examples)
    # A unit of odd size (the last lone row) goes last: anywhere else it would shift every
    # later micro-batch boundary by one row and cut the units after it.
    odd = [unit for unit in units if len(unit) % 2]
    units = [unit for unit in units if len(unit) % 2 == 0]
    order = [units[i] for i in torch.randperm(len(units), generator=generator).tolist()]
    if by_length:
        per_mega = max(1, MEGABATCH * rows_per_batch // 2)
        order = [
            unit
            for start in range(0, len(order), per_mega)
            for unit in sorted(
                order[start : start + per_mega],
                key=lambda u: max(lengths[i] for i in u),
                reverse=True,
            )
        ]
    return [index for unit in order + odd for index in unit]


class ExampleSampler(Sampler[int]):
    """Trainer's train sampler: :func:`example_order` afresh every epoch."""

    def __init__(
        self,
        examples: Sequence[str],
        lengths: Sequence[int],
        rows_per_batch: int,
        *,
        by_length: bool,
    ) -> None:
        self.examples = list(examples)
        self.lengths = list(lengths)
        self.rows_per_batch = rows_per_batch
        self.by_length = by_length

    def __len__(self) -> int:
        return len(self.examples)

    def __iter__(self) -> Iterator[int]:
        return iter(
            example_order(
                self.examples, self.lengths, self.rows_per_batch, by_length=self.by_length
            )
        )
