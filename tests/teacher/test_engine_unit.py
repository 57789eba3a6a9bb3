"""Unit tests of the request engine's parts: rate limiter, backoff, Retry-After, ``n`` handling,
fatal errors, budget and cache reuse.

The scripted backend here is a fake on purpose (these are unit tests of the engine's logic);
the same behaviour against the real llama.cpp server sits in ``test_http_faults.py``.
"""

from __future__ import annotations

import email.utils
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from mindmirror.config import TeacherConfig
from mindmirror.errors import UserError
from mindmirror.requests.cache import ResponseCache
from mindmirror.requests.engine import RequestEngine
from mindmirror.requests.limits import TokenBucket, backoff_delay, estimate_tokens
from mindmirror.requests.types import (
    EngineStats,
    FatalError,
    Messages,
    Prompt,
    Reply,
    RetryableError,
    Sampling,
    Usage,
)
from mindmirror.teacher.backends import parse_retry_after

SAMPLING = Sampling(temperature=0.7, top_p=1.0, max_tokens=10)


def prompt(name: str, n: int = 1) -> Prompt:
    return Prompt(("cot", name), [{"role": "user", "content": f"Q {name}"}], n, SAMPLING, "v1")


@dataclass
class ScriptedBackend:
    """Answers ``n`` calls with up to ``max_choices`` texts; ``fault`` may raise per call."""

    model: str = "scripted"
    max_choices: int = 64
    usage: Usage = field(default_factory=lambda: Usage(5, 10))
    fault: Callable[[str, int], None] | None = None
    calls: list[tuple[str, int]] = field(default_factory=list)
    seeds: list[int | None] = field(default_factory=list)

    async def complete(
        self, messages: Messages, n: int, sampling: Sampling, seed: int | None = None
    ) -> Reply:
        content = messages[0]["content"]
        self.calls.append((content, n))
        self.seeds.append(seed)
        if self.fault is not None:
            self.fault(content, len(self.calls))
        k = min(n, self.max_choices)
        return Reply([f"{content} #{len(self.calls)}.{i}" for i in range(k)], self.usage)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def engine(
    backend: ScriptedBackend, tmp_path: Path, **settings: object
) -> tuple[RequestEngine, ResponseCache]:
    cache = ResponseCache(tmp_path / "cache.sqlite")
    cfg = TeacherConfig(**{"concurrency": 4, "max_retries": 2, **settings})  # type: ignore[arg-type]
    return RequestEngine(backend, cache, cfg, quiet=True, backoff_base_s=0.01), cache


# ---------------------------------------------------------------------- pure parts


def test_token_bucket_spaces_requests_and_accepts_oversized_ones() -> None:
    clock = Clock()
    rpm = TokenBucket(60, clock=clock)
    assert rpm.capacity == 1.0
    assert rpm.reserve(1) == 0.0
    assert rpm.reserve(1) == pytest.approx(1.0)
    assert rpm.reserve(1) == pytest.approx(2.0)
    clock.now += 10
    assert rpm.reserve(1) == 0.0  # refilled, but never above one second of rate
    assert rpm.reserve(1) == pytest.approx(1.0)

    tpm = TokenBucket(600, clock=clock)  # 10 tokens/s, bucket of 10
    assert tpm.reserve(50) == pytest.approx(4.0)  # larger than the bucket: it waits, it passes
    tpm.adjust(30)  # the call used 30 tokens fewer than estimated
    assert tpm.reserve(1) == pytest.approx(1.1)


def test_backoff_honours_retry_after_and_grows_exponentially() -> None:
    rng = random.Random(0)
    for _ in range(50):
        assert 2.0 <= backoff_delay(0, 2.0, 0.5, rng=rng) <= 2.2
        assert 0.25 <= backoff_delay(0, None, 0.5, rng=rng) <= 0.5
        assert 2.0 <= backoff_delay(3, None, 0.5, rng=rng) <= 4.0
        assert 15.0 <= backoff_delay(20, None, 0.5, cap_s=30, rng=rng) <= 30.0
    assert backoff_delay(0, 10_000.0, rng=rng) <= 300.0 * 1.1


def test_parse_retry_after_seconds_milliseconds_and_dates() -> None:
    now = 1_700_000_000.0
    assert parse_retry_after({"Retry-After": "3"}) == 3.0
    assert parse_retry_after({"retry-after": "1.5"}) == 1.5
    assert parse_retry_after({"retry-after-ms": "250", "retry-after": "9"}) == 0.25
    future = email.utils.formatdate(now + 12, usegmt=True)
    assert parse_retry_after({"Retry-After": future}, now=now) == pytest.approx(12.0)
    past = email.utils.formatdate(now - 60, usegmt=True)
    assert parse_retry_after({"Retry-After": past}, now=now) == 0.0
    assert parse_retry_after({"Retry-After": "soon"}) is None
    assert parse_retry_after({}) is None


def test_estimate_counts_prompt_characters_and_max_tokens() -> None:
    p = Prompt(("k",), [{"role": "user", "content": "x" * 400}], 3, SAMPLING, "v")
    assert estimate_tokens(p, 3) == 100 + 4 + 30


def test_stats_add_up() -> None:
    total = EngineStats(requests=2, cost_usd=0.5) + EngineStats(requests=3, budget_exhausted=True)
    assert total.requests == 5 and total.cost_usd == 0.5 and total.budget_exhausted


# ---------------------------------------------------------------------- the engine


def test_partial_choices_are_requested_again_for_the_rest(tmp_path: Path) -> None:
    backend = ScriptedBackend(max_choices=2)
    eng, _ = engine(backend, tmp_path)
    results = eng.run_sync([prompt("a", 5)], "CoTs")
    assert [n for _, n in backend.calls] == [5, 3, 1]
    texts = results[("cot", "a")]
    assert len(texts) == 5 and all(texts) and len(set(texts)) == 5
    assert eng.last.samples_new == 5 and not eng.last.n_ignored


def test_server_ignoring_n_switches_to_single_requests(tmp_path: Path) -> None:
    backend = ScriptedBackend(max_choices=1)
    eng, _ = engine(backend, tmp_path, concurrency=1)
    eng.run_sync([prompt("a", 3)], "CoTs")
    assert [n for _, n in backend.calls] == [3, 1, 1]
    assert eng.last.n_ignored
    backend.calls.clear()
    results = eng.run_sync([prompt("b", 3)], "evaluations")  # a second run on the same engine
    assert [n for _, n in backend.calls] == [1, 1, 1]
    assert all(results[("cot", "b")])


def test_each_call_gets_the_seed_of_its_first_sample_the_same_on_a_fresh_run(
    tmp_path: Path,
) -> None:
    seeds = []
    for run in ("first", "fresh"):
        backend = ScriptedBackend(max_choices=1)
        eng, _ = engine(backend, tmp_path / run, concurrency=1)
        eng.run_sync([prompt("a", 3), prompt("b", 1)], "CoTs")
        seeds.append(backend.seeds)
    assert seeds[0] == seeds[1]  # same prompt, sample index and settings: same seed
    assert len(set(seeds[0])) == len(seeds[0])  # one seed per call: (prompt, first sample index)
    assert all(0 <= s < 2**31 for s in seeds[0])
    quiet = ScriptedBackend()
    engine(quiet, tmp_path / "off", send_seed=False)[0].run_sync([prompt("a", 1)], "CoTs")
    assert quiet.seeds == [None]


def test_cache_hits_send_nothing_and_count_as_cached(tmp_path: Path) -> None:
    backend = ScriptedBackend()
    eng, cache = engine(backend, tmp_path, price_input_per_mtok=1e6, price_output_per_mtok=1e6)
    first = eng.run_sync([prompt("a", 2), prompt("b", 1)], "CoTs")
    assert eng.last.cost_usd == pytest.approx(2 * 15.0)
    backend.calls.clear()
    again = RequestEngine(backend, cache, eng.cfg, quiet=True).run_sync(
        [prompt("a", 3), prompt("b", 1)], "CoTs"
    )
    assert backend.calls == [("Q a", 1)]  # only the new third sample of "a"
    assert again[("cot", "a")][:2] == first[("cot", "a")]
    assert again[("cot", "b")] == first[("cot", "b")]


def test_retryable_errors_are_retried_then_given_up(tmp_path: Path) -> None:
    flaky_calls = []

    def fault(content: str, call: int) -> None:
        if content == "Q flaky":
            flaky_calls.append(call)
            if len(flaky_calls) <= 2:
                raise RetryableError("HTTP 429", retry_after=0.05)
        if content == "Q dead":
            raise RetryableError("HTTP 500")

    backend = ScriptedBackend(fault=fault)
    eng, _ = engine(backend, tmp_path, concurrency=1, max_retries=2)
    results = eng.run_sync([prompt("flaky"), prompt("dead")], "CoTs")
    assert results[("cot", "flaky")][0] is not None
    assert results[("cot", "dead")] == [None]
    stats = eng.last
    assert stats.samples_failed == 1 and stats.samples_new == 1
    assert stats.requests == 3 + 3 and stats.retries == 2 + 2
    assert stats.waited_s >= 2 * 0.05  # both Retry-After pauses were honoured


def test_fatal_error_stops_the_run_after_caching_what_finished(tmp_path: Path) -> None:
    def fault(content: str, call: int) -> None:
        if content == "Q b":
            raise FatalError("http://x/v1: the key in $OPENAI_API_KEY was rejected (401)")

    backend = ScriptedBackend(fault=fault)
    eng, cache = engine(backend, tmp_path, concurrency=1)
    with pytest.raises(UserError, match=r"rejected \(401\).*re-run to resume"):
        eng.run_sync([prompt("a"), prompt("b"), prompt("c")], "CoTs")
    assert [c for c, _ in backend.calls] == ["Q a", "Q b"]
    assert cache.stats.rows == 1


def test_budget_stops_new_requests(tmp_path: Path) -> None:
    # 10 completion tokens at $100,000 per million: each call costs exactly $1.
    backend = ScriptedBackend(usage=Usage(0, 10))
    eng, _ = engine(backend, tmp_path, concurrency=1, price_output_per_mtok=1e5, budget_usd=3.5)
    results = eng.run_sync([prompt(str(i)) for i in range(6)], "CoTs")
    filled = [texts[0] for texts in results.values()]
    assert sum(t is not None for t in filled) == 3
    stats = eng.last
    assert stats.budget_exhausted and stats.samples_skipped == 3
    assert stats.cost_usd == pytest.approx(3.0) and len(backend.calls) == 3
    again = eng.run_sync([prompt("new")], "evaluations")  # the budget spans the engine's runs
    assert again[("cot", "new")] == [None] and len(backend.calls) == 3
    assert eng.stats.cost_usd == pytest.approx(3.0) and eng.stats.budget_exhausted


def test_duplicate_prompt_keys_are_a_programming_error(tmp_path: Path) -> None:
    eng, _ = engine(ScriptedBackend(), tmp_path)
    with pytest.raises(ValueError, match="duplicate"):
        eng.run_sync([prompt("a"), prompt("a")], "CoTs")
