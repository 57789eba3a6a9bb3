"""`bench/teacher_throughput.py`: the plain AsyncOpenAI baseline (no retries, by design) counts
and reports a request the server drops, instead of crashing the benchmark."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.fault_proxy import fault_proxy

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from teacher_throughput import run_async_baseline

pytestmark = pytest.mark.server


def test_the_baseline_counts_dropped_and_failed_requests(llama_url: str) -> None:
    with fault_proxy(llama_url) as proxy:
        proxy.fault("drop", count=2)
        proxy.fault("500", count=1)
        run = run_async_baseline(
            proxy.url, questions=2, samples=4, max_tokens=1, concurrency=4, offset=0
        )
        forwarded = proxy.stats()["forwarded"]
    assert len(run.errors) == 3 and forwarded == 8 - 3
    assert any("Connection error" in error for error in run.errors)
    assert run.rps > 0
