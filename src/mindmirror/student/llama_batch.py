"""Batched decoding with llama.cpp: many sequences advance one token per step, together.

llama-cpp-python's server decodes one sequence at a time, so on a CPU the K samples of a
question cost K times one sample (docs/benchmarks.md: 25 tokens/s for a 135M student on one
thread). llama.cpp itself decodes a batch of sequences in one call (``llama_decode`` with a
token of each sequence), one matrix product per layer for all of them; this module drives
that through llama-cpp-python's low-level API (``llama_batch``, one KV-cache stream per
sequence, so attention reads only a sequence's own keys) with continuous batching:

- a request (a prompt, ``n`` samples) is admitted when ``n`` sequence slots are free; its
  prompt is decoded into each of the ``n`` slots in the same step as the running sequences'
  next tokens (prompt tokens cost little beside generation steps);
- every step, each running sequence samples its next token from its own logits with its own
  sampler chain (temperature, then top-p, then a seeded draw: transformers' order), so a
  request's samples depend on its seed, not on what else shares the batch (up to the float
  rounding of a different batch shape);
- a sequence ends at an end-of-generation token or ``max_tokens`` (the end token counts and
  is not in the text, as transformers counts it); its slot is cleared for the next request;
- sequences go into the batch in slot order and take the lowest free slot, and when one
  finishes below others, the sequence in the highest slot moves down into the gap (its KV
  stream copied, ``llama_memory_seq_cp``: a memory copy, no recomputation): with a stream per
  sequence llama.cpp splits a batch wherever the slot ids are not consecutive, and each part
  is another pass over the weights; one stream shared by all sequences avoids the splits but
  its attention reads every sequence's keys (``bench/batch_slot_order.py`` times each).

Log-probabilities are those of the transformers path: each generated token's is taken under
the distribution it was sampled from (the logits divided by the temperature, renormalised
over the top-p nucleus when top-p < 1), the end token included; the top log-probabilities of
the first position are of the model's own distribution.

A request can also score instead of generate (``continuations``): after its prompt, the total
log-probability of each of a few short token sequences, as transformers' teacher forcing gives
it (``candidate_logprobs``). The prompt's logits give every continuation's first token; then
each continuation's tokens but its last are fed one step at a time in the request's slot, and
its KV cache is cut back to the prompt before the next: one prompt pass for all of them, and
a few one-token steps that share the batch with everyone else's. That is how a verdict is read
(`` correct``, `` wrong``, `` uncertain``, each followed by the end token).

One thread owns the llama.cpp context (``BatchDecoder.run``); callers hand it requests through
``submit`` from any thread and wait on the returned future.
"""

from __future__ import annotations

import ctypes
import heapq
import queue
import threading
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mindmirror.student.nucleus import nucleus_mass

#: llama.cpp's "no seed given" value: a sampler seeded with it draws a random seed.
_RANDOM_SEED = 0xFFFFFFFF
#: Tokens per micro-batch llama.cpp splits a ``llama_decode`` call into.
N_UBATCH = 512


class Refused(ValueError):
    """A request the decoder cannot take (its size, not a failure of the decoder)."""


@dataclass(frozen=True)
class Request:
    """What one completions call asks for.

    Attributes:
        prompt: the prompt's token ids (BOS included where the model wants it).
        n: samples to draw, each in its own sequence slot.
        max_tokens: most tokens per sample (an end token counts).
        temperature: 0 decodes greedily.
        top_p: nucleus mass kept (1: all).
        seed: the first sample's seed; sample ``i`` draws with ``seed + i``.
        logprobs: report each generated token's log-probability.
        top_logprobs: top log-probabilities to report at the first generated position (0: none).
        continuations: token sequences to score after the prompt instead of generating
            (``n`` 1); the choice's ``continuation_logprobs`` gets each one's total.
    """

    prompt: list[int]
    n: int = 1
    max_tokens: int = 128
    temperature: float = 0.7
    top_p: float = 1.0
    seed: int = 0
    logprobs: bool = False
    top_logprobs: int = 0
    continuations: list[list[int]] = field(default_factory=list)


@dataclass
class Choice:
    """One finished sample: its tokens, text and log-probabilities (or, for a scoring
    request, each continuation's total log-probability)."""

    tokens: list[int] = field(default_factory=list)
    text: str = ""
    token_logprobs: list[float] = field(default_factory=list)
    top_logprobs: dict[str, float] = field(default_factory=dict)
    continuation_logprobs: list[float] = field(default_factory=list)
    finish_reason: str = "length"


@dataclass
class _Job:
    request: Request
    future: Future[list[Choice]]
    choices: list[Choice | None] = field(default_factory=list)


@dataclass
class _Sequence:
    """Sample ``index`` of ``job``, being generated in slot ``slot``."""

    job: _Job
    index: int
    slot: int
    sampler: ctypes.c_void_p
    choice: Choice
    position: int = 0
    pending: list[int] = field(default_factory=list)
    output: int = -1  # this step's row of logits (-1: none)
    # Scoring: the continuation being fed (-1: the prompt's logits come next), the index of the
    # token this step's logits score, and the position its KV cache is cut back to.
    scoring: int = -1
    offset: int = 0
    base: int = 0


def _longest(request: Request) -> int:
    """The most tokens ``request`` adds after its prompt: ``max_tokens``, or its longest
    continuation when it scores."""
    return max(map(len, request.continuations)) if request.continuations else request.max_tokens


class BatchDecoder:
    """Continuous batched decoding of a GGUF model (see the module docstring).

    Args:
        model_path: the GGUF file.
        parallel: sequence slots decoded together (each with its own KV-cache stream).
        n_ctx: tokens of context per sequence (prompt plus generation).
        threads: llama.cpp threads for generation and prompts.
    """

    def __init__(self, model_path: Path, *, parallel: int, n_ctx: int, threads: int) -> None:
        import llama_cpp
        from llama_cpp._logger import set_verbose

        set_verbose(False)  # llama.cpp's errors only, not a line per tensor loaded
        self._llama = llama_cpp
        llama_cpp.llama_backend_init()
        params = llama_cpp.llama_model_default_params()
        self._model = llama_cpp.llama_model_load_from_file(str(model_path).encode(), params)
        if not self._model:
            raise ValueError(f"llama.cpp cannot load {model_path}")
        context = llama_cpp.llama_context_default_params()
        context.n_ctx = n_ctx * parallel
        context.n_seq_max = parallel
        context.kv_unified = False  # a stream per sequence: attention reads only its own keys
        # Room for a full context in every slot: whatever is admitted fits in one step.
        context.n_batch = n_ctx * parallel
        context.n_ubatch = N_UBATCH
        # llama.cpp's CPU flash attention sums in f16: log-probabilities moved by up to 0.1 and
        # greedy text parted from llama-cpp-python's server (which turns it off) and transformers.
        context.flash_attn_type = llama_cpp.LLAMA_FLASH_ATTN_TYPE_DISABLED
        context.n_threads = threads
        context.n_threads_batch = threads
        self._ctx = llama_cpp.llama_init_from_model(self._model, context)
        if not self._ctx:
            raise ValueError(f"llama.cpp cannot make a context of {n_ctx} x {parallel} tokens")
        self._vocab = llama_cpp.llama_model_get_vocab(self._model)
        self._memory = llama_cpp.llama_get_memory(self._ctx)
        self.n_vocab = llama_cpp.llama_vocab_n_tokens(self._vocab)
        self.parallel = parallel
        self.n_ctx = n_ctx
        self._batch = llama_cpp.llama_batch_init(n_ctx * parallel, 0, 1)
        self._queue: queue.Queue[_Job | None] = queue.Queue()
        self._pieces: dict[int, bytes] = {}
        self._stopped = False
        #: Sequences moved down to a lower slot so far (``_compact``).
        self.moves = 0

    def tokenize(self, text: str) -> list[int]:
        """``text``'s token ids, BOS added where the GGUF says the model wants it."""
        data = text.encode("utf-8")
        room = len(data) + 8
        ids = (self._llama.llama_token * room)()
        # Special tokens written in the text are read as such, as Hugging Face tokenizers do.
        count = self._llama.llama_tokenize(self._vocab, data, len(data), ids, room, True, True)
        if count < 0:
            raise ValueError("the prompt could not be tokenized")
        return list(ids[:count])

    def piece(self, token: int) -> bytes:
        """The bytes of ``token`` (special tokens render as nothing)."""
        if token not in self._pieces:
            buffer = ctypes.create_string_buffer(64)
            size = self._llama.llama_token_to_piece(self._vocab, token, buffer, 64, 0, False)
            if size < 0:
                buffer = ctypes.create_string_buffer(-size)
                size = self._llama.llama_token_to_piece(self._vocab, token, buffer, -size, 0, False)
            self._pieces[token] = buffer.raw[:size]
        return self._pieces[token]

    def submit(self, request: Request) -> Future[list[Choice]]:
        """Queue ``request``; the future gets its ``n`` choices, or ``Refused`` for a request
        that cannot fit, or the error of a failed decoding step."""
        future: Future[list[Choice]] = Future()
        if self._stopped:
            future.set_exception(RuntimeError("the decoder has stopped"))
        elif not request.prompt:
            future.set_exception(Refused("the prompt is empty"))
        elif request.n < 1 or request.n > self.parallel:
            future.set_exception(
                Refused(f"n must be between 1 and {self.parallel} (the decoder's slots)")
            )
        elif request.continuations and (
            request.n != 1
            or not all(request.continuations)
            or any(not 0 <= t < self.n_vocab for c in request.continuations for t in c)
        ):
            future.set_exception(
                Refused("continuations must be non-empty token sequences of the vocabulary, n 1")
            )
        elif len(request.prompt) + (longest := _longest(request)) > self.n_ctx:
            future.set_exception(
                Refused(
                    f"prompt ({len(request.prompt)} tokens) plus max_tokens or the longest "
                    f"continuation ({longest}) exceed the context of {self.n_ctx} per sequence"
                )
            )
        else:
            self._queue.put(_Job(request, future, [None] * request.n))
        return future

    def stop(self) -> None:
        """Ask ``run`` to return once the sequences in flight are done; requests queued behind
        this call, or submitted after it, fail."""
        self._stopped = True
        self._queue.put(None)

    def _sampler(self, request: Request, index: int) -> ctypes.c_void_p:
        llama = self._llama
        chain = llama.llama_sampler_chain_init(llama.llama_sampler_chain_default_params())
        if request.temperature <= 0.0:
            llama.llama_sampler_chain_add(chain, llama.llama_sampler_init_greedy())
            return chain
        llama.llama_sampler_chain_add(chain, llama.llama_sampler_init_temp(request.temperature))
        if request.top_p < 1.0:
            llama.llama_sampler_chain_add(chain, llama.llama_sampler_init_top_p(request.top_p, 1))
        seed = (request.seed + index) % _RANDOM_SEED  # never the "random seed" value
        llama.llama_sampler_chain_add(chain, llama.llama_sampler_init_dist(seed))
        return chain

    def _admit(self, job: _Job, free: list[int]) -> list[_Sequence]:
        """A sequence per sample of ``job``, each in a free slot, its prompt pending."""
        request = job.request
        return [
            _Sequence(
                job,
                i,
                heapq.heappop(free),
                self._sampler(request, i),
                Choice(),
                0,
                list(request.prompt),
            )
            for i in range(request.n)
        ]

    def _compact(self, running: list[_Sequence], free: list[int]) -> None:
        """Move the sequences in slots ``len(running)`` and up down into the lowest free slots,
        so the running sequences hold slots ``0 .. len(running) - 1`` and the step is one pass
        over the weights.

        A sequence that finished early leaves a gap, and every gap splits the next steps into
        one more pass (``bench/batch_slot_order.py``). llama.cpp copies a KV stream to another
        (the whole stream: a memory copy at the start of the next decode, before the batch
        writes to the cache), so a move costs no recomputation and copies the cache exactly
        (the merged step's batch shape may move float rounding, as any batch's does).
        """
        llama, count = self._llama, len(running)
        for sequence in sorted(running, key=lambda s: s.slot, reverse=True):
            if sequence.slot < count:
                return
            source = sequence.slot
            # The lowest free slot is below ``count`` (a running slot above it means a gap);
            # the heap is whole again before llama.cpp is called.
            sequence.slot = heapq.heapreplace(free, source)
            llama.llama_memory_seq_cp(self._memory, source, sequence.slot, -1, -1)
            llama.llama_memory_seq_rm(self._memory, source, -1, -1)
            self.moves += 1

    def _fill(self, running: list[_Sequence]) -> None:
        """Put each running sequence's pending tokens into the batch, logits on its last."""
        batch = self._batch
        batch.n_tokens = 0
        for sequence in sorted(running, key=lambda s: s.slot):  # consecutive ids: one pass
            last = len(sequence.pending) - 1
            for offset, token in enumerate(sequence.pending):
                i = batch.n_tokens
                batch.token[i] = token
                batch.pos[i] = sequence.position + offset
                batch.n_seq_id[i] = 1
                batch.seq_id[i][0] = sequence.slot
                batch.logits[i] = offset == last
                batch.n_tokens += 1
            sequence.position += len(sequence.pending)
            sequence.output = batch.n_tokens - 1
            sequence.pending = []

    def _logits(self, sequence: _Sequence) -> np.ndarray:
        """This step's logits of ``sequence`` (a float64 copy, shape ``(vocab,)``)."""
        pointer = self._llama.llama_get_logits_ith(self._ctx, sequence.output)
        return np.ctypeslib.as_array(pointer, shape=(self.n_vocab,)).astype(np.float64)

    def _score(self, sequence: _Sequence) -> bool:
        """Add this step's log-probability to the continuation being scored and queue the
        next token to feed (see the module docstring); whether every continuation is done."""
        continuations = sequence.job.request.continuations
        logits = self._logits(sequence)
        logprobs = logits - logits.max()
        logprobs -= np.log(np.exp(logprobs).sum())
        totals = sequence.choice.continuation_logprobs
        if sequence.scoring < 0:  # after the prompt: every continuation's first token
            totals.extend(float(logprobs[c[0]]) for c in continuations)
            sequence.base = sequence.position
            return self._next_continuation(sequence, 0)
        tokens = continuations[sequence.scoring]
        totals[sequence.scoring] += float(logprobs[tokens[sequence.offset]])
        if sequence.offset + 1 < len(tokens):
            sequence.pending = [tokens[sequence.offset]]
            sequence.offset += 1
            return False
        if not self._llama.llama_memory_seq_rm(self._memory, sequence.slot, sequence.base, -1):
            raise RuntimeError("llama.cpp cannot cut this model's KV cache back (scoring)")
        sequence.position = sequence.base
        return self._next_continuation(sequence, sequence.scoring + 1)

    @staticmethod
    def _next_continuation(sequence: _Sequence, start: int) -> bool:
        """Start feeding the first continuation from ``start`` on that has tokens after its
        first; whether there is none left (the request is scored)."""
        continuations = sequence.job.request.continuations
        for index in range(start, len(continuations)):
            if len(continuations[index]) > 1:
                sequence.scoring, sequence.offset = index, 1
                sequence.pending = [continuations[index][0]]
                return False
        sequence.choice.finish_reason = "stop"
        return True

    def _logprobs(self, sequence: _Sequence, token: int) -> None:
        """Record the chosen token's log-probability (and the first position's top ones)."""
        request = sequence.job.request
        logits = self._logits(sequence)
        choice = sequence.choice
        if request.top_logprobs and not choice.tokens:
            raw = logits - logits.max()
            raw -= np.log(np.exp(raw).sum())
            top = np.argpartition(-raw, request.top_logprobs)[: request.top_logprobs]
            for candidate in top[np.argsort(-raw[top])]:
                text = self.piece(int(candidate)).decode("utf-8", errors="replace")
                choice.top_logprobs.setdefault(text, float(raw[candidate]))
            if request.temperature <= 0:  # greedy: drawn from the model's own distribution
                choice.token_logprobs.append(float(raw[token]))
                return
        scaled = logits / request.temperature if request.temperature > 0 else logits
        scaled -= scaled.max()
        weights = np.exp(scaled)
        total = weights.sum()
        if request.temperature > 0 and request.top_p < 1.0:
            total = nucleus_mass(weights, total, request.top_p)
        choice.token_logprobs.append(float(scaled[token] - np.log(total)))

    def _step(self, running: list[_Sequence]) -> list[_Sequence]:
        """One decode of every running sequence; returns those that finished."""
        llama = self._llama
        self._fill(running)
        code = llama.llama_decode(self._ctx, self._batch)
        if code != 0:
            raise RuntimeError(f"llama_decode failed with code {code}")
        finished = []
        for sequence in running:
            request = sequence.job.request
            if request.continuations:
                if self._score(sequence):
                    finished.append(sequence)
                continue
            token = llama.llama_sampler_sample(sequence.sampler, self._ctx, sequence.output)
            if request.logprobs or request.top_logprobs:
                self._logprobs(sequence, token)
            choice = sequence.choice
            choice.tokens.append(token)
            if llama.llama_vocab_is_eog(self._vocab, token):
                choice.finish_reason = "stop"
                finished.append(sequence)
            elif len(choice.tokens) >= request.max_tokens:
                finished.append(sequence)
            else:
                sequence.pending = [token]
        return finished

    def _release(self, sequence: _Sequence, free: list[int]) -> None:
        """Clear ``sequence``'s slot (its KV cache) for the next request."""
        self._llama.llama_memory_seq_rm(self._memory, sequence.slot, -1, -1)
        self._llama.llama_sampler_free(sequence.sampler)
        heapq.heappush(free, sequence.slot)

    def _finish(self, sequence: _Sequence) -> None:
        """Write ``sequence``'s text; hand its job its choices once all are done."""
        choice = sequence.choice
        ended = choice.tokens[:-1] if choice.finish_reason == "stop" else choice.tokens
        choice.text = b"".join(self.piece(t) for t in ended).decode("utf-8", errors="replace")
        job = sequence.job
        job.choices[sequence.index] = choice
        if all(c is not None for c in job.choices) and not job.future.done():
            job.future.set_result([c for c in job.choices if c is not None])

    def run(self) -> None:
        """Decode queued requests until ``stop`` (blocks; call it in a thread of its own)."""
        free = list(range(self.parallel))  # a heap: the lowest free slot first
        running: list[_Sequence] = []
        waiting: _Job | None = None
        stopping = False
        while True:
            while not stopping:
                if waiting is None:
                    try:
                        waiting = self._queue.get(block=not running)
                    except queue.Empty:
                        break
                if waiting is None:
                    stopping = True
                    break
                if waiting.request.n > len(free):
                    break  # first come, first served: it waits for slots
                if waiting.future.set_running_or_notify_cancel():
                    running.extend(self._admit(waiting, free))
                waiting = None
            if not running:
                if stopping:
                    self._refuse_queued()
                    return
                continue
            try:
                self._compact(running, free)
                finished = self._step(running)
            except Exception as error:  # every waiting caller gets it; none hangs
                for sequence in running:
                    self._release(sequence, free)
                    if not sequence.job.future.done():
                        sequence.job.future.set_exception(error)
                running = []
                continue
            for sequence in finished:
                running.remove(sequence)
                self._release(sequence, free)
                self._finish(sequence)

    def _refuse_queued(self) -> None:
        """Fail every request still queued (after ``stop``)."""
        while True:
            try:
                job = self._queue.get_nowait()
            except queue.Empty:
                return
            if job is not None and job.future.set_running_or_notify_cancel():
                job.future.set_exception(RuntimeError("the decoder has stopped"))

    def start(self) -> threading.Thread:
        """Run the decoder in a daemon thread; returns it."""
        thread = threading.Thread(target=self.run, name="llama-batch", daemon=True)
        thread.start()
        return thread
