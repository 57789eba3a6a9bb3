"""The generic loader: any JSONL / CSV / JSON files or Hub dataset, through a field mapping.

The recipe names the answer family (``equation``, ``number``, ``choice``, ``label``), the
columns (``task.fields``) and the files per split (``task.files``); a value that is not an
existing file is read as a split of the Hub dataset ``task.hub_id``.
"""

from __future__ import annotations

import json
import string
from pathlib import Path
from typing import Any

from mindmirror.config import TaskConfig
from mindmirror.errors import UserError
from mindmirror.tasks.base import Example, Task
from mindmirror.tasks.families import ChoiceTask, LabelTask, NumericTask
from mindmirror.tasks.loaders import Raw, field, gsm8k_gold, render_choices
from mindmirror.tasks.readers import Row, load_hub, read_rows
from mindmirror.tasks.splits import clean_question

_SPLIT_ALIASES = {"train": "train", "validation": "validation", "valid": "validation",
                  "val": "validation", "dev": "validation", "test": "test"}  # fmt: skip
_SUFFIXES = (".jsonl", ".json", ".csv")


def _split_name(key: str, where: str) -> str:
    if key not in _SPLIT_ALIASES:
        raise UserError(f"{where}: unknown split {key!r} (use train, validation or test)")
    return _SPLIT_ALIASES[key]


def _sources(cfg: TaskConfig) -> dict[str, tuple[str, list[Row]]]:
    """split -> (a name for messages, rows), from task.files, task.path or task.hub_id."""
    base = Path(cfg.path) if cfg.path else None
    hub: dict[str, list[Row]] | None = None
    out: dict[str, tuple[str, list[Row]]] = {}
    for key, value in cfg.files.items():
        split = _split_name(key, "task.files")
        path = Path(value)
        if not path.is_absolute() and base is not None and base.is_dir():
            path = base / path
        if path.is_file():
            out[split] = (str(path), read_rows(path))
        elif cfg.hub_id is not None:
            hub = hub if hub is not None else load_hub(cfg.hub_id)
            if value not in hub:
                raise UserError(
                    f"task.files.{key}: {cfg.hub_id} has no split {value!r} "
                    f"(it has: {', '.join(hub)})"
                )
            out[split] = (f"{cfg.hub_id}[{value}]", hub[value])
        else:
            raise UserError(
                f"data file not found: {path} (task.files.{key}; to read a Hub split instead, "
                "set task.hub_id)"
            )
    if cfg.files:
        return out
    if base is not None and base.is_file():
        return {"train": (str(base), read_rows(base))}
    if base is not None and base.is_dir():
        for file in sorted(base.iterdir()):
            if file.suffix.lower() in _SUFFIXES and file.stem.lower() in _SPLIT_ALIASES:
                out.setdefault(_SPLIT_ALIASES[file.stem.lower()], (str(file), read_rows(file)))
        if not out:
            raise UserError(f"{base}: no train/validation/test .jsonl/.json/.csv files in it")
        return out
    if base is not None:
        raise UserError(f"task.path not found: {base} (give a data file or folder)")
    if cfg.hub_id is not None:
        hub = load_hub(cfg.hub_id)
        return {
            _SPLIT_ALIASES[name]: (f"{cfg.hub_id}[{name}]", rows)
            for name, rows in hub.items()
            if name in _SPLIT_ALIASES
        }
    raise UserError("a generic task needs task.files, task.path or task.hub_id")


def _choices(value: Any, where: str) -> list[str]:
    """Choices as a list, a Hub-style {label: [...], text: [...]}, a JSON array or 'a|b|c'."""
    if isinstance(value, dict) and "text" in value:
        value = value["text"]
    if isinstance(value, str):
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError:
            parsed = [part.strip() for part in value.split("|")]
        value = parsed
    if not isinstance(value, list) or len(value) < 2:
        raise UserError(f"{where}: choices must be a list of at least 2 answers, got {value!r}")
    return [str(choice) for choice in value]


def _gold(task: Task, value: Any, choices: list[str] | None, where: str) -> str | None:
    """The row's answer in the family's gold form; UserError when it cannot be one."""
    if value is None or value == "":
        return None
    if isinstance(task, NumericTask):
        text = gsm8k_gold(str(value)) if "####" in str(value) else str(value).strip()
        if task.value(text) is None:
            raise UserError(f"{where}: answer {value!r} is not a number or arithmetic expression")
        return text
    if isinstance(task, ChoiceTask) and choices is not None:
        letter = task.canonical(str(value), tuple(choices))
        text = str(value).strip()
        if letter is None and text.isdigit() and int(text) < len(choices):
            # An index into the choices, as in many Hub datasets (CSV gives it as text).
            letter = task.canonical(string.ascii_uppercase[int(text)], tuple(choices))
        if letter is None:
            raise UserError(f"{where}: answer {value!r} is neither a choice letter nor a choice")
        return letter
    if isinstance(task, LabelTask):
        text = str(value).strip().lower()
        if text not in task.labels and text.isdigit() and int(text) < len(task.labels):
            text = task.labels[int(text)]
        if text not in task.labels:
            raise UserError(f"{where}: answer {value!r} is not one of {list(task.labels)}")
        return text
    raise UserError(f"{where}: unknown answer family {task.family!r}")


def load_generic(cfg: TaskConfig, task: Task) -> Raw:
    """Examples of a generic task from its files or Hub dataset, via ``cfg.fields``.

    Raises:
        UserError: a missing file (naming the path), a row without a mapped field (naming the
            file, row and field), an answer the family cannot read, or duplicate ids.
    """
    fields = cfg.fields
    if cfg.family == "choice" and fields.choices is None:
        raise UserError("a generic `choice` task needs task.fields.choices (the choices column)")
    raw: Raw = {}
    seen_ids: dict[str, str] = {}
    for split, (source, rows) in _sources(cfg).items():
        examples = []
        for i, row in enumerate(rows):
            where = f"{source} row {i + 1}"
            question = str(field(row, fields.question, where))
            if fields.context is not None:
                question = f"{field(row, fields.context, where)}\n{question}"
            choices = None
            if fields.choices is not None:
                choices = _choices(field(row, fields.choices, where), where)
                question = render_choices(question, choices)
            gold = _gold(task, field(row, fields.answer, where), choices, where)
            if fields.id is not None:
                id_ = f"{task.name}-{field(row, fields.id, where)}"
            else:
                id_ = f"{task.name}-{split}-{i:04d}"
            if id_ in seen_ids:
                raise UserError(f"{where}: id {id_!r} repeats {seen_ids[id_]}; ids must be unique")
            seen_ids[id_] = where
            examples.append(
                Example(id_, split, clean_question(question), gold, tuple(choices or ()) or None)
            )
        raw[split] = examples
    if not raw.get("train"):
        raise UserError(f"generic task: no training rows (splits found: {sorted(raw) or 'none'})")
    return raw
