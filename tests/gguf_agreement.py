"""Greedy answers of a student in PyTorch and of its GGUF export under the llama.cpp server.

Shared by ``tests/eval/test_export_gguf_server.py`` and ``bench/export_agreement.py``: both
decode greedily from the same prompts (the student's own format, ``causal_prompt(input)``) and
count the inputs whose continuations are the same text.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import httpx

from mindmirror.student.formats import causal_prompt
from mindmirror.student.generate import generate


def torch_greedy(model: Any, tokenizer: Any, inputs: Sequence[str], max_tokens: int) -> list[str]:
    """Greedy continuations from the PyTorch student (what ``predict`` decodes)."""
    samples = generate(
        model, tokenizer, inputs, max_new_tokens=max_tokens, batch_size=16, logprobs=False
    )
    return [sample[0].text for sample in samples]


def llama_greedy(url: str, inputs: Sequence[str], max_tokens: int) -> list[str]:
    """Greedy continuations from a llama.cpp server at ``url`` (``.../v1``), raw prompts."""
    texts = []
    with httpx.Client(timeout=120) as client:
        for text in inputs:
            reply = client.post(
                f"{url}/completions",
                json={
                    "prompt": causal_prompt(text),
                    "max_tokens": max_tokens,
                    "temperature": 0.0,
                    "repeat_penalty": 1.0,
                },
            )
            reply.raise_for_status()
            texts.append(reply.json()["choices"][0]["text"].strip())
    return texts


def agreement(first: Sequence[str], second: Sequence[str]) -> float:
    """Share of positions where the two lists hold the same text."""
    return sum(a == b for a, b in zip(first, second, strict=True)) / len(first)
