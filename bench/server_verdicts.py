"""Judging through llama.cpp: verdicts scored by mindmirror's server against the top-list way.

``mirror`` judges every sampled CoT: one request per CoT to the student's llama.cpp server.
It used to ask for the top log-probabilities of the token after ``the given answer is`` and
take the softmax over the three verdict words; a student not trained further on verdicts after
its judge stage puts those words far down the list, and where one was missing the input was
judged again by transformers (153-746 of a final student's 1000 verdicts in the SVAMP re-run).
Now the server scores each verdict's continuation (the word and the end token) after the
prompt itself (``continuations``): one prompt pass, the transformers path's distribution, no
fallback. Three arms judge the same prompts:

- ``transformers``: ``verdict_probs`` on the loaded student (the reference);
- ``llama.cpp, top 20``: the same server asked the way other OpenAI-compatible servers
  still are (the top 20 log-probabilities), transformers for what it cannot read;
- ``llama.cpp, scored``: the server scoring the verdicts (what ``eval`` does now).

The prompts are the SVAMP protocol's first ``--items`` validation CoTs in the ``verdict:``
format (as ``bench/judge_validation.py`` builds them); the student is the demo's, the embedded
SmolLM2-135M, never trained to judge: its verdict words are far down its list, the case of a
final student whose verdicts mostly fell back. Each arm runs ``--repeats`` times, interleaved,
each with an empty sample cache. Prints each arm's seconds (median and range), how many
inputs it handed to transformers and its largest difference from transformers'
probabilities, the machine's load, how many prompts the way ``eval`` asked this server before
(the top 100) would have handed to transformers (counted, not timed: that way is gone), and
last ``RESULT server_verdicts <top-20 arm / scored arm, median seconds>``.

    python bench/server_verdicts.py              # 64 CoTs, 3 repeats
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import httpx
from judge_validation import verdict_inputs  # bench/ is on sys.path when run as a script
from transformers import PreTrainedTokenizerBase

from mindmirror.config import EvalConfig
from mindmirror.progress import quiet_libraries
from mindmirror.student.engines import generation_engine
from mindmirror.student.infer import Student
from mindmirror.student.model import load_student
from mindmirror.student.server import (
    ServerGenerator,
    open_cache,
    prompt_text,
    verdict_distribution,
    verdict_words,
)


def top100_misses(
    url: str, model: str, tok: PreTrainedTokenizerBase, inputs: list[str], max_input_tokens: int
) -> int:
    """How many ``inputs`` the way ``eval`` asked mindmirror's server before (the top 100
    log-probabilities after the prefix, read by ``verdict_distribution``) could not read and
    handed to transformers (counted, not timed: that way is gone)."""
    found = verdict_words(tok)
    assert found is not None  # SmolLM2's verdict words are one token each
    prefix, words = found
    missed = 0
    for text in inputs:
        body = {"model": model, "prompt": prompt_text(tok, text, max_input_tokens) + prefix,
                "max_tokens": 1, "temperature": 0, "logprobs": 100}  # fmt: skip
        reply = httpx.post(f"{url}/completions", json=body, timeout=600)
        reply.raise_for_status()
        top = reply.json()["choices"][0]["logprobs"]["top_logprobs"][0]
        missed += verdict_distribution(top, words) is None
    return missed


def main() -> None:
    """Judge the prompts with each arm in turn, print the comparison."""
    quiet_libraries()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=64, help="validation CoTs judged")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="mm-bench-") as tmp:
        inputs = verdict_inputs(Path(tmp) / "run", args.items)
    model, tok, kind = load_student("embedded")
    student = Student(model, tok, kind)
    cfg = EvalConfig(engine="llama_cpp")
    options = {"batch_size": cfg.batch_size, "max_input_tokens": cfg.max_input_tokens}
    seconds: dict[str, list[float]] = {}
    fallbacks: dict[str, int] = {}
    probs: dict[str, list[dict[str, float]]] = {}
    with generation_engine(student, cfg) as served:
        urls, name = served.server.urls, served.server.model  # type: ignore[union-attr]
        missed = top100_misses(urls[0], name, tok, inputs, cfg.max_input_tokens)

        def server(scored: bool) -> ServerGenerator:
            return ServerGenerator(
                urls, name, tok, cache=open_cache(None), fallback=student.generator,
                llama_cpp=scored,
            )  # fmt: skip

        for repeat in range(args.repeats):
            arms = {
                "transformers": student.generator,
                "llama.cpp, top 20": server(False),
                "llama.cpp, scored": server(True),
            }
            for arm, generator in arms.items():
                start = time.perf_counter()
                probs[arm] = generator.verdict_probs(inputs, **options)
                seconds.setdefault(arm, []).append(time.perf_counter() - start)
                fallbacks[arm] = getattr(generator, "judged_by_fallback", 0)
                print(f"repeat {repeat + 1} {arm}: {seconds[arm][-1]:.1f} s", flush=True)
    print(f"{len(inputs)} verdict prompts; load average "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())} (1, 5, 15 min)")  # fmt: skip
    print("| arm | seconds, median (min-max) | judged by transformers | largest difference |")
    print("|---|---|---|---|")
    reference = probs["transformers"]
    for arm, values in seconds.items():
        gap = max(abs(a[v] - b[v]) for a, b in zip(probs[arm], reference, strict=True) for v in a)
        print(
            f"| {arm} | {statistics.median(values):.1f} ({min(values):.1f}-{max(values):.1f}) "
            f"| {fallbacks[arm]} of {len(inputs)} | {gap:.4f} |"
        )
    print(f"the top 100 (how eval asked this server before) would miss {missed} of {len(inputs)}")
    ratio = statistics.median(seconds["llama.cpp, top 20"]) / statistics.median(
        seconds["llama.cpp, scored"]
    )
    print(f"RESULT server_verdicts {ratio:.2f}")


if __name__ == "__main__":
    main()
