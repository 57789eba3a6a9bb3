"""Files written whole or not at all: a reader (another process, a resumed run, a user's tool)
never sees half of one, and a run killed mid-write leaves the previous version in place."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TextIO


@contextmanager
def open_atomic(path: Path) -> Iterator[TextIO]:
    """A UTF-8 text handle on a temporary file beside ``path``, renamed onto ``path`` only when
    the block ends without an error (an error leaves ``path`` as it was)."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    with tmp.open("w", encoding="utf-8") as handle:
        yield handle
    os.replace(tmp, path)


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically."""
    with open_atomic(path) as handle:
        handle.write(text)


def write_json(path: Path, data: Any, indent: int = 2) -> None:
    """Write ``data`` as indented UTF-8 JSON (one trailing newline), atomically."""
    write_atomic(path, json.dumps(data, indent=indent, ensure_ascii=False) + "\n")
