"""Token ids of training rows and prompts, and the collator that pads batches dynamically.

Seq2seq rows: the encoder reads the input, the decoder learns the target (labels = target ids).
Causal rows: ``causal_prompt(input)`` then the target and EOS in one sequence; the prompt
positions are ``-100`` in the labels, so only the target is learned. Training and generation
use the same prompt ids (``prompt_ids``), so a trained student sees at inference exactly what
it saw in training.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from transformers import PreTrainedTokenizerBase

from mindmirror.student.formats import SHORT_TASKS, causal_prompt
from mindmirror.student.losses import IGNORE
from mindmirror.student.model import StudentKind
from mindmirror.student.rows import Row

#: Tokens kept from the start of an input that is too long: its task prefix.
HEAD_TOKENS = 8


def fit_ids(ids: list[int], max_tokens: int) -> list[int]:
    """``ids`` cut to ``max_tokens`` by dropping the middle: the first ``HEAD_TOKENS`` (the task
    prefix) and the end are kept.

    Why not the right or the left: a ``verdict:`` input is the question then the CoT, and what
    decides the verdict (the CoT's final answer) is at the end; the prefix at the start says
    which task to do. Training and every inference path cut the same way.
    """
    if len(ids) <= max_tokens:
        return ids
    head = min(HEAD_TOKENS, max_tokens // 4)
    return ids[:head] + ids[len(ids) - (max_tokens - head) :]


def prompt_ids(
    tokenizer: PreTrainedTokenizerBase, kind: StudentKind, text: str, max_tokens: int
) -> list[int]:
    """Token ids the student reads for ``text``, cut to ``max_tokens`` by ``fit_ids``."""
    source = text if kind == "seq2seq" else causal_prompt(text)
    return fit_ids(tokenizer(source)["input_ids"], max_tokens)


def prompt_batch(
    tokenizer: PreTrainedTokenizerBase, kind: StudentKind, texts: list[str], max_tokens: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """``input_ids`` and ``attention_mask`` of a batch of prompts (``prompt_ids`` each).

    Causal prompts are padded on the left, so every row ends where generation continues;
    seq2seq prompts on the right.
    """
    ids = [prompt_ids(tokenizer, kind, text, max_tokens) for text in texts]
    left = kind == "causal"
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    return _pad(ids, pad, left=left), _pad([[1] * len(i) for i in ids], 0, left=left)


def target_ids(
    tokenizer: PreTrainedTokenizerBase, kind: StudentKind, text: str, max_tokens: int
) -> list[int]:
    """Token ids the student learns to write for ``text``, ending in EOS unless truncated."""
    if kind == "seq2seq":
        # Seq2seq tokenizers (T5) append EOS themselves and keep it when truncating.
        ids: list[int] = tokenizer(text, truncation=True, max_length=max_tokens)["input_ids"]
        return ids
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    eos = tokenizer.eos_token_id
    if len(ids) < max_tokens and eos is not None:
        return [*ids, eos]
    # A truncated target must not teach the model to stop mid-sentence: no EOS then.
    return ids[:max_tokens]


def encode_row(
    tokenizer: PreTrainedTokenizerBase,
    kind: StudentKind,
    row: Row,
    *,
    max_input_tokens: int,
    max_target_tokens: int,
) -> dict[str, Any]:
    """One training feature: ``input_ids``, ``labels`` (``-100`` on the prompt) and ``weight``."""
    source = prompt_ids(tokenizer, kind, row.input, max_input_tokens)
    target = target_ids(tokenizer, kind, row.target, max_target_tokens)
    extra = {"weight": row.weight, "count": row.count, "short": row.prefix in SHORT_TASKS}
    if kind == "seq2seq":
        return {"input_ids": source, "labels": target, **extra}
    return {"input_ids": source + target, "labels": [IGNORE] * len(source) + target, **extra}


def feature_length(feature: dict[str, Any]) -> int:
    """Cost proxy of a feature for length grouping: the longer of its two sequences."""
    return max(len(feature["input_ids"]), len(feature["labels"]))


def _pad(rows: list[list[int]], value: int, *, left: bool) -> torch.Tensor:
    width = max(len(r) for r in rows)
    padded = [
        [value] * (width - len(r)) + r if left else r + [value] * (width - len(r)) for r in rows
    ]
    return torch.tensor(padded, dtype=torch.long)


@dataclass
class WeightedCollator:
    """Pads a list of features to the batch's own longest row.

    Returns ``input_ids``, ``attention_mask``, ``labels`` (``-100`` on padding), and the loss's
    per-row ``weight``, ``count`` and ``short`` (task group).
    Causal batches are padded on the *left*, with explicit ``position_ids`` (so positions
    count from each row's first real token, as in generation): every row's target then ends
    at the last position, and the loss needs logits for the last few positions only (see
    ``StudentTrainer.compute_loss``). Seq2seq batches are padded on the right and get
    ``decoder_input_ids`` (labels shifted right behind the decoder start token).
    """

    pad_token_id: int
    kind: StudentKind
    decoder_start_token_id: int | None = None

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        """Collate features into one padded batch."""
        left = self.kind == "causal"
        inputs = [f["input_ids"] for f in features]
        attention_mask = _pad([[1] * len(r) for r in inputs], 0, left=left)
        labels = _pad([f["labels"] for f in features], IGNORE, left=left)
        batch = {
            "input_ids": _pad(inputs, self.pad_token_id, left=left),
            "attention_mask": attention_mask,
            "labels": labels,
            "weight": torch.tensor([float(f["weight"]) for f in features]),
            "count": torch.tensor([float(f["count"]) for f in features]),
            "short": torch.tensor([bool(f["short"]) for f in features]),
        }
        if left:
            batch["position_ids"] = (attention_mask.cumsum(dim=1) - 1).clamp(min=0)
        else:
            start = self.decoder_start_token_id
            if start is None:
                start = self.pad_token_id
            shifted = labels.new_full(labels.shape, self.pad_token_id)
            shifted[:, 0] = start
            shifted[:, 1:] = labels[:, :-1].masked_fill(
                labels[:, :-1].eq(IGNORE), self.pad_token_id
            )
            batch["decoder_input_ids"] = shifted
        return batch
