"""Counting a teacher's prompt and completion tokens before any request (``teach --estimate``).

A real tokenizer where one fits the teacher: the embedded teacher and any ``.gguf`` model are
counted with the GGUF's own vocabulary and chat template (llama.cpp, vocabulary only, loaded
in well under a second), which is what llama.cpp's server bills. For other models no
tokenizer is bundled, so the count is the request engine's estimate (characters / 4 plus 4
per message); ``TokenCounter.name`` says which one was used.
"""

from __future__ import annotations

import atexit
import functools
import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mindmirror.requests.types import PromptText


@dataclass
class TokenCounter:
    """Counts tokens of chat prompts and of completions for one teacher."""

    name: str
    _llama: Any = None
    _formatter: Any = None

    def prompt(self, messages: PromptText) -> int:
        """Prompt tokens of one request (the chat template included where it is known)."""
        if self._llama is None:
            if isinstance(messages, str):
                return len(messages) // 4
            return sum(len(m.get("content", "")) for m in messages) // 4 + 4 * len(messages)
        if isinstance(messages, str):
            text = messages
        elif self._formatter is None:
            text = "\n".join(m.get("content", "") for m in messages)
        else:
            text = self._formatter(messages=messages).prompt
        return len(self._llama.tokenize(text.encode("utf-8"), add_bos=False, special=True))

    def completion(self, text: str) -> int:
        """Completion tokens of one generated text (plus its end-of-turn token)."""
        if self._llama is None:
            return max(1, len(text) // 4)
        return len(self._llama.tokenize(text.encode("utf-8"), add_bos=False, special=False)) + 1


@functools.cache
def _gguf_counter(path: str) -> TokenCounter:
    import llama_cpp
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    llama = llama_cpp.Llama(model_path=path, vocab_only=True, verbose=False)
    # Cached for the process: close it while the interpreter still works (its __del__ at
    # shutdown runs after llama.cpp's bindings are gone and prints a traceback).
    atexit.register(llama.close)
    template = llama.metadata.get("tokenizer.chat_template")
    if not template:
        return TokenCounter(f"gguf vocabulary of {Path(path).name} (no chat template)", llama)

    def special(token: int) -> str:
        return llama.detokenize([token], special=True).decode("utf-8", "replace")

    formatter = Jinja2ChatFormatter(
        template, eos_token=special(llama.token_eos()), bos_token=special(llama.token_bos())
    )
    return TokenCounter(f"gguf tokenizer of {Path(path).name}", llama, formatter)


def token_counter(backend: str, model: str) -> TokenCounter:
    """The best counter for a teacher: its GGUF's tokenizer when the teacher is the embedded
    model or a ``.gguf`` file and llama.cpp is installed, else characters / 4."""
    gguf: Path | None = None
    if importlib.util.find_spec("llama_cpp") is not None:
        if model.endswith(".gguf") and Path(model).is_file():
            gguf = Path(model)
        else:
            from mindmirror.embedded import EMBEDDED_MODEL, embedded_gguf
            from mindmirror.errors import UserError

            if backend == "embedded" or model == EMBEDDED_MODEL:
                try:
                    gguf = embedded_gguf()
                except UserError:
                    gguf = None
    if gguf is not None:
        return _gguf_counter(str(gguf))
    return TokenCounter(f"characters / 4 (no tokenizer bundled for {model})")
