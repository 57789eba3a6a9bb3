"""Reading dataset files (JSONL, JSON lists, CSV) and Hub datasets into plain row dicts.

Every problem a user can cause (missing file, malformed line, unreachable Hub) becomes a
one-line UserError naming the file and line and saying what to do.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from mindmirror.errors import UserError

Row = dict[str, Any]
#: Why a JSON value nested thousands of levels deep (json's recursion limit) is refused.
TOO_DEEP = "JSON nested too deeply to be a row (thousands of levels); fix or remove it"


def require_file(path: Path, what: str) -> Path:
    """``path`` when it is a file; UserError naming it otherwise."""
    if not path.is_file():
        raise UserError(f"{what} not found: {path} (check task.path / task.files)")
    return path


def read_jsonl(path: Path) -> list[Row]:
    """One JSON object per non-blank line; UserError naming the file and line when malformed."""
    rows = []
    with require_file(path, "data file").open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as error:
                raise UserError(f"{path}:{number}: not valid JSON ({error.msg})") from None
            except RecursionError:
                raise UserError(f"{path}:{number}: {TOO_DEEP}") from None
            if not isinstance(row, dict):
                raise UserError(f"{path}:{number}: expected a JSON object per line")
            rows.append(row)
    return rows


def read_json_list(path: Path) -> list[Row]:
    """A JSON array of objects (SVAMP.json, the MCC-KD files)."""
    try:
        data = json.loads(require_file(path, "data file").read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise UserError(f"{path}:{error.lineno}: not valid JSON ({error.msg})") from None
    except RecursionError:
        raise UserError(f"{path}: {TOO_DEEP}") from None
    if not isinstance(data, list) or not all(isinstance(row, dict) for row in data):
        raise UserError(f"{path}: expected a JSON array of objects")
    return data


def read_csv(path: Path) -> list[Row]:
    """CSV with a header row."""
    with require_file(path, "data file").open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def read_rows(path: Path) -> list[Row]:
    """Rows of a .csv, a JSON-array .json, or a JSONL file (.jsonl or line-per-object .json)."""
    require_file(path, "data file")
    if path.suffix.lower() == ".csv":
        return read_csv(path)
    with path.open(encoding="utf-8") as handle:
        first = handle.read(4096).lstrip()
    return read_json_list(path) if first.startswith("[") else read_jsonl(path)


def load_hub(hub_id: str, config: str | None = None) -> dict[str, list[Row]]:
    """All splits of a Hugging Face Hub dataset as lists of rows.

    Raises:
        UserError: the dataset cannot be fetched (no network, wrong id, gated); the message
            says to download the data and set ``task.path``.
    """
    try:
        import datasets  # slow to import: only users loading from the Hub pay for it

        loaded = datasets.load_dataset(hub_id, config)
    except Exception as error:  # any failure here is the user's network or id, not our bug
        first = str(error).strip().splitlines()[0][:200] if str(error).strip() else ""
        raise UserError(
            f"could not load {hub_id!r} from the Hugging Face Hub ({type(error).__name__}: "
            f"{first}); download the data and set task.path to the local copy"
        ) from None
    return {name: [dict(row) for row in split] for name, split in loaded.items()}
