"""A stage's peak memory: the kernel's high-water mark, reset at the stage's start."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from mindmirror.student import peak_memory

LINUX = pytest.mark.skipif(sys.platform != "linux", reason="VmHWM and clear_refs are Linux's")


@LINUX
def test_a_reset_forgets_a_peak_that_came_before_it() -> None:
    block = bytearray(400 * 1024 * 1024)  # touched pages: 400 MB resident
    for offset in range(0, len(block), 4096):
        block[offset] = 1
    with_block = peak_memory.peak_rss_mb()
    del block
    if not peak_memory.reset_peak():
        pytest.skip("this kernel refuses /proc/self/clear_refs (a sandbox): no reset to test")
    after = peak_memory.peak_rss_mb()
    assert with_block is not None and after is not None
    assert after < with_block - 300


def test_no_reading_where_the_kernel_keeps_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(peak_memory, "STATUS", tmp_path / "absent")
    monkeypatch.setattr(peak_memory, "CLEAR_REFS", tmp_path / "no" / "clear_refs")
    assert peak_memory.peak_rss_mb() is None
    assert not peak_memory.reset_peak()
