"""The `task:` section of a recipe: which dataset, where it lives, how it is split."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from mindmirror.config.base import Strict


class FieldMap(Strict):
    """Where a generic dataset keeps each field (column names in the JSONL/CSV/Hub rows)."""

    question: str = Field("question", description="Column with the question text.")
    answer: str = Field("answer", description="Column with the gold answer.")
    id: str | None = Field(None, description="Column with a stable row id (default: row index).")
    choices: str | None = Field(
        None, description="Column with a list of answer choices (multiple-choice tasks)."
    )
    context: str | None = Field(
        None, description="Optional column prepended to the question (e.g. a passage)."
    )


class TaskConfig(Strict):
    """The task: which benchmark or dataset, where it lives, how it is split."""

    name: Literal["svamp", "gsm8k", "cqa", "anli", "arith", "generic"] = Field(
        "svamp",
        description="Built-in task (svamp, gsm8k, cqa, anli, arith = the demo's generated "
        "word problems) or `generic` with `family` and `fields`.",
    )
    path: str | None = Field(
        None,
        description="Local file or folder with the data (formats as in ../shared/data). When "
        "unset, built-ins load from the Hugging Face Hub.",
    )
    hub_id: str | None = Field(None, description="Hub dataset id overriding the built-in one.")
    family: Literal["equation", "number", "choice", "label"] | None = Field(
        None, description="Answer family of a generic task (built-ins know their own)."
    )
    labels: list[str] | None = Field(
        None, description="Label set of a generic `label` task, e.g. [yes, no]."
    )
    fields: FieldMap = Field(default_factory=FieldMap, description="Generic-task field mapping.")
    files: dict[str, str] = Field(
        default_factory=dict,
        description="Generic task: split name -> file path (JSONL or CSV) or Hub split name.",
    )
    svamp_split: Literal["dss", "source"] = Field(
        "dss",
        description="SVAMP from the Hub: dss = the 800/200 split of Distilling Step-by-Step and "
        "Mind's Mirror (RandomState(0) over SVAMP.json's order); source = the Hub copy's own "
        "700/300 split.",
    )
    val_fraction: float = Field(
        0.1,
        ge=0.0,
        lt=1.0,
        description="Share of train questions carved out (seeded) as validation when the "
        "dataset has no validation split.",
    )
    limit: dict[str, int] = Field(
        default_factory=dict,
        description="Optional cap on questions per split, e.g. {train: 200, test: 100} "
        "(first N after the seeded split).",
    )
    num_examples: int = Field(
        300, ge=10, description="`arith` only: how many problems to generate in all."
    )
    split_seed: int | None = Field(
        None,
        description="Seed of the data itself (`arith` generation, the carved validation split); "
        "default: the recipe's `seed`. `experiment` pins it so every training seed is tested on "
        "the same questions.",
    )

    @model_validator(mode="after")
    def _generic_needs_family(self) -> TaskConfig:
        if self.name == "generic" and self.family is None:
            raise ValueError("a generic task needs `family` (equation, number, choice or label)")
        if self.family == "label" and self.name == "generic" and not self.labels:
            raise ValueError("a generic `label` task needs `labels`, e.g. [yes, no]")
        for split, count in self.limit.items():
            if split not in ("train", "validation", "test"):
                raise ValueError(f"limit: unknown split {split!r} (train, validation, test)")
            if count < 1:
                raise ValueError(
                    f"limit.{split}: {count} questions; give an integer >= 1, or drop the key "
                    "to use the whole split"
                )
        return self
