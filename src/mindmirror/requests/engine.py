"""The request engine: many samples from a backend, fast, resumable, within limits.

It serves the teacher (CoTs, evaluations) and the student (its samples and verdicts through a
server: ``mindmirror.student.server``). Usage (what ``teacher/teach.py`` does)::

    engine = RequestEngine(backend, ResponseCache(run.cache), cfg)   # cfg: a TeacherConfig
    cots = engine.run_sync(cot_prompts, description="CoTs")
    evals = engine.run_sync(eval_prompts, description="evaluations")
    engine.stats.as_dict()        # totals over both runs; engine.last = the latest run only

``run``/``run_sync`` take ``Prompt`` objects (each wants ``n`` samples) and return, for each
prompt key, exactly ``n`` texts in sample-index order, with None where a sample failed for good
or the budget stopped it. What the engine does for that:

- Cache first: every sample is keyed by (model, messages, sampling, sample index, prompt
  version); cached samples are never requested again, and each new sample is committed the
  moment it arrives, so a killed run resumes paying only for what was in flight.
- ``n``: with ``use_n`` the missing samples of a prompt go out as one call with ``n=k``; when a
  server returns fewer choices, the rest is asked for again, and once a server has answered
  ``n>1`` with a single choice (llama.cpp ignores ``n``) later prompts go straight to
  concurrent ``n=1`` calls.
- Seeds: with ``send_seed`` each call carries a seed taken from the cache key of its first
  sample, so a server that honours ``seed`` returns the same samples to a fresh run (with an
  empty cache) of the same recipe.
- Limits: at most ``concurrency`` calls in flight, requests-per-minute and tokens-per-minute
  token buckets (tokens estimated as prompt characters / 4 + ``max_tokens * n`` before a call,
  corrected with the reported usage after it).
- Retries: 429, 5xx, timeouts and dropped connections are retried up to ``max_retries`` times
  with exponential backoff and jitter; a server's ``Retry-After`` is honoured and pauses every
  task, not just the one that got it. A ``FatalError`` (wrong key, unknown model, bad request)
  ends the run at once as a one-line ``UserError``; everything finished before is cached.
- Money: tokens and USD (per-million prices) are counted apart for paid and cached samples. With
  ``budget_usd`` no call is sent whose worst case (its prompt plus ``max_tokens * n``) could
  take the engine's spending (all its runs together) past the cap; the remaining samples are
  None and ``stats.budget_exhausted`` says so. A ``budget`` (``RunBudget``, set by ``teach``
  for ``teacher.budget``) caps the same way the run's whole bill in dollars or tokens, the
  samples found in the cache included (``mindmirror.requests.accounting``; calls are admitted
  by ``mindmirror.requests.budget_gate``).
- Batch: with a ``batch`` hook (``teacher.batch``, ``mindmirror.teacher.batch``) the cache
  misses go to the Batch API first (committed through ``commit`` at the batch price); only
  what it leaves unfilled is requested online.
- Progress (done/total samples, rate, ETA, tokens, cost): a rich bar on terminals, plain
  lines elsewhere (``mindmirror.progress``), nothing with ``quiet=True``. Samples given up on
  are counted (in the progress line, ``samples_failed``, ``last_error`` of the latest run),
  not printed one by one: teach sums them up.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from mindmirror.errors import UserError
from mindmirror.progress import ProgressReport
from mindmirror.requests.accounting import RunBudget, price
from mindmirror.requests.budget_gate import BudgetGate, spending_caps
from mindmirror.requests.cache import ResponseCache, cache_key
from mindmirror.requests.limits import (
    TokenBucket,
    backoff_delay,
    estimate_tokens,
    request_seed,
    split_evenly,
)
from mindmirror.requests.types import (
    Backend,
    BatchHook,
    EngineSettings,
    EngineStats,
    FatalError,
    Prompt,
    Reply,
    RetryableError,
    Usage,
)

log = logging.getLogger("mindmirror.requests")


def _first_fatal(group: BaseExceptionGroup[Any]) -> FatalError | None:
    for error in group.exceptions:
        if isinstance(error, FatalError):
            return error
        if isinstance(error, BaseExceptionGroup):
            found = _first_fatal(error)
            if found is not None:
                return found
    return None


class RequestEngine:
    """Runs prompts through a backend with a cache, limits, retries and accounting."""

    def __init__(
        self,
        backend: Backend,
        cache: ResponseCache,
        cfg: EngineSettings,
        *,
        label: str = "teacher",
        quiet: bool = False,
        backoff_base_s: float = 0.5,
        rng: random.Random | None = None,
    ) -> None:
        self.backend = backend
        self.cache = cache
        self.cfg = cfg
        self.label = label
        self.quiet = quiet
        self.backoff_base_s = backoff_base_s
        self._rng = rng or random.Random()
        self._rpm = TokenBucket(cfg.rpm) if cfg.rpm else None
        self._tpm = TokenBucket(cfg.tpm) if cfg.tpm else None
        self._n_ignored = False
        self._checked = False
        #: The sums of the finished runs, kept as running totals (a budget run makes thousands).
        self._earlier = EngineStats()
        self.last = EngineStats()
        self._gate = BudgetGate()
        # Per-run asyncio state, made inside the running loop by ``run``.
        self._sem: asyncio.Semaphore
        self._pause_until = 0.0
        self._aborted = False
        self._report: ProgressReport | None = None
        #: Set by ``teach`` for ``teacher.budget``: the cap on the run's whole bill.
        self.budget: RunBudget | None = None
        #: The error of the latest sample given up on in the latest run (teach reports it once
        #: per kind of request, not per sample).
        self.last_error: str | None = None
        self._results: dict[tuple[str, ...], list[str | None]] = {}
        #: Set by ``teach`` for ``teacher.batch``: fills cache misses before the online path.
        self.batch: BatchHook | None = None

    # ------------------------------------------------------------------ accounting

    @property
    def stats(self) -> EngineStats:
        """Totals over every run of this engine (the current one included)."""
        return self._earlier + self.last

    def cost(self, usage: Usage) -> float:
        """USD for ``usage`` at the configured per-million prices."""
        return price(usage, self.cfg)

    async def _admit(self, worst: Usage) -> list[float] | None:
        """Reserve a call's worst case under every budget in force (``BudgetGate``); None
        once a budget is reached (the reservations to release otherwise)."""
        if self.cfg.budget_usd is None and self.budget is None:
            return []
        usd = self.cost(worst)
        held = await self._gate.admit(
            lambda: spending_caps(self.cfg.budget_usd, self.budget, self.stats, worst, usd)
        )
        if held is None:
            self.last.budget_exhausted = True
        return held

    def _advance(self, samples: int, failed: int = 0) -> None:
        if self._report is not None:
            tokens = self.last.prompt_tokens + self.last.completion_tokens
            self._report.update(
                advance=samples, failed=failed, status=f"{tokens:,} tok ${self.last.cost_usd:.4f}"
            )

    @contextmanager
    def _progress(self, description: str, total: int, done: int) -> Iterator[None]:
        report = ProgressReport(
            f"{self.label}: {description}", total, completed=done, enabled=not self.quiet
        )
        with report:
            self._report = report
            try:
                yield
            finally:
                self._report = None

    # ------------------------------------------------------------------ requests

    async def _wait_pause(self) -> None:
        while (left := self._pause_until - time.monotonic()) > 0:
            await asyncio.sleep(left)

    async def _wait_rate(self, tokens: int) -> None:
        delay = 0.0
        if self._rpm is not None:
            delay = max(delay, self._rpm.reserve(1))
        if self._tpm is not None:
            delay = max(delay, self._tpm.reserve(tokens))
        if delay > 0:
            await asyncio.sleep(delay)

    def _key(self, prompt: Prompt, index: int) -> str:
        """The cache key of sample ``index`` of ``prompt`` (also the source of its seed)."""
        return cache_key(
            self.backend.model,
            prompt.messages,
            prompt.sampling,
            index,
            prompt.prompt_version,
            prompt.instance,
        )

    def commit(
        self, prompt: Prompt, indices: list[int], reply: Reply, *, price_factor: float = 1.0
    ) -> int:
        """Cache and count a reply obtained outside the online path (a batch), at
        ``price_factor`` times the prices; return how many samples it filled."""
        return self._store(prompt, indices, reply, None, price_factor)

    def _store(
        self,
        prompt: Prompt,
        indices: list[int],
        reply: Reply,
        estimate: int | None,
        price_factor: float = 1.0,
    ) -> int:
        """Cache and record the texts of one reply; return how many samples it filled."""
        texts = reply.texts[: len(indices)]
        usage = reply.usage
        stats = self.last
        stats.prompt_tokens += usage.prompt_tokens
        stats.prompt_tokens_cached += usage.cached_prompt_tokens
        stats.completion_tokens += usage.completion_tokens
        stats.cost_usd += self.cost(usage) * price_factor
        stats.samples_new += len(texts)
        real = usage.prompt_tokens + usage.completion_tokens
        if self._tpm is not None and estimate is not None and real > 0:
            self._tpm.adjust(estimate - real)
        shares = zip(
            split_evenly(usage.prompt_tokens, len(texts)),
            split_evenly(usage.completion_tokens, len(texts)),
            strict=True,
        )
        for index, text, (prompt_share, completion_share) in zip(
            indices, texts, shares, strict=False
        ):
            key = self._key(prompt, index)
            self.cache.put(
                key,
                text,
                Usage(prompt_share, completion_share),
                model=self.backend.model,
                prompt_version=prompt.prompt_version,
                index=index,
            )
            self._results[prompt.key][index] = text
        self._advance(len(texts))
        return len(texts)

    async def _request(self, prompt: Prompt, indices: list[int]) -> int:
        """One call for the samples ``indices`` of ``prompt``, with retries.

        Returns how many of them it filled (0 when it failed for good or the budget stopped it).
        """
        n = len(indices)
        seed = request_seed(self._key(prompt, indices[0])) if self.cfg.send_seed else None
        estimate = estimate_tokens(prompt, n)
        worst = Usage(estimate - prompt.sampling.max_tokens * n, prompt.sampling.max_tokens * n)
        stats = self.last
        attempts = self.cfg.max_retries + 1
        error = RetryableError("not sent")
        for attempt in range(attempts):
            async with self._sem:
                if self._aborted:
                    return 0
                await self._wait_pause()
                await self._wait_rate(estimate)
                held = await self._admit(worst)
                if held is None:
                    stats.samples_skipped += n
                    self._advance(n)
                    return 0
                stats.requests += 1
                stats.retries += 1 if attempt else 0
                try:
                    reply = await self.backend.complete(prompt.messages, n, prompt.sampling, seed)
                except RetryableError as retryable:
                    error = retryable
                except FatalError:
                    # Tasks already woken for their turn must not send anything after this.
                    self._aborted = True
                    raise
                else:
                    if reply.texts:
                        return self._store(prompt, indices, reply, estimate)
                    error = RetryableError("the server returned no choices")
                finally:
                    await self._gate.release(held)
            if attempt + 1 == attempts:
                break
            delay = backoff_delay(attempt, error.retry_after, self.backoff_base_s, rng=self._rng)
            if error.retry_after is not None:
                # A rate-limit answer concerns the whole endpoint: every task waits.
                self._pause_until = max(self._pause_until, time.monotonic() + delay)
            stats.waited_s += delay
            await asyncio.sleep(delay)
        log.debug(
            "giving up on %d sample(s) of %s after %d attempts: %s", n, prompt.key, attempts, error
        )
        self.last_error = str(error)
        stats.samples_failed += n
        self._advance(n, failed=n)
        return 0

    async def _fill(self, prompt: Prompt, missing: list[int]) -> None:
        """Request the missing samples of one prompt (with ``n`` where the server honours it)."""
        remaining = list(missing)
        while len(remaining) > 1 and self.cfg.use_n and not self._n_ignored:
            got = await self._request(prompt, remaining)
            if got == 0:
                return
            if got == 1:
                # One choice for n>1: the server ignores ``n``; stop asking it for more.
                self._n_ignored = self.last.n_ignored = True
            remaining = remaining[got:]
        if remaining:
            async with asyncio.TaskGroup() as group:
                for index in remaining:
                    group.create_task(self._request(prompt, [index]))

    async def _check(self) -> None:
        check = getattr(self.backend, "check", None)
        if check is None or self._checked:
            return
        try:
            await check()
        except FatalError as error:
            raise UserError(str(error)) from None
        self._checked = True

    async def _close_backend(self) -> None:
        close = getattr(self.backend, "aclose", None)
        if close is not None:
            await close()

    # ------------------------------------------------------------------ entry points

    async def run(
        self, prompts: list[Prompt], description: str
    ) -> dict[tuple[str, ...], list[str | None]]:
        """Exactly ``prompt.n`` texts per prompt key, in sample-index order (None = missing).

        Raises:
            UserError: the backend failed in a way retrying cannot fix (e.g. a 401); every
                sample finished before that is in the cache.
        """
        if self.last.samples:
            self._earlier = self._earlier + self.last
        self.last = stats = EngineStats(n_ignored=self._n_ignored)
        self.last_error = None
        started = time.perf_counter()
        self._results = {}
        pending: list[tuple[Prompt, list[int]]] = []
        claimed: set[str] = set()
        for prompt in prompts:
            if prompt.key in self._results:
                raise ValueError(f"duplicate prompt key {prompt.key}")
            slots: list[str | None] = [None] * prompt.n
            self._results[prompt.key] = slots
            wanted = range(prompt.first, prompt.n)
            keys = [self._key(prompt, index) for index in wanted]
            if claimed.intersection(keys):
                # Two prompts on one cache key would pay twice and keep one sample.
                raise ValueError(f"prompt {prompt.key} repeats another's request: set instance")
            claimed.update(keys)
            found = self.cache.get_many(keys)
            missing = []
            for index, key in zip(wanted, keys, strict=True):
                hit = found.get(key)
                if hit is None:
                    missing.append(index)
                    continue
                slots[index] = hit.text
                stats.cache_hits += 1
                stats.cached_prompt_tokens += hit.usage.prompt_tokens
                stats.cached_completion_tokens += hit.usage.completion_tokens
                factor = self.batch.price_factor(key) if self.batch is not None else 1.0
                stats.cached_cost_usd += self.cost(hit.usage) * factor
            stats.samples += len(keys)
            if missing:
                pending.append((prompt, missing))
        try:
            with self._progress(description, stats.samples, stats.cache_hits):
                if pending and self.batch is not None:
                    pending = await self.batch.fill(self, pending)
                if pending:
                    await self._run_pending(pending)
        finally:
            stats.wall_s = time.perf_counter() - started
        return self._results

    async def _run_pending(self, pending: list[tuple[Prompt, list[int]]]) -> None:
        self._sem = asyncio.Semaphore(self.cfg.concurrency)
        self._gate.open()
        self._pause_until = 0.0
        self._aborted = False
        try:
            await self._check()
            async with asyncio.TaskGroup() as group:
                for prompt, missing in pending:
                    group.create_task(self._fill(prompt, missing))
        except BaseExceptionGroup as errors:
            fatal = _first_fatal(errors)
            if fatal is not None:
                raise UserError(
                    f"{fatal} (finished samples are cached; fix this and re-run to resume)"
                ) from None
            raise
        finally:
            await self._close_backend()

    def run_sync(
        self, prompts: list[Prompt], description: str
    ) -> dict[tuple[str, ...], list[str | None]]:
        """``run`` from synchronous code (not from inside a running event loop)."""
        return asyncio.run(self.run(prompts, description))
