"""Teacher throughput: the request engine against a one-request-at-a-time client.

The paper's Tree-of-Thoughts loop asks the teacher for one completion, waits for it, then asks
for the next. Behind a real API each request spends most of its time in network and queueing
latency, so this benchmark puts the fault proxy (``tests/fault_proxy.py``) in front of the
embedded llama.cpp server with a fixed added latency per request (default 1 s) and keeps
``max_tokens`` tiny so the server's own compute stays small next to that latency: it measures
the engine, not the model.

Both clients talk to the same server through the same proxy in the same run:

- sequential: the ``openai`` sync client, one request after another;
- engine: ``RequestEngine`` at ``--concurrency`` (default 64) with a fresh cache.

Prints requests/s of both, their ratio and the ideal (concurrency / latency); the last line is
``RESULT teacher_throughput <ratio>``.

    python bench/teacher_throughput.py --quick     # under 5 minutes
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import openai

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the fault proxy lives with the tests

from mindmirror.config import TeacherConfig  # noqa: E402
from mindmirror.embedded import EMBEDDED_MODEL, llama_server  # noqa: E402
from mindmirror.teacher.backends import OpenAIBackend  # noqa: E402
from mindmirror.teacher.cache import ResponseCache  # noqa: E402
from mindmirror.teacher.engine import RequestEngine  # noqa: E402
from mindmirror.teacher.types import Prompt, Sampling  # noqa: E402
from tests.fault_proxy import ProxyHandle, fault_proxy  # noqa: E402


def question(i: int) -> str:
    """A short distinct prompt per request (the server still reuses the shared prefix)."""
    return f"Reply with one word. Item {i}."


def run_sequential(url: str, count: int, max_tokens: int) -> float:
    """Requests/s of the one-at-a-time client (``openai`` sync client, no concurrency)."""
    client = openai.OpenAI(base_url=url, api_key="sk-no-key", max_retries=0, timeout=120)
    start = time.perf_counter()
    for i in range(count):
        client.chat.completions.create(
            model=EMBEDDED_MODEL,
            messages=[{"role": "user", "content": question(i)}],
            max_tokens=max_tokens,
            temperature=0.7,
        )
    elapsed = time.perf_counter() - start
    client.close()
    return count / elapsed


def run_engine(url: str, count: int, max_tokens: int, concurrency: int) -> tuple[float, int]:
    """Requests/s of the engine on ``count`` fresh prompts; also how many samples came back."""
    cfg = TeacherConfig(
        model=EMBEDDED_MODEL,
        base_url=url,
        api_key_env="MINDMIRROR_BENCH_NO_KEY",
        concurrency=concurrency,
        max_retries=3,
        timeout_s=300,
    )
    sampling = Sampling(temperature=0.7, top_p=1.0, max_tokens=max_tokens)
    prompts = [
        Prompt(("bench", str(i)), [{"role": "user", "content": question(count + i)}], 1,
               sampling, "bench_v1")
        for i in range(count)
    ]  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        cache = ResponseCache(Path(tmp) / "cache.sqlite")
        engine = RequestEngine(OpenAIBackend.from_config(cfg), cache, cfg, label="engine")
        results = engine.run_sync(prompts, description="bench")
        cache.close()
    filled = sum(texts[0] is not None for texts in results.values())
    return count / engine.last.wall_s, filled


def main() -> None:
    """Parse arguments, start server and proxy, measure both clients, print the result."""
    parser = argparse.ArgumentParser(description="Teacher engine vs sequential client.")
    parser.add_argument("--quick", action="store_true", help="fewer requests (under 5 minutes)")
    parser.add_argument("--latency", type=float, default=1.0, help="seconds added per request")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--max-tokens", type=int, default=2)
    parser.add_argument("--sequential", type=int, default=None, help="sequential requests")
    parser.add_argument("--requests", type=int, default=None, help="engine requests")
    args = parser.parse_args()
    sequential_n = args.sequential or (10 if args.quick else 30)
    engine_n = args.requests or args.concurrency * (10 if args.quick else 30)

    with llama_server() as server_url, fault_proxy(server_url) as proxy:
        warm = run_sequential(proxy.url, 3, args.max_tokens)  # loads weights, fills the KV cache
        proxy.configure(latency_s=args.latency)
        print(f"server without added latency: {warm:.1f} requests/s (one at a time)")
        seq_rps = run_sequential(proxy.url, sequential_n, args.max_tokens)
        print(f"sequential: {sequential_n} requests, {seq_rps:.2f} requests/s")
        proxy.reset()
        eng_rps, filled = run_engine(proxy.url, engine_n, args.max_tokens, args.concurrency)
        forwarded = _forwarded(proxy)
    ideal = args.concurrency / args.latency
    ratio = eng_rps / seq_rps
    print(
        f"engine: {engine_n} requests at concurrency {args.concurrency}, {eng_rps:.2f} requests/s "
        f"({filled} samples back, {forwarded} reached the server)"
    )
    print(f"ideal: {ideal:.1f} requests/s (concurrency / latency); engine at {eng_rps / ideal:.0%}")
    print(f"latency {args.latency:g} s, max_tokens {args.max_tokens}; ratio engine/sequential")
    print(f"RESULT teacher_throughput {ratio:.1f}")


def _forwarded(proxy: ProxyHandle) -> int:
    return int(proxy.stats()["forwarded"])


if __name__ == "__main__":
    main()
