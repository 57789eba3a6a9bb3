"""Batched generation and sequence scoring for seq2seq and causal students.

``generate`` runs greedy or sampled decoding over many inputs, K samples per input in one
``generate`` call (``num_return_sequences``), and returns only the new text of each sample with
its mean token log-probability. ``candidate_logprobs`` scores a fixed set of targets for every
input by teacher forcing (each input encoded once); ``verdict_probs`` uses it to read the
student's self-evaluation as a distribution over ``correct`` / ``wrong`` / ``uncertain``
without sampling anything.

Causal students see ``causal_prompt(input)`` and continue it (the prompt is left-padded so every
row of a batch ends at the same position); seq2seq students encode the input and decode the
target. Both match how the trainer builds its rows.
"""

from __future__ import annotations

import inspect
import math
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase
from transformers.modeling_outputs import BaseModelOutput

from mindmirror.progress import ProgressReport
from mindmirror.records import VERDICTS
from mindmirror.student.encoding import prompt_batch, target_ids
from mindmirror.student.formats import verdict_target
from mindmirror.student.model import base_model


@dataclass(frozen=True)
class Sample:
    """One generated continuation.

    Attributes:
        text: the new text only (prompt and special tokens removed), stripped.
        logprob: mean log-probability per generated token (including the end-of-sequence
            token) under the distribution it was drawn from, a length-neutral confidence;
            None when it was not asked for.
    """

    text: str
    logprob: float | None = None


def is_seq2seq(model: PreTrainedModel) -> bool:
    """Whether ``model`` is an encoder-decoder (T5, BART) rather than a decoder-only LM."""
    return bool(getattr(model.config, "is_encoder_decoder", False))


def _batches(inputs: Sequence[str], size: int, progress: str | None) -> Iterator[list[str]]:
    """Consecutive chunks of ``size`` inputs; progress on stderr (count, rate, ETA) advances
    as each chunk is consumed. ``progress`` is its description (None: no progress)."""
    report = ProgressReport(
        progress or "",
        len(inputs),
        enabled=progress is not None and len(inputs) > 1,
        transient=True,
    )
    with report:
        for start in range(0, len(inputs), size):
            chunk = list(inputs[start : start + size])
            yield chunk
            report.update(advance=len(chunk))


def _eos_ids(model: PreTrainedModel, tok: PreTrainedTokenizerBase) -> list[int]:
    ids = getattr(model.generation_config, "eos_token_id", None)
    found = ids if isinstance(ids, list) else [ids] if ids is not None else []
    if tok.eos_token_id is not None:
        found.append(tok.eos_token_id)
    return sorted({int(i) for i in found})


def _mean_logprobs(scores: torch.Tensor, new_ids: torch.Tensor, eos: list[int]) -> list[float]:
    """Mean log-prob over each row's tokens up to and including its first end-of-sequence.

    Shapes: ``scores`` and ``new_ids`` are (rows, new_tokens). Tokens after the first EOS are
    padding that ``generate`` forced, so they do not count.
    """
    is_eos = torch.isin(new_ids, torch.tensor(eos, device=new_ids.device))
    after_eos = (is_eos.long().cumsum(dim=1) - is_eos.long()) > 0
    keep = ~after_eos
    scores = torch.where(keep, scores.float(), torch.zeros_like(scores, dtype=torch.float))
    counts = keep.sum(dim=1).clamp(min=1)
    means = scores.sum(dim=1) / counts
    return [m if math.isfinite(m) else -math.inf for m in means.tolist()]


@torch.inference_mode()
def generate(
    model: PreTrainedModel,
    tok: PreTrainedTokenizerBase,
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
) -> list[list[Sample]]:
    """Generate ``num_samples`` continuations of every input.

    Args:
        inputs: student inputs (e.g. ``explain: <question>``), not yet wrapped for causal LMs.
        num_samples: K samples per input, drawn in one ``generate`` call per batch.
        sample: sample (with ``temperature`` / ``top_p``) instead of greedy decoding; greedy
            allows only one sample per input.
        batch_size: sequences per ``generate`` call (inputs per call = batch_size // K, >= 1).
        logprobs: also return each sample's mean token log-probability (keeps the step scores,
            batch x vocabulary floats per generated token, so callers that do not need it
            should say so).
        progress: description of a rich progress bar; None for no bar.

    Returns:
        For each input, its K samples in order.
    """
    if num_samples < 1:
        raise ValueError("num_samples must be >= 1")
    greedy = not sample or temperature <= 0.0
    if greedy and num_samples > 1:
        raise ValueError("greedy decoding gives one sample per input; set sample=True for K > 1")
    seq2seq = is_seq2seq(model)
    eos = _eos_ids(model, tok)
    step = max(1, batch_size // num_samples)
    options: dict[str, Any] = {
        "max_new_tokens": max_new_tokens,
        "num_return_sequences": num_samples,
        "pad_token_id": tok.pad_token_id,
        "eos_token_id": eos or None,
        "return_dict_in_generate": True,
        "output_scores": logprobs,
    }
    if greedy:
        options.update(do_sample=False, temperature=None, top_p=None, top_k=None)
    else:
        options.update(do_sample=True, temperature=temperature, top_p=top_p, top_k=None)
    model.eval()
    results: list[list[Sample]] = []
    for chunk in _batches(inputs, step, progress):
        results.extend(
            _generate_chunk(model, tok, chunk, seq2seq, num_samples, max_input_tokens, options)
        )
    return results


def _generate_chunk(
    model: PreTrainedModel,
    tok: PreTrainedTokenizerBase,
    chunk: list[str],
    seq2seq: bool,
    num_samples: int,
    max_input_tokens: int,
    options: dict[str, Any],
) -> list[list[Sample]]:
    kind = "seq2seq" if seq2seq else "causal"
    input_ids, mask = prompt_batch(tok, kind, chunk, max_input_tokens)
    out = model.generate(
        input_ids=input_ids.to(model.device), attention_mask=mask.to(model.device), **options
    )
    prompt_len = 1 if seq2seq else input_ids.shape[1]  # seq2seq: the start token
    new_ids = out.sequences[:, prompt_len:]
    decoded = tok.batch_decode(new_ids, skip_special_tokens=True)
    means: list[float | None] = [None] * len(decoded)
    if options["output_scores"]:
        scores = model.compute_transition_scores(out.sequences, out.scores, normalize_logits=True)
        means = list(_mean_logprobs(scores, new_ids, _eos_ids(model, tok)))
    samples = [Sample(text.strip(), lp) for text, lp in zip(decoded, means, strict=True)]
    return [samples[i * num_samples : (i + 1) * num_samples] for i in range(len(chunk))]


def _token_logprobs(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Per-row sum of log p(label) over positions whose label is not -100.

    Shapes: ``logits`` (rows, positions, vocab), ``labels`` (rows, positions).
    """
    logits = logits.float()
    mask = labels != -100
    # log p(label) = logit(label) - logsumexp(logits): no full log-softmax tensor is kept.
    picked = logits.gather(-1, labels.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    picked = picked - torch.logsumexp(logits, dim=-1)
    return (picked * mask).sum(dim=1)


@torch.inference_mode()
def candidate_logprobs(
    model: PreTrainedModel,
    tok: PreTrainedTokenizerBase,
    inputs: Sequence[str],
    candidates: Sequence[str],
    *,
    batch_size: int = 8,
    max_input_tokens: int = 512,
    progress: str | None = None,
) -> list[list[float]]:
    """Total log-probability of every candidate target (plus EOS) given every input.

    Teacher forcing, as training scores targets. Each input is encoded once, not once per
    candidate: seq2seq students reuse the encoder output for all candidates; causal students
    run the prompt once and continue its KV cache with every candidate's tokens
    (``continuation_logprobs``). ``batch_size`` counts inputs per pass.

    Returns:
        ``[input][candidate]`` log-probabilities.
    """
    if len(set(candidates)) != len(candidates) or not candidates:
        raise ValueError("candidates must be distinct and not empty")
    model.eval()
    scores: list[list[float]] = []
    for chunk in _batches(inputs, batch_size, progress):
        if is_seq2seq(model):
            rows = _seq2seq_candidates(model, tok, chunk, list(candidates), max_input_tokens)
        else:
            rows = _causal_candidates(model, tok, chunk, list(candidates), max_input_tokens)
        scores.extend(rows.tolist())
    return scores


def _seq2seq_candidates(
    model: PreTrainedModel,
    tok: PreTrainedTokenizerBase,
    sources: list[str],
    candidates: list[str],
    max_input_tokens: int,
) -> torch.Tensor:
    """(inputs, candidates) log-probs; the encoder runs once per input."""
    n, c = len(sources), len(candidates)
    input_ids, mask = prompt_batch(tok, "seq2seq", sources, max_input_tokens)
    input_ids, mask = input_ids.to(model.device), mask.to(model.device)
    encoded = model.get_encoder()(input_ids=input_ids, attention_mask=mask)
    hidden = encoded.last_hidden_state.repeat_interleave(c, dim=0)
    labels = tok(text_target=candidates, return_tensors="pt", padding=True)["input_ids"]
    labels = labels.masked_fill(labels == tok.pad_token_id, -100).repeat(n, 1).to(model.device)
    logits = model(
        encoder_outputs=BaseModelOutput(last_hidden_state=hidden),
        attention_mask=mask.repeat_interleave(c, dim=0),
        labels=labels,
    ).logits
    return _token_logprobs(logits, labels).view(n, c)


def split_common_prefix(ids: list[list[int]]) -> tuple[list[int], list[list[int]]]:
    """The token prefix all candidates share, and each candidate's remaining tokens."""
    k = 0
    while all(len(x) > k + 1 for x in ids) and len({x[k] for x in ids}) == 1:
        k += 1
    return ids[0][:k], [x[k:] for x in ids]


def _cache_argument(model: PreTrainedModel) -> str:
    """The forward argument that takes a KV cache: ``cache`` in recent 5.x, else the old name.
    A LoRA model is asked through its base model: peft's own forward names neither, and the
    old name passed through it makes transformers warn (once per process, into the output)."""
    parameters = inspect.signature(base_model(model).forward).parameters
    return "cache" if "cache" in parameters else "past_key_values"


def _causal_candidates(
    model: PreTrainedModel,
    tok: PreTrainedTokenizerBase,
    sources: list[str],
    candidates: list[str],
    max_input_tokens: int,
) -> torch.Tensor:
    """(inputs, candidates) log-probs; the prompts run once, then ``continuation_logprobs``."""
    input_ids, mask = prompt_batch(tok, "causal", sources, max_input_tokens)
    input_ids, mask = input_ids.to(model.device), mask.to(model.device)
    first = model(
        input_ids=input_ids,
        attention_mask=mask,
        position_ids=(mask.cumsum(dim=1) - 1).clamp(min=0),
        use_cache=True,
        logits_to_keep=1,
    )
    # transformers 5.x renamed the KV cache `past_key_values` -> `cache` (input and output).
    cache = getattr(first, "cache", None) or first.past_key_values
    return continuation_logprobs(
        model, cache, first.logits[:, -1], mask, target_continuations(tok, candidates)
    )


def target_continuations(tok: PreTrainedTokenizerBase, targets: Sequence[str]) -> list[list[int]]:
    """The token ids a causal student writes for each target: its tokens, then EOS
    (``target_ids``, never cut)."""
    return [target_ids(tok, "causal", t, sys.maxsize) for t in targets]


def last_prompt_logits(
    model: PreTrainedModel, cache: Any, input_ids: torch.Tensor, mask: torch.Tensor
) -> torch.Tensor:
    """The logits after each of n left-padded prompts, from a KV cache of all their tokens but
    the last, which is fed here (the cache then holds the whole prompts).

    Shapes: ``input_ids`` and ``mask`` (n, width); returns (n, vocab).
    """
    out = model(
        input_ids=input_ids[:, -1:],
        attention_mask=mask,
        position_ids=mask.sum(dim=1, keepdim=True) - 1,
        use_cache=True,
        **{_cache_argument(model): cache},
    )
    return out.logits[:, -1]


def continuation_logprobs(
    model: PreTrainedModel,
    cache: Any,
    last_logits: torch.Tensor,
    mask: torch.Tensor,
    continuations: list[list[int]],
) -> torch.Tensor:
    """Log-probability of each continuation after each of n left-padded prompts whose KV cache
    is ``cache`` (it grows: the caller is done with it).

    Shapes: ``last_logits`` (n, vocab) predicts the token after each prompt, ``mask`` (n, width)
    is the prompts' attention mask, the cache holds exactly ``width`` positions. The cache is
    repeated once per continuation and every continuation's tokens but the last run in one
    pass; its positions continue each row's real tokens. Returns (n, len(continuations)).
    """
    n, c = mask.shape[0], len(continuations)
    heads = torch.tensor([ids[0] for ids in continuations], device=mask.device)
    total = last_logits.float().log_softmax(dim=-1)[:, heads]
    steps = max(len(ids) for ids in continuations) - 1
    if steps == 0:
        return total
    pad = 0  # fed past a continuation's end, masked out and never scored
    feed = torch.tensor(
        [ids[:-1] + [pad] * (steps + 1 - len(ids)) for ids in continuations] * n,
        device=mask.device,
    )
    labels = torch.tensor(
        [ids[1:] + [-100] * (steps + 1 - len(ids)) for ids in continuations] * n,
        device=mask.device,
    )
    cache.batch_repeat_interleave(c)
    start = mask.sum(dim=1).repeat_interleave(c).unsqueeze(1)
    second = model(
        input_ids=feed,
        attention_mask=torch.cat([mask.repeat_interleave(c, dim=0), (labels != -100).long()], 1),
        position_ids=start + torch.arange(steps, device=mask.device),
        use_cache=True,
        **{_cache_argument(model): cache},
    )
    return total + _token_logprobs(second.logits, labels).view(n, c)


def verdict_softmax(scores: Sequence[Sequence[float]]) -> list[dict[str, float]]:
    """Per input, the softmax over its (correct, wrong, uncertain) log-likelihoods."""
    result = []
    for row in scores:
        probs = torch.softmax(torch.tensor(row), dim=0).tolist()
        result.append(dict(zip(VERDICTS, probs, strict=True)))
    return result


def verdict_probs(
    model: PreTrainedModel,
    tok: PreTrainedTokenizerBase,
    inputs: Sequence[str],
    *,
    batch_size: int = 8,
    max_input_tokens: int = 512,
    progress: str | None = None,
) -> list[dict[str, float]]:
    """The student's verdict distribution for each ``verdict:`` input.

    Scores the three candidate targets (``the given answer is correct|wrong|uncertain``) by
    sequence log-likelihood and normalises them to sum to 1 (a softmax over the three).
    ``progress`` names a rich progress bar (None: no bar).
    """
    scores = candidate_logprobs(
        model,
        tok,
        inputs,
        [verdict_target(v) for v in VERDICTS],
        batch_size=batch_size,
        max_input_tokens=max_input_tokens,
        progress=progress,
    )
    return verdict_softmax(scores)


class Generator(Protocol):
    """What inference samples and judges with: the transformers reference
    (``TransformersGenerator``) or a server hosting the student
    (``mindmirror.student.server.ServerGenerator``). Arguments as ``generate`` and
    ``verdict_probs`` take them, without the model."""

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
        """K continuations of every input (see ``generate``), sampled with ``seed`` when set."""
        ...

    def verdict_probs(
        self,
        inputs: Sequence[str],
        *,
        batch_size: int = 8,
        max_input_tokens: int = 512,
        progress: str | None = None,
    ) -> list[dict[str, float]]:
        """The verdict distribution of every ``verdict:`` input (see ``verdict_probs``)."""
        ...


@dataclass(frozen=True)
class TransformersGenerator:
    """The reference ``Generator``: ``generate`` and ``verdict_probs`` on the loaded model."""

    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase

    def __post_init__(self) -> None:
        # Loading puts the weights on the CPU; where there is a GPU, training already ran on it
        # (the Trainer moves the model) and generation is many times faster there too. Only
        # here: a student served by llama.cpp generates on the CPU and keeps its weights there.
        if torch.cuda.is_available() and self.model.device.type == "cpu":
            self.model.to("cuda")

    def generate(
        self, inputs: Sequence[str], *, seed: int | None = None, **options: Any
    ) -> list[list[Sample]]:
        """``generate`` on this model, after seeding torch with ``seed`` when set."""
        if seed is not None:
            torch.manual_seed(seed)
        return generate(self.model, self.tokenizer, inputs, **options)

    def verdict_probs(self, inputs: Sequence[str], **options: Any) -> list[dict[str, float]]:
        """``verdict_probs`` on this model."""
        return verdict_probs(self.model, self.tokenizer, inputs, **options)
