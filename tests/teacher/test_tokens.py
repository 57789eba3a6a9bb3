"""The token counts behind ``teach --estimate``: the embedded teacher's own tokenizer and chat
template where llama.cpp and the GGUF are installed, characters / 4 otherwise."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from mindmirror.teacher.tokens import token_counter

MESSAGES = [
    {"role": "system", "content": "You are an expert at solving problems step by step."},
    {"role": "user", "content": "Q: Tom has 3 apples and buys 4 more. How many has he?"},
]


def test_unknown_models_are_counted_as_characters_over_four() -> None:
    counter = token_counter("openai", "gpt-4o-mini")
    assert counter.name.startswith("characters / 4")
    chars = sum(len(m["content"]) for m in MESSAGES)
    assert counter.prompt(MESSAGES) == chars // 4 + 8
    assert counter.completion("x" * 40) == 10


def test_the_embedded_teacher_is_counted_with_its_gguf(gguf_path: Path) -> None:
    if importlib.util.find_spec("llama_cpp") is None:
        pytest.skip("needs llama-cpp-python")
    counter = token_counter("embedded", "anything")
    assert counter.name.startswith("gguf tokenizer of ")
    plain = token_counter("openai", "gpt-4o-mini").prompt(MESSAGES)
    tokens = counter.prompt(MESSAGES)
    # The chat template adds role markers around each message: more than the bare text.
    bare = sum(counter.completion(m["content"]) - 1 for m in MESSAGES)
    assert bare < tokens < 3 * plain
    assert counter.completion("The answer is 7.") >= 5
