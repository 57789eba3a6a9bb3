"""Teacher throughput: the request engine against a one-request-at-a-time client.

The paper's Tree-of-Thoughts loop asks the teacher for one completion, waits for it, then asks
for the next. Behind a real API each request spends most of its time in network and queueing
latency, so this benchmark puts the fault proxy (``tests/fault_proxy.py``) in front of the
embedded llama.cpp server with a fixed added latency per request (default 1 s), and keeps the
server's own work small next to that latency (it measures the engine, not the model):

- the workload is the method's own: several samples per question (``--samples`` per
  ``--questions``), sent one request per sample, as a server that ignores ``n`` needs them;
  llama.cpp keeps the question's prompt in its KV cache between consecutive samples;
- ``max_tokens`` is 1 by default, so each request is one sampled token (about 10 ms of server
  time on an idle 2-core machine).

Every client talks to the same server through the same proxy in the same run:

- sequential: the ``openai`` sync client, one request after another;
- published: the shape of the published loop: sequential, one request per question asking
  for ``n`` = 5 samples (llama.cpp answers one; samples/s is what counts);
- asyncopenai: what a competent user writes in ten lines: ``AsyncOpenAI`` with a semaphore at
  the same concurrency, no cache, no retries, no accounting (a request that fails is counted
  and reported, and its requests/s counts only the requests that succeeded);
- engine: ``RequestEngine`` at ``--concurrency`` (default 64) with a fresh cache.

The engine and the AsyncOpenAI baseline run ``--repeats`` times each, interleaved (median and
spread). Prints requests/s, the ideal (concurrency / latency) and the share of it reached; the
last lines are ``RESULT teacher_overhead <engine / AsyncOpenAI>`` (the cache, retries and
accounting cost less than 10% when >= 0.9) and ``RESULT teacher_throughput <engine /
sequential>``.

    python bench/teacher_throughput.py --quick     # under 5 minutes
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import openai

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the fault proxy lives with the tests

from mindmirror.config import TeacherConfig  # noqa: E402
from mindmirror.embedded import EMBEDDED_MODEL, llama_server  # noqa: E402
from mindmirror.requests.cache import ResponseCache  # noqa: E402
from mindmirror.requests.engine import RequestEngine  # noqa: E402
from mindmirror.requests.types import Prompt, Sampling  # noqa: E402
from mindmirror.teacher.backends import OpenAIBackend  # noqa: E402
from tests.fault_proxy import fault_proxy  # noqa: E402


def messages(question: int) -> list[dict[str, str]]:
    """The chat messages of one question of the workload."""
    return [{"role": "user", "content": f"Reply with one word. Item {question}."}]


def run_sequential(url: str, samples: int, max_tokens: int) -> float:
    """Requests/s of the one-at-a-time client (``openai`` sync client, no concurrency)."""
    client = openai.OpenAI(base_url=url, api_key="sk-no-key", max_retries=0, timeout=120)
    start = time.perf_counter()
    for _ in range(samples):
        client.chat.completions.create(
            model=EMBEDDED_MODEL, messages=messages(-1), max_tokens=max_tokens, temperature=0.7
        )
    elapsed = time.perf_counter() - start
    client.close()
    return samples / elapsed


def run_published(url: str, questions: int, max_tokens: int) -> float:
    """Samples/s of the published loop's shape: one question after another, ``n`` = 5 each."""
    client = openai.OpenAI(base_url=url, api_key="sk-no-key", max_retries=0, timeout=120)
    start = time.perf_counter()
    got = 0
    for question in range(questions):
        reply = client.chat.completions.create(
            model=EMBEDDED_MODEL,
            messages=messages(10_000 + question),
            max_tokens=max_tokens,
            temperature=0.7,
            n=5,
        )
        got += len(reply.choices)
    elapsed = time.perf_counter() - start
    client.close()
    return got / elapsed


@dataclass
class BaselineRun:
    """What one run of the AsyncOpenAI baseline did: requests/s of the requests that succeeded,
    and the errors of those that failed (it has no retries, by design)."""

    rps: float
    errors: list[str] = field(default_factory=list)


async def _async_baseline(
    url: str, questions: int, samples: int, max_tokens: int, concurrency: int, offset: int
) -> BaselineRun:
    client = openai.AsyncOpenAI(base_url=url, api_key="sk-no-key", max_retries=0, timeout=300)
    gate = asyncio.Semaphore(concurrency)
    errors: list[str] = []

    async def one(question: int) -> None:
        async with gate:
            try:
                await client.chat.completions.create(
                    model=EMBEDDED_MODEL,
                    messages=messages(offset + question),
                    max_tokens=max_tokens,
                    temperature=0.7,
                )
            except openai.APIError as error:
                # Counted and reported: one dropped connection must not void the measurement.
                errors.append(" ".join(str(error).split())[:160])

    start = time.perf_counter()
    await asyncio.gather(*(one(q) for q in range(questions) for _ in range(samples)))
    elapsed = time.perf_counter() - start
    await client.close()
    return BaselineRun((questions * samples - len(errors)) / elapsed, errors)


def run_async_baseline(
    url: str, questions: int, samples: int, max_tokens: int, concurrency: int, offset: int
) -> BaselineRun:
    """Requests/s of ``AsyncOpenAI`` + a semaphore on the engine's workload (fresh prompts),
    counting only the requests that succeeded, and the errors of those that failed."""
    return asyncio.run(_async_baseline(url, questions, samples, max_tokens, concurrency, offset))


def run_engine(
    url: str, questions: int, samples: int, max_tokens: int, concurrency: int, offset: int = 0
) -> tuple[float, int, int]:
    """Requests/s of the engine on fresh prompts; also how many samples came back and how many
    requests it retried."""
    cfg = TeacherConfig(
        model=EMBEDDED_MODEL,
        base_url=url,
        api_key_env="MINDMIRROR_BENCH_NO_KEY",
        concurrency=concurrency,
        max_retries=3,
        timeout_s=300,
        use_n=False,  # llama.cpp ignores ``n``: one request per sample from the start
    )
    sampling = Sampling(temperature=0.7, top_p=1.0, max_tokens=max_tokens)
    prompts = [
        Prompt(("bench", str(q)), messages(offset + q), samples, sampling, "bench_v1")
        for q in range(questions)
    ]
    with tempfile.TemporaryDirectory() as tmp:
        cache = ResponseCache(Path(tmp) / "cache.sqlite")
        engine = RequestEngine(OpenAIBackend.from_config(cfg), cache, cfg, label="engine")
        results = engine.run_sync(prompts, description="bench")
        cache.close()
    filled = sum(text is not None for texts in results.values() for text in texts)
    return engine.last.samples_new / engine.last.wall_s, filled, engine.last.retries


def main() -> None:
    """Parse arguments, start server and proxy, measure both clients, print the result."""
    parser = argparse.ArgumentParser(description="Teacher engine vs sequential client.")
    parser.add_argument("--quick", action="store_true", help="fewer requests (under 5 minutes)")
    parser.add_argument("--latency", type=float, default=1.0, help="seconds added per request")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--max-tokens", type=int, default=1)
    parser.add_argument("--samples", type=int, default=64, help="samples per question")
    parser.add_argument("--questions", type=int, default=None, help="engine questions")
    parser.add_argument("--sequential", type=int, default=None, help="sequential requests")
    parser.add_argument("--threads", type=int, default=None, help="llama.cpp threads")
    parser.add_argument("--repeats", type=int, default=3, help="runs of engine and baseline")
    args = parser.parse_args()
    sequential_n = args.sequential or (10 if args.quick else 30)
    questions = args.questions or (10 if args.quick else 40)
    total = questions * args.samples
    engine_rps: list[float] = []
    async_rps: list[float] = []
    async_errors: list[str] = []
    engine_retries = 0
    with (
        llama_server(n_threads=args.threads) as server_url,
        fault_proxy(server_url) as proxy,
    ):
        run_sequential(proxy.url, 2, args.max_tokens)  # pages the weights in, caches the prompt
        alone = run_sequential(proxy.url, 10, args.max_tokens)
        print(f"server alone: {alone:.1f} requests/s (one at a time, no added latency)")
        proxy.configure(latency_s=args.latency)
        seq_rps = run_sequential(proxy.url, sequential_n, args.max_tokens)
        print(f"sequential: {sequential_n} requests, {seq_rps:.2f} requests/s")
        published = run_published(proxy.url, max(2, sequential_n // 5), args.max_tokens)
        print(f"published loop (sequential, n=5 per request): {published:.2f} samples/s")
        for repeat in range(args.repeats):
            # Fresh prompts each time: neither client may profit from the other's KV cache.
            offset = 1000 * (2 * repeat + 1)
            proxy.reset()
            rps, filled, retries = run_engine(
                proxy.url, questions, args.samples, args.max_tokens, args.concurrency, offset
            )
            engine_rps.append(rps)
            engine_retries += retries
            baseline = run_async_baseline(
                proxy.url, questions, args.samples, args.max_tokens, args.concurrency,
                offset + 1000,
            )  # fmt: skip
            async_rps.append(baseline.rps)
            async_errors += baseline.errors
            print(
                f"repeat {repeat + 1}: engine {engine_rps[-1]:.2f} requests/s ({filled} of "
                f"{total} samples back, {retries} retried), AsyncOpenAI {async_rps[-1]:.2f} "
                f"requests/s ({len(baseline.errors)} of {total} failed)",
                flush=True,
            )
    ideal = args.concurrency / args.latency
    eng, base = statistics.median(engine_rps), statistics.median(async_rps)

    def spread(values: list[float]) -> str:
        return f"{statistics.median(values):.2f} ({min(values):.2f}-{max(values):.2f})"

    print(f"engine: {total} requests at concurrency {args.concurrency}, {spread(engine_rps)} req/s")
    print(f"AsyncOpenAI + semaphore: {spread(async_rps)} req/s (succeeded requests only)")
    first = f"; first: {async_errors[0]}" if async_errors else ""
    print(
        f"failed AsyncOpenAI requests: {len(async_errors)} of {total * args.repeats}{first}; "
        f"engine retries: {engine_retries}"
    )
    print(
        f"ideal: {ideal:.1f} requests/s (concurrency / latency); engine at {eng / ideal:.0%}, "
        f"AsyncOpenAI at {base / ideal:.0%}"
    )
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"latency {args.latency:g} s, max_tokens {args.max_tokens}, {args.repeats} repeats")
    print(f"machine: {os.cpu_count()} cores, load average {load} (1, 5, 15 min)")
    print(f"RESULT teacher_overhead {eng / base:.2f}")
    print(f"RESULT teacher_throughput {eng / seq_rps:.1f}")


if __name__ == "__main__":
    main()
