"""Task families and dataset loaders.

``load_task(cfg, seed)`` is the one entry point the pipeline uses: it builds the task's answer
family and returns its train / validation / test examples, split by question. ``build_task``
gives the family alone (for scoring or serving without reading any data).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from mindmirror.config import TaskConfig
from mindmirror.tasks.arith_problems import arith_splits
from mindmirror.tasks.base import Example, Task
from mindmirror.tasks.families import (
    NLI_LABELS,
    NLI_SYNONYMS,
    ChoiceTask,
    EquationTask,
    LabelTask,
    NumberTask,
)
from mindmirror.tasks.generic import load_generic
from mindmirror.tasks.loaders import Raw, load_anli, load_cqa, load_gsm8k, load_svamp
from mindmirror.tasks.splits import SplitReport, clean_question, prepare_splits, question_key

__all__ = [
    "ChoiceTask",
    "EquationTask",
    "Example",
    "LabelTask",
    "NumberTask",
    "SplitReport",
    "Task",
    "build_task",
    "clean_question",
    "load_task",
    "load_task_with_report",
    "question_key",
]

log = logging.getLogger(__name__)

_LOADERS: dict[str, Callable[[TaskConfig], Raw]] = {
    "svamp": load_svamp,
    "gsm8k": load_gsm8k,
    "cqa": load_cqa,
    "anli": load_anli,
}


def build_task(cfg: TaskConfig) -> Task:
    """The answer family of ``cfg`` (parsing and scoring), without loading any data."""
    if cfg.name in ("svamp", "arith"):
        return EquationTask(cfg.name)
    if cfg.name == "gsm8k":
        return NumberTask(cfg.name)
    if cfg.name == "cqa":
        return ChoiceTask(cfg.name)
    if cfg.name == "anli":
        return LabelTask(cfg.name, NLI_LABELS, NLI_SYNONYMS)
    families: dict[str, Callable[[], Task]] = {
        "equation": lambda: EquationTask("generic"),
        "number": lambda: NumberTask("generic"),
        "choice": lambda: ChoiceTask("generic"),
        "label": lambda: LabelTask("generic", tuple(cfg.labels or ())),
    }
    return families[cfg.family or "number"]()


def load_task_with_report(
    cfg: TaskConfig, seed: int
) -> tuple[Task, dict[str, list[Example]], SplitReport]:
    """As :func:`load_task`, plus what splitting did (duplicates, overlaps, carved validation)."""
    task = build_task(cfg)
    seed = seed if cfg.split_seed is None else cfg.split_seed
    if cfg.name == "arith":
        raw = arith_splits(cfg.num_examples, seed)
    elif cfg.name == "generic":
        raw = load_generic(cfg, task)
    else:
        raw = _LOADERS[cfg.name](cfg)
    splits, report = prepare_splits(raw, seed=seed, val_fraction=cfg.val_fraction, limit=cfg.limit)
    log.info("task %s: %s", cfg.name, report.line())
    return task, splits, report


def load_task(cfg: TaskConfig, seed: int) -> tuple[Task, dict[str, list[Example]]]:
    """The task of a recipe and its ``train``, ``validation`` and ``test`` examples.

    Splits are disjoint by question, deterministic for a seed, whitespace-normalized, with a
    seeded ``cfg.val_fraction`` of train carved out as validation when the dataset has no
    validation split, and capped at ``cfg.limit`` per split (first N).

    Raises:
        UserError: missing files, malformed rows, or a Hub dataset that cannot be fetched.
    """
    task, splits, _ = load_task_with_report(cfg, seed)
    return task, splits
