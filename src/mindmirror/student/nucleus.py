"""The top-p nucleus's mass, as transformers keeps it, without sorting a whole vocabulary.

The batched llama.cpp server (``llama_batch``) reports each sampled token's log-probability
under the distribution it was drawn from: renormalised over the nucleus when top-p < 1.
"""

from __future__ import annotations

import numpy as np


def nucleus_mass(weights: np.ndarray, total: float, top_p: float, first: int = 256) -> float:
    """The mass of transformers' top-p nucleus: the largest ``weights`` (shape ``(vocab,)``,
    unnormalised, summing to ``total``) in falling order until their share reaches ``top_p``.

    Sorting the whole vocabulary (49k words) for every token is the slow way; a nucleus is
    usually a few hundred words at most, so the largest ``first`` are partitioned out and
    sorted, and only when their mass falls short is everything sorted. Either way the sum runs
    over the same values in the same order as a full sort's, so the number is the same.
    """
    partial = first < weights.size
    ranked = np.sort(np.partition(weights, -first)[-first:] if partial else weights)[::-1]
    shares = np.cumsum(ranked) / total
    if partial and shares[-1] < top_p:
        ranked = np.sort(weights)[::-1]
        shares = np.cumsum(ranked) / total
    kept = int(np.searchsorted(shares, top_p)) + 1
    return float(ranked[:kept].sum())
