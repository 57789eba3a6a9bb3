"""The response cache of teacher and student samples: one SQLite row per sample, committed as
soon as it arrives.

A sample is keyed by the sha256 of a canonical JSON of (model, messages, sampling parameters,
sample index, prompt version), so a re-run or a resume after ``kill -9`` finds every finished
sample and pays for nothing twice, while a changed template, model or temperature never reuses
an old answer. The database runs in WAL mode and commits each row on its own: a killed process
loses at most the requests that were still in flight.

Usage::

    cache = ResponseCache(run.cache)
    key = cache_key(model, messages, sampling, sample_index, prompt_version)
    hit = cache.get(key)            # CachedSample | None
    cache.put(key, text, Usage(12, 30), model=model, prompt_version=prompt_version, index=0)

One writer process at a time; any number of asyncio tasks of that process may share it (each
call is short and synchronous, and a lock guards the connection against stray threads).

A damaged file is a one-line ``UserError`` (checked when the cache opens, and on every use), and
an existing 0-byte file gets a warning before anything is requested: either way the samples it
should hold would be requested, and paid for, again. (``teach`` refuses outright when the run's
summary records samples that an emptied cache no longer holds: ``cached_samples``.)
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from types import TracebackType

from rich.console import Console

from mindmirror.errors import UserError
from mindmirror.requests.types import PromptText, Sampling, Usage

_SCHEMA = """
CREATE TABLE IF NOT EXISTS samples (
    key TEXT PRIMARY KEY,
    text TEXT NOT NULL,
    prompt_tokens INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    model TEXT NOT NULL,
    prompt_version TEXT NOT NULL,
    sample_index INTEGER NOT NULL,
    created REAL NOT NULL
)
"""
# SQLite caps the number of bound parameters per statement; stay well below every build's cap.
_CHUNK = 500


def cache_key(
    model: str,
    messages: PromptText,
    sampling: Sampling,
    sample_index: int,
    prompt_version: str,
    instance: str | None = None,
) -> str:
    """The sha256 hex digest identifying one sample of one request.

    The JSON is canonical (sorted keys, no whitespace, floats as JSON writes them), so the same
    request always hashes the same whatever the dict order of its messages. ``instance`` tells
    apart requests with the same messages that each need samples of their own (see
    ``Prompt.instance``); it enters the hash only when given, so every other key is the one
    earlier versions computed and existing caches stay valid.
    """
    payload: dict[str, object] = {
        "model": model,
        "messages": messages,
        "sampling": asdict(sampling),
        "sample_index": sample_index,
        "prompt_version": prompt_version,
    }
    if instance is not None:
        payload["instance"] = instance
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def cached_samples(path: str | Path) -> int:
    """How many samples the cache file at ``path`` holds (0 when it is missing or 0 bytes);
    never creates the file."""
    path = Path(path)
    if not path.is_file() or path.stat().st_size == 0:
        return 0
    with ResponseCache(path) as cache:
        return cache.stats.rows


@dataclass(frozen=True)
class CachedSample:
    """One cached sample: its text and its share of the tokens of the call that produced it."""

    text: str
    usage: Usage


@dataclass
class CacheStats:
    """Counts since this cache object was opened, plus the rows in the file."""

    hits: int = 0
    misses: int = 0
    writes: int = 0
    rows: int = 0


class ResponseCache:
    """SQLite store of samples (see the module docstring); ``label`` names whose samples in
    messages (``teacher``, ``student``)."""

    def __init__(
        self, path: str | Path, label: str = "teacher", *, warn_emptied: bool = True
    ) -> None:
        """Open (or create) the cache at ``path``; ``warn_emptied=False`` leaves out the warning
        about a 0-byte file (for a caller that accepted re-paying its samples)."""
        self.path = Path(path)
        self.label = label
        emptied = self.path.is_file() and self.path.stat().st_size == 0
        self._lock = threading.Lock()
        self._hits = 0
        self._misses = 0
        self._writes = 0
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._sqlite_errors("open"):
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            # In WAL mode NORMAL survives a killed process (only a power cut can lose the
            # last commits) and avoids an fsync per sample.
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA busy_timeout=10000")
            # A damaged page otherwise surfaces mid-run, deep in a lookup, as a traceback.
            (verdict,) = self._db.execute("PRAGMA quick_check(1)").fetchone()
            if verdict != "ok":
                found = " ".join(str(verdict).replace("***", "").split())
                raise sqlite3.DatabaseError(f"database disk image is malformed: {found}")
            self._db.execute(_SCHEMA)
        if warn_emptied and emptied and self.stats.rows == 0:
            Console(stderr=True).print(
                f"[yellow]warning[/]: the {self.label} cache {self.path} is an empty (0-byte) "
                "file: every sample will be requested, and paid for, again; interrupt now (Ctrl-C) "
                "and restore the file if it held samples",
                highlight=False,
                soft_wrap=True,
            )

    @contextmanager
    def _sqlite_errors(self, doing: str) -> Iterator[None]:
        """Turn SQLite errors into one-line UserErrors that say what to do."""
        try:
            yield
        except sqlite3.OperationalError as error:
            raise UserError(
                f"cannot {doing} the {self.label} cache {self.path}: {error} (check the folder's "
                "permissions and free space; a file from another program or version: move it "
                "aside)"
            ) from None
        except sqlite3.DatabaseError as error:
            raise UserError(
                f"the {self.label} cache {self.path} is damaged ({error}): move it aside and "
                "re-run to request (and pay for) its samples again, or restore it from a backup"
            ) from None

    def get(self, key: str) -> CachedSample | None:
        """The cached sample for ``key``, or None."""
        return self.get_many([key]).get(key)

    def get_many(self, keys: Iterable[str]) -> dict[str, CachedSample]:
        """The cached samples among ``keys`` (missing keys are absent from the result)."""
        wanted = list(dict.fromkeys(keys))
        found: dict[str, CachedSample] = {}
        with self._lock, self._sqlite_errors("read"):
            for start in range(0, len(wanted), _CHUNK):
                chunk = wanted[start : start + _CHUNK]
                marks = ",".join("?" * len(chunk))
                rows = self._db.execute(
                    "SELECT key, text, prompt_tokens, completion_tokens FROM samples "
                    f"WHERE key IN ({marks})",
                    chunk,
                ).fetchall()
                for key, text, prompt_tokens, completion_tokens in rows:
                    found[key] = CachedSample(text, Usage(prompt_tokens, completion_tokens))
            self._hits += len(found)
            self._misses += len(wanted) - len(found)
        return found

    def put(
        self,
        key: str,
        text: str,
        usage: Usage,
        *,
        model: str = "",
        prompt_version: str = "",
        index: int = 0,
    ) -> None:
        """Store one sample and commit at once (a later ``put`` of the same key replaces it)."""
        with self._lock, self._sqlite_errors("write"):
            self._db.execute(
                "INSERT OR REPLACE INTO samples VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    key,
                    text,
                    usage.prompt_tokens,
                    usage.completion_tokens,
                    model,
                    prompt_version,
                    index,
                    time.time(),
                ),
            )
            self._writes += 1

    @property
    def stats(self) -> CacheStats:
        """Hits, misses and writes since opening, and the number of rows in the file."""
        with self._lock, self._sqlite_errors("read"):
            (rows,) = self._db.execute("SELECT COUNT(*) FROM samples").fetchone()
        return CacheStats(self._hits, self._misses, self._writes, int(rows))

    def close(self) -> None:
        """Close the database (idempotent)."""
        with self._lock:
            self._db.close()

    def __enter__(self) -> ResponseCache:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
