"""`train.release_memory`: freed blocks go back to the system (glibc), measured in a fresh
process on real allocations."""

from __future__ import annotations

import json
import platform
import subprocess
import sys

import pytest

from mindmirror.config import TrainConfig
from mindmirror.student.train import stage_settings

pytestmark = pytest.mark.skipif(
    platform.system() != "Linux" or platform.libc_ver()[0] != "glibc",
    reason="release_memory acts on glibc's malloc (Linux) only",
)

#: Free a 20 MB block (glibc then raises its mmap threshold past it), allocate 200 MB in 2 MB
#: blocks plus a small one above them that stays, free the 2 MB blocks, and report how much of
#: the 200 MB the process still holds.
SCRIPT = """
import json, sys
from pathlib import Path
from mindmirror.student.heap import release_freed_memory
applied = release_freed_memory() if sys.argv[1] == "1" else None
def rss():
    lines = Path("/proc/self/status").read_text().splitlines()
    return int(next(x for x in lines if x.startswith("VmRSS")).split()[1]) / 1024
del_me = bytearray(20 * 2**20); del del_me
before = rss()
blocks = [bytearray(2 * 2**20 + i) for i in range(100)]
pin = bytearray(1000)
blocks.clear()
print(json.dumps({"applied": applied, "kept_mb": rss() - before}))
"""


def kept(release: bool) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT, "1" if release else "0"],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout)


def test_freed_blocks_leave_the_process_only_with_release_memory() -> None:
    default, released = kept(False), kept(True)
    assert released["applied"] is True
    assert default["kept_mb"] > 150, default
    assert released["kept_mb"] < 20, released


def test_release_memory_does_not_change_a_stage_result() -> None:
    """Resuming a stage trained with the other setting is allowed: it learns the same thing."""
    from mindmirror.config import Recipe

    base = Recipe.model_validate({"name": "x", "task": {"name": "arith"}})
    on = base.model_copy(update={"train": TrainConfig(release_memory=True)})
    off = base.model_copy(update={"train": TrainConfig(release_memory=False)})
    assert stage_settings(on, "reasoning", "s") == stage_settings(off, "reasoning", "s")
