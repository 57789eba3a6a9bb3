"""The SQLite response cache: keying, round trips, persistence, and survival of ``kill -9``."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

from mindmirror.teacher.cache import ResponseCache, cache_key
from mindmirror.teacher.types import Sampling, Usage

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
        from mindmirror.teacher.cache import ResponseCache
        from mindmirror.teacher.types import Usage
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
