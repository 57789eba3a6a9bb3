"""The ``completions`` backend: raw prompt strings to any OpenAI-compatible ``/v1/completions``.

The student's prompts are task-prefixed text (``explain: <question>`` and its separator), not
chat, so its server path uses the completions endpoint with the exact prompt string the
transformers path tokenizes. llama.cpp's server (llama-cpp-python) and vLLM both serve it.

Each choice comes back to the engine as one JSON string (what the cache stores), holding the
text and, when ``logprobs`` is set, the chosen tokens' log-probabilities and the top
log-probabilities at the first generated position (``choice_payload``, read back with
``read_payload``): the engine stays agnostic of what a sample carries. ``SpreadBackend`` puts
several servers of the same model behind one backend (llama.cpp's Python server decodes one
sequence at a time; several single-threaded servers decode several).

Errors are mapped for the engine as the teacher's chat backend maps them: 408, 409, 429, 5xx,
timeouts and dropped connections are ``RetryableError``; anything else is a one-line
``FatalError``.
"""

from __future__ import annotations

import asyncio
import json
import zlib
from dataclasses import dataclass
from typing import Any

import openai

from mindmirror.requests.types import (
    FatalError,
    PromptText,
    Reply,
    RetryableError,
    Sampling,
    Usage,
)

# Servers without authentication accept any key, but the client insists on one.
_NO_KEY = "sk-no-key"


@dataclass(frozen=True)
class Completion:
    """One choice as the caller reads it back from the cache.

    Attributes:
        text: the generated text (prompt not included).
        token_logprobs: log-probability of each generated token (None: not asked for).
        top_logprobs: the most likely next tokens (token text -> log-probability) at the first
            generated position (None: not asked for).
        continuation_logprobs: each asked continuation's total log-probability after the
            prompt (mindmirror's llama.cpp server, ``continuations``; None: not asked for).
    """

    text: str
    token_logprobs: list[float] | None = None
    top_logprobs: dict[str, float] | None = None
    continuation_logprobs: list[float] | None = None


def choice_payload(choice: Any) -> str:
    """One completion choice as the JSON string the engine caches."""
    data: dict[str, Any] = {"text": choice.text or ""}
    logprobs = getattr(choice, "logprobs", None)
    if logprobs is not None:
        data["token_logprobs"] = [lp for lp in (logprobs.token_logprobs or []) if lp is not None]
        tops = logprobs.top_logprobs or []
        data["top_logprobs"] = dict(tops[0]) if tops and tops[0] else {}
    scored = getattr(choice, "continuation_logprobs", None)
    if scored is not None:
        data["continuation_logprobs"] = list(scored)
    return json.dumps(data, ensure_ascii=False)


def read_payload(text: str) -> Completion:
    """The ``Completion`` in a cached payload (``choice_payload``)."""
    data = json.loads(text)
    return Completion(
        data["text"],
        data.get("token_logprobs"),
        data.get("top_logprobs"),
        data.get("continuation_logprobs"),
    )


class CompletionsBackend:
    """Completions of raw prompt strings from an OpenAI-compatible server.

    ``logprobs``: how many top log-probabilities to ask per generated token (None: none; 0:
    only the chosen tokens'). ``extra_body``: server-specific sampling fields sent with every
    call (for llama.cpp, the neutral ``top_k``, ``min_p`` and ``repeat_penalty`` that make it
    sample as transformers does).
    """

    def __init__(
        self,
        model: str,
        base_url: str,
        *,
        logprobs: int | None = None,
        extra_body: dict[str, Any] | None = None,
        timeout_s: float = 600.0,
    ) -> None:
        self.model = model
        self.base_url = base_url.rstrip("/")
        self.logprobs = logprobs
        self.extra_body = dict(extra_body or {})
        self.timeout_s = timeout_s
        self._client: openai.AsyncOpenAI | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def _api(self) -> openai.AsyncOpenAI:
        # An async HTTP pool belongs to the event loop it was opened in.
        loop = asyncio.get_running_loop()
        if self._client is None or self._loop is not loop:
            self._client = openai.AsyncOpenAI(
                base_url=self.base_url, api_key=_NO_KEY, max_retries=0, timeout=self.timeout_s
            )
            self._loop = loop
        return self._client

    def _map_error(self, error: openai.OpenAIError) -> Exception:
        if isinstance(error, openai.APITimeoutError):
            return RetryableError(f"{self.base_url}: no reply within {self.timeout_s:g}s")
        if isinstance(error, openai.APIConnectionError):
            return RetryableError(f"{self.base_url}: connection failed ({error.__cause__!r})")
        if isinstance(error, openai.APIStatusError):
            status = error.status_code
            message = " ".join(str(error.message).split())[:300]
            if status in (408, 409, 429) or status >= 500:
                return RetryableError(f"{self.base_url}: HTTP {status}: {message}")
            return FatalError(f"{self.base_url}: request rejected ({status}): {message}")
        return FatalError(f"{self.base_url}: {error}")

    async def complete(
        self, messages: PromptText, n: int, sampling: Sampling, seed: int | None = None
    ) -> Reply:
        """Up to ``n`` completions of the prompt string ``messages``, as payloads."""
        if not isinstance(messages, str):
            raise FatalError("the completions backend takes a prompt string, not chat messages")
        options: dict[str, Any] = {} if seed is None else {"seed": seed}
        if self.logprobs is not None:
            options["logprobs"] = self.logprobs
        try:
            response = await self._api().completions.create(
                model=self.model,
                prompt=messages,
                n=n,
                temperature=sampling.temperature,
                top_p=sampling.top_p,
                max_tokens=sampling.max_tokens,
                extra_body=self.extra_body or None,
                **options,
            )
        except openai.OpenAIError as error:
            raise self._map_error(error) from None
        choices = sorted(response.choices or [], key=lambda choice: choice.index)
        usage = response.usage
        return Reply(
            texts=[choice_payload(choice) for choice in choices],
            usage=Usage(
                prompt_tokens=usage.prompt_tokens if usage else 0,
                completion_tokens=usage.completion_tokens if usage else 0,
            ),
        )

    async def check(self) -> None:
        """Call ``/models`` once: FatalError when the server cannot be reached."""
        try:
            await self._api().models.list()
        except openai.APIConnectionError as error:
            raise FatalError(
                f"cannot reach the student's server at {self.base_url}: {error.__cause__ or error}"
                " (is it running? check eval.engine_url)"
            ) from None
        except openai.APIStatusError:
            pass  # servers without /models: the first real request tells

    async def aclose(self) -> None:
        """Close the HTTP pool of the current client (a later call opens a new one)."""
        if self._client is not None:
            client, self._client, self._loop = self._client, None, None
            await client.close()


class SpreadBackend:
    """Several servers hosting the same model, as one backend: each prompt always goes to the
    same one (chosen by a hash of the prompt), so the samples of a prompt share that server's
    KV cache of it, and different prompts spread over all of them."""

    def __init__(self, backends: list[CompletionsBackend]) -> None:
        if not backends or len({b.model for b in backends}) != 1:
            raise ValueError("a spread needs one or more backends serving the same model")
        self.backends = backends
        self.model = backends[0].model

    def pick(self, prompt: PromptText) -> CompletionsBackend:
        """The backend that completes ``prompt``."""
        key = prompt if isinstance(prompt, str) else json.dumps(prompt, sort_keys=True)
        return self.backends[zlib.crc32(key.encode("utf-8")) % len(self.backends)]

    async def complete(
        self, messages: PromptText, n: int, sampling: Sampling, seed: int | None = None
    ) -> Reply:
        """``complete`` on the backend of this prompt."""
        return await self.pick(messages).complete(messages, n, sampling, seed)

    async def check(self) -> None:
        """``check`` every server."""
        for backend in self.backends:
            await backend.check()

    async def aclose(self) -> None:
        """Close every server's HTTP pool."""
        for backend in self.backends:
            await backend.aclose()
