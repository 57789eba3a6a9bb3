"""The experiment grid's teacher records: taught once, reused only when they were made with
the same task, data seed and teacher, and shared with every cell.

Teacher settings that change only how requests are made (``OPERATIONAL_KEYS``: rates, prices,
batching) never make the grid teach again.
"""

from __future__ import annotations

import filecmp
import os
import shutil
from collections.abc import Sequence
from typing import Any

import yaml

from mindmirror.config import Recipe
from mindmirror.embedded import EMBEDDED_MODEL
from mindmirror.errors import UserError
from mindmirror.records import Record
from mindmirror.reporting.figures import EvalSource
from mindmirror.rundir import RunDir

#: Teacher settings that change how requests are made, never what the records hold.
OPERATIONAL_KEYS = (
    "base_url",
    "api_key_env",
    "concurrency",
    "rpm",
    "tpm",
    "timeout_s",
    "max_retries",
    "use_n",
    "send_seed",
    "price_input_per_mtok",
    "price_output_per_mtok",
    "budget_usd",
    "batch_size",
    "max_failed_share",
    "batch",
    "price_batch_factor",
    "batch_poll_s",
)


def data_seed(recipe: Recipe) -> int:
    """The seed of the task's questions, the same for every cell whatever its training seed."""
    return recipe.task.split_seed if recipe.task.split_seed is not None else recipe.seed


def _teaching_settings(recipe: Recipe) -> dict[str, Any]:
    """What decides the records' content: the task, the data seed, the teacher."""
    teacher = recipe.teacher.model_dump(mode="json", by_alias=True)
    for key in OPERATIONAL_KEYS:
        teacher.pop(key, None)
    if teacher["backend"] == "embedded":
        # The CLI serves the embedded model over HTTP, so teach records it as `openai`.
        teacher.update(backend="openai", model=EMBEDDED_MODEL)
    task = recipe.task.model_dump(mode="json")
    task["split_seed"] = data_seed(recipe)
    return {"task": task, "teacher": teacher}


def _differences(before: dict[str, Any], now: dict[str, Any]) -> list[str]:
    keys = []
    for section in now:
        old, new = before.get(section, {}), now[section]
        keys += [f"{section}.{k}" for k in sorted({*old, *new}) if old.get(k) != new.get(k)]
    return keys


def _recorded_settings(run: RunDir) -> dict[str, Any] | None:
    """Teaching settings of the recipe that made the run's records (None when unknown)."""
    if not run.recipe.is_file():
        return None
    try:
        data = yaml.safe_load(run.recipe.read_text(encoding="utf-8")) or {}
        return _teaching_settings(Recipe.model_validate(data))
    except (yaml.YAMLError, ValueError):
        return None


def teaching_needed(recipe: Recipe, run: RunDir) -> bool:
    """Whether ``experiment`` will call the teacher (the CLI starts a teacher server only then).

    Raises:
        UserError: the run's records were made with another task or teacher.
    """
    if not run.records.is_file():
        return True
    before = _recorded_settings(run)
    now = _teaching_settings(recipe)
    if before is not None and before != now:
        raise UserError(
            f"{run.records} was made with other teaching settings "
            f"({', '.join(_differences(before, now))} differ); use another run_dir or delete "
            f"{run.teacher} to teach again"
        )
    return False


def evaluation_source(records: Sequence[Record]) -> EvalSource:
    """Where the self-evaluations that training would use come from.

    ``none`` unless both train and validation CoTs carry parsed verdicts (stage 1 trains on
    the first and chooses its checkpoint on the second); ``teacher`` when any is the teacher's.
    """
    sources: dict[str, set[str]] = {"train": set(), "validation": set()}
    for record in records:
        if record.split not in sources:
            continue
        for cot in record.cots:
            sources[record.split] |= {
                e.source for e in cot.evaluations if e.parsed and e.verdict is not None
            }
    if not sources["train"] or not sources["validation"]:
        return "none"
    return "teacher" if "teacher" in sources["train"] else "gold"


def link_records(parent: RunDir, cell: RunDir) -> None:
    """Give the cell the parent's records: a hard link where possible, else a copy.

    An existing cell file must hold the same records, or the finished cell would be reported
    beside cells trained on other data.
    """
    if cell.records.is_file():
        if not filecmp.cmp(parent.records, cell.records, shallow=False):
            raise UserError(
                f"{cell.root} was trained on other teacher records than {parent.records}; "
                f"delete {cell.root.parent} to run the grid again"
            )
        return
    cell.teacher.mkdir(parents=True, exist_ok=True)
    try:
        os.link(parent.records, cell.records)
    except OSError:
        shutil.copyfile(parent.records, cell.records)
