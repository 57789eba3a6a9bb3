"""Batched generation and sequence scoring for seq2seq and causal students.

``generate`` runs greedy or sampled decoding over many inputs, K samples per input in one
``generate`` call (``num_return_sequences``), and returns only the new text of each sample with
its mean token log-probability. ``sequence_logprobs`` scores given targets by teacher forcing;
``verdict_probs`` uses it to read the student's self-evaluation as a distribution over
``correct`` / ``wrong`` / ``uncertain`` without sampling anything.

Causal students see ``causal_prompt(input)`` and continue it (the prompt is left-padded so every
row of a batch ends at the same position); seq2seq students encode the input and decode the
target. Both match how the trainer builds its rows.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from mindmirror.records import VERDICTS
from mindmirror.student.formats import causal_prompt, verdict_target


@dataclass(frozen=True)
class Sample:
    """One generated continuation.

    Attributes:
        text: the new text only (prompt and special tokens removed), stripped.
        logprob: mean log-probability per generated token (including the end-of-sequence
            token) under the distribution it was drawn from; a length-neutral confidence.
    """

    text: str
    logprob: float


def is_seq2seq(model: PreTrainedModel) -> bool:
    """Whether ``model`` is an encoder-decoder (T5, BART) rather than a decoder-only LM."""
    return bool(getattr(model.config, "is_encoder_decoder", False))


def _progress(description: str | None, total: int) -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        transient=True,
        disable=description is None or total <= 1,
    )


@contextmanager
def _left_padding(tok: PreTrainedTokenizerBase) -> Iterator[None]:
    """Pad and truncate on the left for the block (causal prompts must end at the same place)."""
    saved = tok.padding_side, tok.truncation_side
    tok.padding_side, tok.truncation_side = "left", "left"
    try:
        yield
    finally:
        tok.padding_side, tok.truncation_side = saved


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
    progress: str | None = None,
) -> list[list[Sample]]:
    """Generate ``num_samples`` continuations of every input.

    Args:
        inputs: student inputs (e.g. ``explain: <question>``), not yet wrapped for causal LMs.
        num_samples: K samples per input, drawn in one ``generate`` call per batch.
        sample: sample (with ``temperature`` / ``top_p``) instead of greedy decoding; greedy
            allows only one sample per input.
        batch_size: sequences per ``generate`` call (inputs per call = batch_size // K, >= 1).
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
        "output_scores": True,
    }
    if greedy:
        options.update(do_sample=False, temperature=None, top_p=None, top_k=None)
    else:
        options.update(do_sample=True, temperature=temperature, top_p=top_p, top_k=None)
    model.eval()
    results: list[list[Sample]] = []
    with _progress(progress, len(inputs)) as bar:
        task = bar.add_task(progress or "", total=len(inputs))
        for start in range(0, len(inputs), step):
            chunk = list(inputs[start : start + step])
            results.extend(
                _generate_chunk(model, tok, chunk, seq2seq, num_samples, max_input_tokens, options)
            )
            bar.advance(task, len(chunk))
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
    texts = chunk if seq2seq else [causal_prompt(t) for t in chunk]
    if seq2seq:
        enc = tok(
            texts, return_tensors="pt", padding=True, truncation=True, max_length=max_input_tokens
        )
    else:
        with _left_padding(tok):
            enc = tok(
                texts,
                return_tensors="pt",
                padding=True,
                truncation=True,
                max_length=max_input_tokens,
            )
    enc = enc.to(model.device)
    out = model.generate(
        input_ids=enc["input_ids"], attention_mask=enc["attention_mask"], **options
    )
    new_len = len(out.scores)
    new_ids = out.sequences[:, -new_len:] if new_len else out.sequences[:, :0]
    token_scores = model.compute_transition_scores(out.sequences, out.scores, normalize_logits=True)
    means = _mean_logprobs(token_scores, new_ids, _eos_ids(model, tok))
    decoded = tok.batch_decode(new_ids, skip_special_tokens=True)
    samples = [Sample(text.strip(), lp) for text, lp in zip(decoded, means, strict=True)]
    return [samples[i * num_samples : (i + 1) * num_samples] for i in range(len(chunk))]


def _causal_pair_ids(
    tok: PreTrainedTokenizerBase, source: str, target: str, max_input_tokens: int
) -> tuple[list[int], int]:
    """Token ids of prompt + target + EOS, and how many of them belong to the target."""
    prompt = tok(causal_prompt(source))["input_ids"][-max_input_tokens:]
    answer = tok(target, add_special_tokens=False)["input_ids"]
    if tok.eos_token_id is not None:
        answer = [*answer, tok.eos_token_id]
    return [*prompt, *answer], len(answer)


@torch.inference_mode()
def sequence_logprobs(
    model: PreTrainedModel,
    tok: PreTrainedTokenizerBase,
    inputs: Sequence[str],
    targets: Sequence[str],
    *,
    batch_size: int = 8,
    max_input_tokens: int = 512,
) -> list[float]:
    """Total log-probability of each target (plus its end-of-sequence token) given its input.

    Teacher forcing, one forward pass per batch of (input, target) pairs; padding is masked.
    """
    if len(inputs) != len(targets):
        raise ValueError("inputs and targets must have the same length")
    model.eval()
    totals: list[float] = []
    for start in range(0, len(inputs), batch_size):
        sources = list(inputs[start : start + batch_size])
        answers = list(targets[start : start + batch_size])
        if is_seq2seq(model):
            totals.extend(_seq2seq_logprobs(model, tok, sources, answers, max_input_tokens))
        else:
            totals.extend(_causal_logprobs(model, tok, sources, answers, max_input_tokens))
    return totals


def _token_logprobs(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Per-row sum of log p(label) over positions whose label is not -100.

    Shapes: ``logits`` (rows, positions, vocab), ``labels`` (rows, positions).
    """
    logp = torch.log_softmax(logits.float(), dim=-1)
    mask = labels != -100
    picked = logp.gather(-1, labels.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    return (picked * mask).sum(dim=1)


def _seq2seq_logprobs(
    model: PreTrainedModel,
    tok: PreTrainedTokenizerBase,
    sources: list[str],
    answers: list[str],
    max_input_tokens: int,
) -> list[float]:
    enc = tok(
        sources, return_tensors="pt", padding=True, truncation=True, max_length=max_input_tokens
    ).to(model.device)
    labels = tok(text_target=answers, return_tensors="pt", padding=True)["input_ids"]
    labels = labels.masked_fill(labels == tok.pad_token_id, -100).to(model.device)
    logits = model(
        input_ids=enc["input_ids"], attention_mask=enc["attention_mask"], labels=labels
    ).logits
    return _token_logprobs(logits, labels).tolist()


def _causal_logprobs(
    model: PreTrainedModel,
    tok: PreTrainedTokenizerBase,
    sources: list[str],
    answers: list[str],
    max_input_tokens: int,
) -> list[float]:
    pairs = [
        _causal_pair_ids(tok, s, a, max_input_tokens) for s, a in zip(sources, answers, strict=True)
    ]
    width = max(len(ids) for ids, _ in pairs)
    pad = tok.pad_token_id if tok.pad_token_id is not None else 0
    # Right padding here: positions of real tokens do not move, and labels mask the padding.
    input_ids = torch.full((len(pairs), width), pad, dtype=torch.long)
    attention = torch.zeros((len(pairs), width), dtype=torch.long)
    labels = torch.full((len(pairs), width), -100, dtype=torch.long)
    for row, (ids, n_target) in enumerate(pairs):
        input_ids[row, : len(ids)] = torch.tensor(ids)
        attention[row, : len(ids)] = 1
        labels[row, len(ids) - n_target : len(ids)] = torch.tensor(ids[-n_target:])
    input_ids, attention, labels = (t.to(model.device) for t in (input_ids, attention, labels))
    logits = model(input_ids=input_ids, attention_mask=attention).logits
    # Position t predicts token t + 1.
    return _token_logprobs(logits[:, :-1], labels[:, 1:]).tolist()


def verdict_probs(
    model: PreTrainedModel,
    tok: PreTrainedTokenizerBase,
    inputs: Sequence[str],
    *,
    batch_size: int = 8,
    max_input_tokens: int = 512,
) -> list[dict[str, float]]:
    """The student's verdict distribution for each ``verdict:`` input.

    Scores the three candidate targets (``the given answer is correct|wrong|uncertain``) by
    sequence log-likelihood and normalises them to sum to 1 (a softmax over the three).
    """
    pairs = [(text, verdict_target(v)) for text in inputs for v in VERDICTS]
    scores = sequence_logprobs(
        model,
        tok,
        [s for s, _ in pairs],
        [t for _, t in pairs],
        batch_size=batch_size,
        max_input_tokens=max_input_tokens,
    )
    result = []
    for i in range(len(inputs)):
        row = torch.tensor(scores[i * len(VERDICTS) : (i + 1) * len(VERDICTS)])
        probs = torch.softmax(row, dim=0).tolist()
        result.append(dict(zip(VERDICTS, probs, strict=True)))
    return result
