"""The student's fast generation path: samples and verdicts from a server hosting it.

A causal student exported to GGUF and served by llama.cpp (``mindmirror.student.engines``
starts it), or any OpenAI-compatible server hosting it (vLLM), answers through the request
engine (``mindmirror.requests``: concurrency, retries, cache, resume, progress) at the
completions endpoint, with the exact prompt string the transformers path tokenizes
(``causal_prompt(input)``; the server adds BOS where the tokenizer does, as the GGUF records).

- ``generate``: one request per sample (llama-cpp-python's server ignores ``n``; servers that
  honour it, such as vLLM, get one ``n=K`` call per input), each with a seed taken from its
  cache key, so a re-run gives the same samples and a killed run resumes.
- ``verdict_probs``: one request per input whose prompt ends with the verdict targets' shared
  prefix (``the given answer is``). mindmirror's llama.cpp server scores the rest of each
  target (the verdict word and the end token, however many tokens) after it
  (``continuations``): the softmax over the three totals is the transformers path's
  distribution, and nothing is judged twice. (The server tokenizes the prompt and the prefix
  as one string, transformers apart: the same tokens unless the tokenizer merges across that
  boundary, which SmolLM2's does not after the prompt's newline.) Other servers (vLLM) are
  asked one token with its top log-probabilities; the softmax over the three verdict words
  (`` correct``, `` wrong``, `` uncertain``) is the distribution. That needs every verdict
  word to be one token after the prefix (true for SmolLM2's tokenizer; else the transformers
  path judges) and leaves out the end token's probability after the word (a trained judge
  puts it near 1). A verdict word missing from the top log-probabilities (20: vLLM's default
  cap) gets the lowest one listed, an upper bound; where that bound could move a probability
  by more than ``VERDICT_SLACK``, that input is judged by transformers instead (a student
  never trained to judge puts the verdict words far down its list).

Prompts longer than ``max_input_tokens`` are cut as the transformers path cuts them
(``fit_ids``) and sent as the decoded text of the kept tokens.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from transformers import PreTrainedTokenizerBase

from mindmirror.errors import UserError
from mindmirror.records import VERDICTS
from mindmirror.requests.cache import ResponseCache
from mindmirror.requests.completions import CompletionsBackend, SpreadBackend, read_payload
from mindmirror.requests.engine import RequestEngine
from mindmirror.requests.types import Prompt, Sampling
from mindmirror.student.encoding import fit_ids
from mindmirror.student.formats import causal_prompt, verdict_target
from mindmirror.student.generate import (
    Generator,
    Sample,
    split_common_prefix,
    target_continuations,
    verdict_softmax,
)

T = TypeVar("T")
#: Top log-probabilities asked for the verdict token of servers other than mindmirror's
#: llama.cpp one (which scores the verdicts itself): vLLM allows 20 by default.
VERDICT_TOP = 20
#: The most a missing verdict word's bound may move a probability before transformers judges.
VERDICT_SLACK = 0.01
#: Bumped when the prompts or payloads change, so old cached samples are never reused.
PROMPT_VERSION = "student-v1"
#: Sampling fields that make llama.cpp sample as transformers does (its defaults are top_k 40,
#: min_p 0.05 and repeat_penalty 1.1; transformers' here are none of those).
LLAMA_CPP_NEUTRAL = {"top_k": 0, "min_p": 0.0, "repeat_penalty": 1.0}


@dataclass
class ServerSettings:
    """The request engine's settings for the student's server (``EngineSettings``)."""

    concurrency: int = 2
    use_n: bool = False
    rpm: int | None = None
    tpm: int | None = None
    max_retries: int = 3
    send_seed: bool = True
    price_input_per_mtok: float = 0.0
    price_output_per_mtok: float = 0.0
    budget_usd: float | None = None
    timeout_s: float = 600.0


def verdict_words(tok: PreTrainedTokenizerBase) -> tuple[str, list[str]] | None:
    """The verdict targets' shared prefix text and each verdict's one-token continuation, as
    text (``("the given answer is", [" correct", " wrong", " uncertain"])``); None when the
    tokenizer splits a verdict word into several tokens."""
    ids = [tok(verdict_target(v), add_special_tokens=False)["input_ids"] for v in VERDICTS]
    prefix, rests = split_common_prefix(ids)
    if not prefix or any(len(rest) != 1 for rest in rests):
        return None
    return tok.decode(prefix), [tok.decode(rest) for rest in rests]


def prompt_text(tok: PreTrainedTokenizerBase, text: str, max_input_tokens: int) -> str:
    """The prompt string the server completes for student input ``text``."""
    prompt = causal_prompt(text)
    ids = tok(prompt, add_special_tokens=False)["input_ids"]
    if len(ids) <= max_input_tokens:
        return prompt
    return tok.decode(fit_ids(ids, max_input_tokens), skip_special_tokens=True)


def _softmax(logprobs: list[float]) -> list[float]:
    top = max(logprobs)
    weights = [math.exp(lp - top) for lp in logprobs]
    return [w / sum(weights) for w in weights]


class ServerGenerator:
    """``Generator`` over a server hosting the student (see the module docstring).

    Args:
        urls: base URLs (``http://127.0.0.1:PORT/v1``) of one or more servers hosting the
            student (several: each prompt always goes to the same one, ``SpreadBackend``).
        model: the model id to ask for; also part of every cache key, so it must name the
            weights (the llama.cpp path puts a hash of the GGUF file in it).
        tokenizer: the student's tokenizer (prompt cutting, verdict words).
        cache: where samples are kept (a run's file makes eval resumable; ``:memory:`` else).
        fallback: judges what another server's top list cannot give (a verdict word split by
            the tokenizer or missing from the list).
        llama_cpp: the server is mindmirror's llama.cpp server: send its neutral sampling
            fields (``LLAMA_CPP_NEUTRAL``) and let it score the verdicts (``continuations``).
        settings: the engine's settings (concurrency, retries, ``n``).
    """

    def __init__(
        self,
        urls: list[str],
        model: str,
        tokenizer: PreTrainedTokenizerBase,
        *,
        cache: ResponseCache,
        fallback: Generator,
        llama_cpp: bool,
        settings: ServerSettings | None = None,
    ) -> None:
        self.urls = urls
        self.model = model
        self.tokenizer = tokenizer
        self.cache = cache
        self.fallback = fallback
        self.extra = LLAMA_CPP_NEUTRAL if llama_cpp else {}
        self.llama_cpp = llama_cpp
        self.settings = settings or ServerSettings()
        self.verdicts = verdict_words(tokenizer)
        # What mindmirror's server is asked to score: the verdict targets' shared prefix ends
        # each prompt, the rest of each target (its end token included) is scored.
        prefix, self.verdict_rests = split_common_prefix(
            target_continuations(tokenizer, [verdict_target(v) for v in VERDICTS])
        )
        self.verdict_prefix = tokenizer.decode(prefix)
        #: Inputs ``verdict_probs`` handed to the fallback so far (their verdict words were
        #: split by the tokenizer or too far down the server's list).
        self.judged_by_fallback = 0

    def _run(
        self,
        texts: list[str],
        n: int,
        sampling: Sampling,
        logprobs: int | None,
        progress: str | None,
        seed: int = 0,
        continuations: list[list[int]] | None = None,
    ) -> list[list[str]]:
        """``n`` payloads per prompt string, through a fresh engine; UserError on failures.

        ``seed`` is part of every prompt version, so another seed draws other samples;
        ``continuations`` (scored, not generated: mindmirror's server only) too."""
        extra = dict(self.extra)
        if continuations:
            extra["continuations"] = continuations
        backend = SpreadBackend([
            CompletionsBackend(
                self.model, url, logprobs=logprobs, extra_body=extra,
                timeout_s=self.settings.timeout_s,
            )
            for url in self.urls
        ])  # fmt: skip
        engine = RequestEngine(
            backend, self.cache, self.settings, label="student", quiet=progress is None
        )
        version = f"{PROMPT_VERSION}-s{seed}-lp{logprobs}"
        if continuations:
            version += f"-c{continuations}"
        # Identical inputs (a CoT sampled twice, then judged) are one request: same prompt,
        # seed and settings, so the same cache key and the same reply.
        unique = list(dict.fromkeys(texts))
        prompts = [Prompt((str(i),), text, n, sampling, version) for i, text in enumerate(unique)]
        results = _outside_any_loop(lambda: engine.run_sync(prompts, progress or ""))
        failed = engine.last.samples_failed + engine.last.samples_skipped
        if failed:
            raise UserError(
                f"the student's server at {', '.join(self.urls)} failed {failed} sample(s): "
                f"{engine.last_error}"
            )
        by_text = {p.messages: results[p.key] for p in prompts}
        return [[text or "" for text in by_text[t]] for t in texts]

    def generate(
        self,
        inputs: Sequence[str],
        *,
        num_samples: int = 1,
        sample: bool = False,
        temperature: float = 0.7,
        top_p: float = 1.0,
        max_new_tokens: int = 128,
        batch_size: int = 8,
        max_input_tokens: int = 512,
        logprobs: bool = True,
        progress: str | None = None,
        seed: int | None = None,
    ) -> list[list[Sample]]:
        """As ``generate.generate`` (``batch_size`` is the server's business here); ``seed``
        picks the samples (each request's seed comes from its cache key, which holds it)."""
        greedy = not sample or temperature <= 0.0
        if greedy and num_samples > 1:
            raise ValueError(
                "greedy decoding gives one sample per input; set sample=True for K > 1"
            )
        sampling = Sampling(
            0.0 if greedy else temperature, 1.0 if greedy else top_p, max_new_tokens
        )
        texts = [prompt_text(self.tokenizer, text, max_input_tokens) for text in inputs]
        payloads = self._run(
            texts, num_samples, sampling, 0 if logprobs else None, progress, seed or 0
        )
        return [[_sample(payload, logprobs) for payload in row] for row in payloads]

    def verdict_probs(
        self,
        inputs: Sequence[str],
        *,
        batch_size: int = 8,
        max_input_tokens: int = 512,
        progress: str | None = None,
    ) -> list[dict[str, float]]:
        """As ``generate.verdict_probs``: scored by mindmirror's server, or read from the
        verdict word's top log-probabilities elsewhere (inputs whose verdict words are too far
        down that list, or split by the tokenizer, are judged by the fallback)."""
        options = {"batch_size": batch_size, "max_input_tokens": max_input_tokens}
        if self.llama_cpp:
            return self._scored_verdicts(inputs, max_input_tokens, progress)
        if self.verdicts is None:
            self.judged_by_fallback += len(inputs)
            return self.fallback.verdict_probs(inputs, progress=progress, **options)
        prefix, words = self.verdicts
        texts = [prompt_text(self.tokenizer, text, max_input_tokens) + prefix for text in inputs]
        payloads = self._run(texts, 1, Sampling(0.0, 1.0, 1), VERDICT_TOP, progress)
        result = [
            verdict_distribution(read_payload(payload).top_logprobs, words)
            for (payload,) in payloads
        ]
        missing = [inputs[i] for i, probs in enumerate(result) if probs is None]
        self.judged_by_fallback += len(missing)
        judged = iter(self.fallback.verdict_probs(missing, **options) if missing else [])
        return [probs if probs is not None else next(judged) for probs in result]

    def _scored_verdicts(
        self, inputs: Sequence[str], max_input_tokens: int, progress: str | None
    ) -> list[dict[str, float]]:
        """The verdict distributions mindmirror's server scores (``verdict_prefix`` ends each
        prompt, ``verdict_rests`` are scored after it)."""
        ending = self.verdict_prefix
        texts = [prompt_text(self.tokenizer, t, max_input_tokens) + ending for t in inputs]
        payloads = self._run(texts, 1, Sampling(0.0, 1.0, 1), None, progress, 0, self.verdict_rests)
        rows: list[list[float]] = []
        for (payload,) in payloads:
            scores = read_payload(payload).continuation_logprobs
            if scores is None or len(scores) != len(VERDICTS):
                raise UserError(
                    f"the student's server at {', '.join(self.urls)} did not score the verdicts"
                    " (is it mindmirror's llama.cpp server? other servers: engine openai)"
                )
            rows.append(scores)
        return verdict_softmax(rows)


def _outside_any_loop(work: Callable[[], T]) -> T:
    """``work()``, in a thread of its own when this one runs an event loop (a notebook, an
    async caller), where the engine's ``asyncio.run`` would be refused."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return work()
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(work).result()


def verdict_distribution(top: dict[str, float] | None, words: list[str]) -> dict[str, float] | None:
    """The verdict distribution from the top log-probabilities of the verdict token; None when
    a missing word's upper bound (the lowest listed) could move it by over ``VERDICT_SLACK``."""
    if not top:
        return None
    floor = min(top.values())
    found = [top[word] for word in words if word in top]
    absent = len(words) - len(found)
    if not found:
        return None
    if absent:
        bound = absent * math.exp(floor)
        if bound / (bound + sum(math.exp(lp) for lp in found)) > VERDICT_SLACK:
            return None
    probs = _softmax([top.get(word, floor) for word in words])
    return dict(zip(VERDICTS, probs, strict=True))


def _sample(payload: str, logprobs: bool) -> Sample:
    """A ``Sample`` from a cached payload: text and mean token log-probability."""
    completion = read_payload(payload)
    mean = None
    if logprobs and completion.token_logprobs:
        mean = sum(completion.token_logprobs) / len(completion.token_logprobs)
    return Sample(completion.text.strip(), mean)


def open_cache(path: Path | None) -> ResponseCache:
    """The student's sample cache: a file (resumable) or, with None, in memory."""
    return ResponseCache(path if path is not None else ":memory:", label="student")
