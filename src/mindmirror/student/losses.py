"""Weighted token cross-entropy for seq2seq and causal students (pure functions).

Two normalisations of one micro-batch that mixes short targets (``predict:``, ``verdict:``: a
few tokens) with long ones (``explain:``, ``critique:``: a CoT), ``train.loss_norm``:

- ``task_token_mean`` (the published code, ``TaskPrefixTrainer.compute_loss``): each task's
  loss is the mean over *all* target tokens of that task's rows in the batch, then
  ``alpha * L_short + (1 - alpha) * L_long``. Within a task, a long target weighs more than a
  short one (it has more tokens).
- ``row_mean`` (ours): each row's loss is the mean over its own target tokens, times the row's
  weight; the batch loss divides the sum by the number of rows. Every row weighs the same
  whatever its length.

Both keep ``alpha`` from turning into ``alpha * short_len / long_len`` (a single token mean
over the mixed batch would). A row merged from ``count`` identical rows (``dedupe``) counts
``count`` times in either.

``num_items_in_batch`` (Trainer's token count across gradient-accumulation steps) is not used:
the trainer returns this per-micro-batch loss and lets Trainer divide by the accumulation
steps.
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
    # Flattened to [B*T, V] (the vocabulary contiguous): cross_entropy over a transposed
    # [B, V, T] view is several times slower on CPU.
    losses = F.cross_entropy(
        logits.float().reshape(-1, logits.shape[-1]),
        labels.reshape(-1),
        ignore_index=IGNORE,
        reduction="none",
    ).view(labels.shape)
    return losses, mask


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


def task_token_mean_loss(
    token_sums: torch.Tensor,
    token_counts: torch.Tensor,
    weights: torch.Tensor,
    counts: torch.Tensor,
    short: torch.Tensor,
) -> torch.Tensor:
    """The published loss: ``sum over tasks of factor * (task's token mean)``.

    Args:
        token_sums: ``[B]`` summed target-token losses of each row.
        token_counts: ``[B]`` target tokens of each row.
        weights: ``[B]`` ``count * factor``, factor = ``alpha`` (short) or ``1 - alpha`` (long).
        counts: ``[B]`` rows each row stands for (1 unless merged by ``dedupe``).
        short: ``[B]`` bool, the row's task is a short one (``predict:``, ``verdict:``).

    Returns:
        A scalar: ``sum_g sum_{r in g} w_r * S_r / sum_{r in g} c_r * n_r`` over the two task
        groups g, which is ``factor_g * token-mean_g`` summed; a group absent from the batch
        adds 0.
    """
    weights = weights.to(token_sums.dtype)
    counts = counts.to(token_sums.dtype)
    total = token_sums.new_zeros(())
    for group in (short, ~short):
        if group.any():
            tokens = (counts[group] * token_counts[group]).sum().clamp(min=1)
            total = total + (weights[group] * token_sums[group]).sum() / tokens
    return total


def row_token_sums(
    logits: torch.Tensor, labels: torch.Tensor, *, causal: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed target-token loss and target-token count of each row.

    Args:
        logits: ``[B, T, V]`` model outputs; labels: ``[B, T]`` with ``-100`` where nothing is
            learned (shifted here for causal LMs, as in ``row_mean_losses``).

    Returns:
        ``(sums [B] float32, counts [B] float32)``.
    """
    if causal:
        logits, labels = logits[:, :-1], labels[:, 1:]
    losses, mask = token_losses(logits, labels)
    return losses.sum(dim=1), mask.sum(dim=1).to(losses.dtype)


def combine_rows(
    sums: torch.Tensor,
    tokens: torch.Tensor,
    weights: torch.Tensor,
    *,
    norm: str,
    counts: torch.Tensor | None = None,
    short: torch.Tensor | None = None,
) -> torch.Tensor:
    """The micro-batch loss from each row's token sum and count (all ``[B]``), so that rows
    run in several forward passes still make one loss.

    ``row_mean``: ``sum(weight * sum / tokens) / B``. ``task_token_mean``: see
    ``task_token_mean_loss`` (needs ``counts`` and ``short``).
    """
    if norm == "row_mean":
        return weighted_batch_loss(sums / tokens.clamp(min=1), weights)
    if counts is None or short is None:
        raise ValueError("task_token_mean needs the rows' counts and task groups")
    return task_token_mean_loss(sums, tokens, weights, counts, short)


def student_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    weights: torch.Tensor,
    *,
    causal: bool,
    norm: str = "row_mean",
    counts: torch.Tensor | None = None,
    short: torch.Tensor | None = None,
) -> torch.Tensor:
    """The training loss of one micro-batch under normalisation ``norm`` (see
    ``combine_rows``); ``counts`` and ``short`` are ``[B]``."""
    sums, tokens = row_token_sums(logits, labels, causal=causal)
    return combine_rows(sums, tokens, weights, norm=norm, counts=counts, short=short)
