"""Types shared by the request engine, the backends and record generation."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

Messages = list[dict[str, str]]
#: What a prompt sends: chat messages, or one raw prompt string for a completions backend
#: (the student, whose prompts are task-prefixed text, not chat).
PromptText = Messages | str


@dataclass(frozen=True)
class Sampling:
    """Sampling parameters of one request; part of the cache key."""

    temperature: float
    top_p: float
    max_tokens: int


@dataclass(frozen=True)
class Prompt:
    """One prompt for which ``n`` samples are wanted.

    ``key`` is the caller's handle (e.g. ``("cot", record_id)``); ``messages`` are chat messages
    or a raw prompt string (``PromptText``); ``prompt_version`` names the template so that a
    changed template never reuses old cached answers. ``instance`` (part of the cache key when
    set) gives a prompt whose messages repeat another prompt's of the same run samples of its
    own: two identical CoTs of a question are evaluated separately.
    """

    key: tuple[str, ...]
    messages: PromptText
    n: int
    sampling: Sampling
    prompt_version: str
    instance: str | None = None


@dataclass
class Usage:
    """Token counts of one backend call."""

    prompt_tokens: int = 0
    completion_tokens: int = 0


@dataclass
class Reply:
    """What a backend returned for one call: up to ``n`` texts (servers may return fewer)."""

    texts: list[str]
    usage: Usage = field(default_factory=Usage)


class Backend(Protocol):
    """Something that completes prompts: an HTTP endpoint or an in-process model."""

    model: str

    async def complete(
        self, messages: PromptText, n: int, sampling: Sampling, seed: int | None = None
    ) -> Reply:
        """Return up to ``n`` sampled completions, drawn with ``seed`` where the backend can.
        Raise ``RetryableError`` for transient failures (429, 5xx, timeouts, dropped
        connections) and ``FatalError`` otherwise."""
        ...


class RetryableError(Exception):
    """A transient failure; ``retry_after`` (seconds) comes from the server when it said so."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class FatalError(Exception):
    """A failure that retrying cannot fix (401 wrong key, 404 unknown model, bad request)."""
