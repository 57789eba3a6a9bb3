"""Student sampling: the llama.cpp path against the transformers path, side by side.

What ``vote`` and ``mirror`` spend their time on: K sampled CoTs per question. Both paths
sample the same questions (``explain: <question>``, the student's own format) with the same K
(default 5), temperature (0.7), top-p (1.0) and token limit (default 256):

- transformers: ``generate`` on the loaded student, K samples per input in one call,
  ``eval.batch_size`` sequences per call (what ``eval`` does with ``eval.engine=transformers``);
- llama.cpp: the student exported to GGUF (``--gguf-type``, f16 by default) and served by the
  batched llama.cpp server (``--parallel`` sequences decoded together, ``eval.engine_parallel``),
  sampled through the request engine (``eval.engine=llama_cpp``); exporting and starting the
  server happen once, before the timed runs, as in ``eval`` (``--servers N``: N server
  processes, ``eval.engine_servers``).

The student is the demo's (the embedded SmolLM2-135M); it is not trained on the format, so
many samples run to the token limit: the measure is of long samples. Each path runs
``--repeats`` times, interleaved, each repeat with a fresh seed (no sample comes from a cache).
Prints samples/s and generated tokens/s per path (median and spread), the machine's load, and
last ``RESULT student_sampling <llama.cpp / transformers samples per second>``.

    python bench/student_sampling.py                      # 4 questions x K = 5, 3 repeats
    python bench/student_sampling.py --questions 2 --max-new-tokens 128   # quicker
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable

import torch

from mindmirror.config import EvalConfig
from mindmirror.progress import quiet_libraries
from mindmirror.student.engines import generation_engine
from mindmirror.student.formats import EXPLAIN, reasoning_input
from mindmirror.student.generate import Generator
from mindmirror.student.infer import Student
from mindmirror.student.model import load_student
from mindmirror.tasks.arith_problems import generate_problems


def sampling_inputs(count: int) -> list[str]:
    """The bench's questions (generated arithmetic problems, seed 3) in the ``explain:``
    format: what both paths sample from (``batch_compaction.py`` too)."""
    return [reasoning_input(EXPLAIN, p.question) for p in generate_problems(count, seed=3)]


def timed_sampling(
    generator: Generator, inputs: list[str], cfg: EvalConfig, seed: int, count: Callable[[str], int]
) -> tuple[float, float]:
    """(samples/s, generated tokens/s) of one round of K samples per input."""
    start = time.perf_counter()
    samples = generator.generate(
        inputs,
        num_samples=cfg.num_samples,
        sample=True,
        temperature=cfg.temperature,
        top_p=cfg.top_p,
        max_new_tokens=cfg.max_new_tokens,
        batch_size=cfg.batch_size,
        max_input_tokens=cfg.max_input_tokens,
        logprobs=False,
        seed=seed,
    )
    seconds = time.perf_counter() - start
    texts = [s.text for row in samples for s in row]
    return len(texts) / seconds, sum(count(t) for t in texts) / seconds


def spread(values: list[float]) -> str:
    """Median and range of ``values``."""
    return f"{statistics.median(values):.2f} ({min(values):.2f}-{max(values):.2f})"


def main() -> None:
    """Parse arguments, sample with both paths in turn, print the result."""
    quiet_libraries()  # no library bars in the logs (transformers' Loading weights)
    parser = argparse.ArgumentParser(description="Student sampling: llama.cpp vs transformers.")
    parser.add_argument("--questions", type=int, default=4)
    parser.add_argument("--samples", type=int, default=5, help="K per question")
    parser.add_argument("--max-new-tokens", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--gguf-type", default="f16", choices=["f16", "q8_0"])
    parser.add_argument("--threads", type=int, default=None, help="threads per llama.cpp server")
    parser.add_argument("--servers", type=int, default=1, help="llama.cpp server processes")
    parser.add_argument("--parallel", type=int, default=16, help="sequences decoded together")
    args = parser.parse_args()
    model, tok, kind = load_student("embedded")
    student = Student(model, tok, kind)
    inputs = sampling_inputs(args.questions)
    cfg = EvalConfig(
        engine="llama_cpp",
        num_samples=args.samples,
        max_new_tokens=args.max_new_tokens,
        gguf_type=args.gguf_type,
        engine_threads=args.threads,
        engine_servers=args.servers,
        engine_parallel=args.parallel,
    )

    def count(text: str) -> int:
        return len(tok(text, add_special_tokens=False)["input_ids"])

    rates: dict[str, list[tuple[float, float]]] = {"transformers": [], "llama.cpp": []}
    with generation_engine(student, cfg) as served:
        paths: dict[str, Generator] = {
            "transformers": student.generator,
            "llama.cpp": served.generator,
        }
        for repeat in range(args.repeats):
            for name, generator in paths.items():
                rate = timed_sampling(generator, inputs, cfg, 1000 + repeat, count)
                rates[name].append(rate)
                print(
                    f"repeat {repeat + 1} {name}: {rate[0]:.2f} samples/s, {rate[1]:.1f} tokens/s",
                    flush=True,
                )
    for name, values in rates.items():
        print(
            f"{name}: {spread([v[0] for v in values])} samples/s, "
            f"{spread([v[1] for v in values])} tokens/s"
        )
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(
        f"{args.questions} questions x K = {args.samples}, up to {args.max_new_tokens} new "
        f"tokens, {args.repeats} repeats; transformers batch {cfg.batch_size}, "
        f"{torch.get_num_threads()} torch threads; GGUF {args.gguf_type}, {args.servers} llama.cpp "
        f"server(s) of {args.parallel} sequences, threads {args.threads or 'default'}"
    )
    print(f"machine: {os.cpu_count()} cores, load average {load} (1, 5, 15 min)")
    fast = statistics.median(v[0] for v in rates["llama.cpp"])
    slow = statistics.median(v[0] for v in rates["transformers"])
    print(f"RESULT student_sampling {fast / slow:.2f}")


if __name__ == "__main__":
    main()
