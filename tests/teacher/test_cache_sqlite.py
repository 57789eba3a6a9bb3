"""The SQLite response cache: keying, round trips, persistence, and survival of ``kill -9``."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from mindmirror.errors import UserError
from mindmirror.requests.cache import ResponseCache, cache_key
from mindmirror.requests.types import Sampling, Usage

MESSAGES = [{"role": "user", "content": "What is 2 + 3?"}]
SAMPLING = Sampling(temperature=0.7, top_p=1.0, max_tokens=64)


def test_key_is_canonical_and_sensitive_to_every_part() -> None:
    base = cache_key("m", MESSAGES, SAMPLING, 0, "cot_v1")
    reordered = [{"content": "What is 2 + 3?", "role": "user"}]
    assert cache_key("m", reordered, SAMPLING, 0, "cot_v1") == base
    variants = [
        cache_key("other-model", MESSAGES, SAMPLING, 0, "cot_v1"),
        cache_key("m", [{"role": "user", "content": "What is 2 + 4?"}], SAMPLING, 0, "cot_v1"),
        cache_key("m", MESSAGES, Sampling(0.8, 1.0, 64), 0, "cot_v1"),
        cache_key("m", MESSAGES, Sampling(0.7, 0.9, 64), 0, "cot_v1"),
        cache_key("m", MESSAGES, Sampling(0.7, 1.0, 65), 0, "cot_v1"),
        cache_key("m", MESSAGES, SAMPLING, 1, "cot_v1"),
        cache_key("m", MESSAGES, SAMPLING, 0, "cot_v2"),
    ]
    assert len({base, *variants}) == len(variants) + 1
    assert len(base) == 64 and int(base, 16) >= 0


def test_put_get_round_trip_and_reopen(tmp_path: Path) -> None:
    path = tmp_path / "teacher" / "cache.sqlite"
    keys = [cache_key("m", MESSAGES, SAMPLING, i, "v") for i in range(3)]
    with ResponseCache(path) as cache:
        assert cache.get(keys[0]) is None
        cache.put(keys[0], "The answer is 5.", Usage(12, 7), model="m", prompt_version="v")
        cache.put(keys[1], "ünïcode ✓", Usage(12, 3), index=1)
        hit = cache.get(keys[0])
        assert hit is not None and hit.text == "The answer is 5." and hit.usage == Usage(12, 7)
        assert set(cache.get_many(keys)) == set(keys[:2])
        stats = cache.stats
        assert (stats.writes, stats.rows) == (2, 2)
        assert stats.hits == 3 and stats.misses == 2
    with ResponseCache(path) as reopened:
        found = reopened.get_many(keys)
        assert found[keys[1]].text == "ünïcode ✓" and keys[2] not in found
    mode = sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"


def test_many_keys_in_one_lookup(tmp_path: Path) -> None:
    with ResponseCache(tmp_path / "c.sqlite") as cache:
        keys = [cache_key("m", MESSAGES, SAMPLING, i, "v") for i in range(1500)]
        for key in keys[::2]:
            cache.put(key, key[:8], Usage())
        found = cache.get_many(keys)
        assert len(found) == 750 and all(found[k].text == k[:8] for k in keys[::2])


def test_rows_written_before_sigkill_survive(tmp_path: Path) -> None:
    """Each ``put`` is committed on its own: SIGKILL loses nothing already acknowledged."""
    path = tmp_path / "c.sqlite"
    writer = textwrap.dedent(
        f"""
        import time
        from mindmirror.requests.cache import ResponseCache
        from mindmirror.requests.types import Usage
        cache = ResponseCache({str(path)!r})
        i = 0
        while True:
            cache.put(f"key-{{i}}", f"text-{{i}}", Usage(1, 2))
            print(i, flush=True)
            i += 1
            time.sleep(0.005)
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", writer], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    acknowledged = [int(proc.stdout.readline()) for _ in range(40)]
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    with ResponseCache(path) as cache:
        found = cache.get_many(f"key-{i}" for i in acknowledged)
        assert len(found) == len(acknowledged)
        assert found["key-39"].text == "text-39"


def _filled_cache(path: Path, rows: int = 200) -> list[str]:
    """A closed cache of ``rows`` samples spread over many database pages; their keys."""
    keys = [cache_key("m", MESSAGES, SAMPLING, i, "v") for i in range(rows)]
    with ResponseCache(path) as cache:
        for key in keys:
            cache.put(key, "a long chain of thought " * 20, Usage(10, 40))
    return keys


def test_a_page_of_garbage_is_one_line_before_anything_is_requested(tmp_path: Path) -> None:
    path = tmp_path / "cache.sqlite"
    _filled_cache(path)
    page = 4096  # SQLite's default page size; the file holds many of them
    assert path.stat().st_size > 5 * page
    with path.open("r+b") as handle:
        handle.seek(3 * page)
        handle.write(bytes(range(256)) * (page // 256))
    with pytest.raises(UserError) as caught:
        ResponseCache(path)
    message = str(caught.value)
    assert "\n" not in message
    assert str(path) in message and "damaged" in message and "move it aside" in message


def test_a_file_of_another_layout_is_one_line_when_used(tmp_path: Path) -> None:
    path = tmp_path / "cache.sqlite"
    other = sqlite3.connect(path)
    other.execute("CREATE TABLE samples (key TEXT PRIMARY KEY, text TEXT)")
    other.execute("INSERT INTO samples VALUES ('k', 'text')")
    other.commit()
    other.close()
    with ResponseCache(path) as cache, pytest.raises(UserError) as caught:
        cache.get_many(["k"])
    message = str(caught.value)
    assert "\n" not in message and "cannot read" in message and "prompt_tokens" in message


def test_an_emptied_cache_warns_before_paying_again(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "cache.sqlite"
    path.touch()
    with ResponseCache(path) as cache:
        warning = capsys.readouterr().err
        assert "0-byte" in warning and "paid for, again" in warning and str(path) in warning
        assert len(warning.strip().splitlines()) == 1
        cache.put("k", "text", Usage(1, 1))
    with ResponseCache(path):
        assert capsys.readouterr().err == ""  # a cache that holds samples is not warned about
    with ResponseCache(tmp_path / "new.sqlite"):
        assert capsys.readouterr().err == ""  # nor is a brand-new one
