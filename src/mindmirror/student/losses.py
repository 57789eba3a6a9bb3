"""Per-row weighted token cross-entropy for seq2seq and causal students (pure functions).

Normalisation: each row's loss is the *mean* over its target tokens, multiplied by the row's
weight; the batch loss is the sum of those over the batch divided by the number of rows.

Why per row and not per token: one batch mixes short targets (``The answer is 42.``, a few
tokens) with long ones (a CoT, a hundred tokens). A token-level mean would let long rows
dominate and silently turn ``alpha`` into ``alpha * short_len / long_len``; a per-row mean
keeps ``alpha * L(short) + (1 - alpha) * L(long)`` what it says, as in the paper where each of
the two losses is a mean over its own target tokens. Dividing by the row count (not by the sum
of weights) keeps merged duplicate rows exactly equivalent to their copies (see ``rows.py``).

``num_items_in_batch`` (Trainer's count of label *tokens* across gradient-accumulation steps)
is the wrong unit for a per-row mean, so the trainer does not use it: it returns this
per-micro-batch mean and lets Trainer divide by the accumulation steps, which is exact when
micro-batches hold the same number of rows.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

IGNORE = -100


def token_losses(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Cross-entropy per position and the mask of positions that count.

    Args:
        logits: ``[B, T, V]`` scores aligned with ``labels`` (already shifted for causal LMs).
        labels: ``[B, T]`` token ids, ``-100`` where nothing is learned (prompt, padding).

    Returns:
        ``(losses [B, T] float32, mask [B, T] bool)``; masked positions hold 0.
    """
    mask = labels.ne(IGNORE)
    # float32 for the softmax: bf16 log-probs over a large vocabulary lose too much precision.
    losses = F.cross_entropy(
        logits.float().transpose(1, 2), labels.masked_fill(~mask, 0), reduction="none"
    )
    return losses * mask, mask


def row_mean_losses(logits: torch.Tensor, labels: torch.Tensor, *, causal: bool) -> torch.Tensor:
    """Mean target-token loss of each row.

    Args:
        logits: ``[B, T, V]`` model outputs (decoder outputs for seq2seq).
        labels: ``[B, T]`` targets with ``-100`` on prompt and padding positions. For causal
            LMs these are the input ids with the prompt masked; position ``t`` predicts ``t+1``,
            so logits and labels are shifted here.
        causal: shift for next-token prediction.

    Returns:
        ``[B]`` float32; a row without any target token has loss 0.
    """
    if causal:
        logits, labels = logits[:, :-1], labels[:, 1:]
    losses, mask = token_losses(logits, labels)
    counts = mask.sum(dim=1).clamp(min=1)
    return losses.sum(dim=1) / counts


def weighted_batch_loss(row_losses: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """``sum(weight_r * loss_r) / B`` for ``row_losses [B]`` and ``weights [B]``; a scalar."""
    return (row_losses * weights.to(row_losses.dtype)).sum() / row_losses.shape[0]


def student_loss(
    logits: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor, *, causal: bool
) -> torch.Tensor:
    """The training loss of one micro-batch: per-row mean token loss x weight, mean over rows."""
    return weighted_batch_loss(row_mean_losses(logits, labels, causal=causal), weights)
