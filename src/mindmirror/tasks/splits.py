"""Splits by question: deduplicate, keep test questions out of training, carve validation, limit.

Every method trains on the same distinct questions, so splitting happens here, once, before any
expansion into CoTs or training rows. Questions are compared by a normalized key (case and
whitespace folded), so a question repeated with different spacing still counts as one.
"""

from __future__ import annotations

import dataclasses
import random
import re
from collections.abc import Iterable

from mindmirror.tasks.base import Example

SPLITS = ("train", "validation", "test")


def clean_question(text: str) -> str:
    """Whitespace normalized: runs of spaces/tabs folded, lines stripped, blank lines dropped.

    Line breaks are kept because rendered questions use them (answer choices, premise and
    hypothesis, SVAMP's body and question).
    """
    lines = (re.sub(r"[ \t\r\f\v]+", " ", line).strip() for line in text.split("\n"))
    return "\n".join(line for line in lines if line)


def question_key(text: str) -> str:
    """The key two questions are the same question by: case and all whitespace folded."""
    return " ".join(text.lower().split())


@dataclasses.dataclass
class SplitReport:
    """What splitting did, for logs and the teacher summary."""

    duplicates_dropped: dict[str, int] = dataclasses.field(default_factory=dict)
    overlap_dropped: dict[str, int] = dataclasses.field(default_factory=dict)
    validation_carved: int = 0
    limited: dict[str, int] = dataclasses.field(default_factory=dict)
    sizes: dict[str, int] = dataclasses.field(default_factory=dict)

    def line(self) -> str:
        """One human-readable line summarizing the split."""
        sizes = ", ".join(f"{name} {n}" for name, n in self.sizes.items())
        extra = []
        if any(self.duplicates_dropped.values()):
            extra.append(f"duplicates dropped {self.duplicates_dropped}")
        if any(self.overlap_dropped.values()):
            extra.append(f"dropped as also in a later split {self.overlap_dropped}")
        if self.validation_carved:
            extra.append(f"validation carved from train {self.validation_carved}")
        return sizes + (f" ({'; '.join(extra)})" if extra else "")


def _dedupe(examples: Iterable[Example], seen: set[str]) -> tuple[list[Example], int]:
    kept, dropped = [], 0
    for example in examples:
        key = question_key(example.question)
        if key in seen:
            dropped += 1
            continue
        seen.add(key)
        kept.append(example)
    return kept, dropped


def prepare_splits(
    raw: dict[str, list[Example]],
    *,
    seed: int,
    val_fraction: float,
    limit: dict[str, int] | None = None,
) -> tuple[dict[str, list[Example]], SplitReport]:
    """Turn a dataset's own splits into disjoint train / validation / test lists of examples.

    Steps, in order: deduplicate by question key with test first, then validation, then train,
    so a question in test never appears in validation or train and one in validation never in
    train (each drop is counted); when ``raw`` has no validation split, move a seeded
    ``val_fraction`` of the remaining train questions to validation (source order is kept in
    both); finally keep the first ``limit[split]`` examples of each split.
    """
    report = SplitReport()
    seen: set[str] = set()
    out: dict[str, list[Example]] = {}
    for name in reversed(SPLITS):
        kept, dropped = _dedupe(raw.get(name, []), seen)
        own = len({question_key(e.question) for e in raw.get(name, [])})
        report.duplicates_dropped[name] = len(raw.get(name, [])) - own
        report.overlap_dropped[name] = dropped - report.duplicates_dropped[name]
        out[name] = kept
    if "validation" not in raw and val_fraction > 0 and out["train"]:
        train = out["train"]
        count = min(len(train) - 1, max(1, round(len(train) * val_fraction)))
        chosen = set(random.Random(seed).sample(range(len(train)), count))
        out["validation"] = [
            dataclasses.replace(e, split="validation") for i, e in enumerate(train) if i in chosen
        ]
        out["train"] = [e for i, e in enumerate(train) if i not in chosen]
        report.validation_carved = count
    for name, cap in (limit or {}).items():
        if len(out[name]) > cap:
            report.limited[name] = len(out[name]) - cap
            out[name] = out[name][:cap]
    report.sizes = {name: len(out[name]) for name in SPLITS}
    return {name: out[name] for name in SPLITS}, report
