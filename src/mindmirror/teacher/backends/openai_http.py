"""The ``openai`` backend: any OpenAI-compatible chat endpoint over HTTP.

OpenAI, vLLM, SGLang, Ollama and llama.cpp's server all speak ``/v1/chat/completions``; the
``openai`` package's ``AsyncOpenAI`` client with ``base_url`` reaches each of them. The client's
own retries are off (``max_retries=0``): the request engine retries itself, so it can honour
``Retry-After`` across all its tasks and count every attempt.

Errors are mapped for the engine: 429, 5xx, timeouts and dropped connections become
``RetryableError`` (with the server's ``Retry-After``), everything else ``FatalError`` with one
line that names the problem and the fix. The key is read from the environment variable the
recipe names and is never logged, written, or echoed in an error message.
"""

from __future__ import annotations

import asyncio
import email.utils
import math
import os
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlparse

import httpx
import openai

from mindmirror.errors import UserError
from mindmirror.requests.types import FatalError, Messages, Reply, RetryableError, Sampling, Usage

OPENAI_URL = "https://api.openai.com/v1"
# Servers without authentication (llama.cpp, a local vLLM) accept any key, but the client
# insists on one.
PLACEHOLDER_KEY = "sk-no-key"
_MAX_MESSAGE = 300
# uvicorn (vLLM, SGLang, llama.cpp's Python server) closes a connection idle for 5 s, and the
# openai client keeps idle connections for 5 s too: a request sent on one just as the server
# closes it is reset (httpx ReadError) and costs a retry. Idle connections go well before that.
KEEPALIVE_S = 2.0


def parse_retry_after(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """Seconds to wait according to ``retry-after-ms`` or ``Retry-After`` (seconds or HTTP date).

    Returns None when the server gave no usable value; a date in the past gives 0.
    """
    lowered = {name.lower(): value for name, value in headers.items()}
    for name, divisor in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        raw = lowered.get(name)
        if raw is None:
            continue
        try:
            seconds = float(raw) / divisor
        except ValueError:
            continue
        if math.isfinite(seconds):
            return max(0.0, seconds)
    raw = lowered.get("retry-after")
    if raw is None:
        return None
    try:
        when = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        return None
    now = time.time() if now is None else now
    return max(0.0, when.timestamp() - now)


def _is_loopback(url: str) -> bool:
    host = urlparse(url).hostname or ""
    return host in ("localhost", "127.0.0.1", "::1") or host.startswith("127.")


def _server_message(error: openai.APIStatusError) -> str:
    """The server's own error text, shortened to one line."""
    body: Any = error.body
    message: Any = None
    if isinstance(body, dict):
        inner = body.get("error")
        message = body.get("message") or (
            inner.get("message") if isinstance(inner, dict) else inner
        )
        if message is None and "detail" in body:
            message = body["detail"]
    text = str(message if message is not None else (body or error.message))
    return " ".join(text.split())[:_MAX_MESSAGE]


class OpenAIBackend:
    """Chat completions from an OpenAI-compatible endpoint (see the module docstring)."""

    def __init__(
        self,
        model: str,
        base_url: str | None = None,
        api_key_env: str = "OPENAI_API_KEY",
        timeout_s: float = 120.0,
    ) -> None:
        self.model = model
        self.base_url = (base_url or OPENAI_URL).rstrip("/")
        self.api_key_env = api_key_env
        self.timeout_s = timeout_s
        key = os.environ.get(api_key_env, "").strip()
        if not key:
            if urlparse(self.base_url).hostname == urlparse(OPENAI_URL).hostname:
                raise UserError(
                    f"${api_key_env} is not set: export {api_key_env}=<your key> for "
                    f"{self.base_url} (or set teacher.base_url to your own server)"
                )
            key = PLACEHOLDER_KEY
        self._key = key
        self._client: openai.AsyncOpenAI | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @classmethod
    def from_config(cls, cfg: Any) -> OpenAIBackend:
        """Build from a ``TeacherConfig`` (model, base_url, api_key_env, timeout_s)."""
        return cls(cfg.model, cfg.base_url, cfg.api_key_env, cfg.timeout_s)

    def _api(self) -> openai.AsyncOpenAI:
        # An async HTTP pool belongs to the event loop it was opened in; each ``asyncio.run``
        # (the engine's ``run_sync``) gets a client of its own.
        loop = asyncio.get_running_loop()
        if self._client is None or self._loop is not loop:
            limits = httpx.Limits(
                max_connections=1000, max_keepalive_connections=100, keepalive_expiry=KEEPALIVE_S
            )
            self._client = openai.AsyncOpenAI(
                base_url=self.base_url,
                api_key=self._key,
                max_retries=0,
                timeout=self.timeout_s,
                http_client=openai.DefaultAsyncHttpxClient(limits=limits),
            )
            self._loop = loop
        return self._client

    def _scrub(self, text: str) -> str:
        return text.replace(self._key, "***") if self._key != PLACEHOLDER_KEY else text

    def _map_error(self, error: openai.OpenAIError) -> Exception:
        """Translate a client exception into RetryableError or FatalError."""
        if isinstance(error, openai.APITimeoutError):
            return RetryableError(f"{self.base_url}: no reply within {self.timeout_s:g}s")
        if isinstance(error, openai.APIConnectionError):
            cause = error.__cause__ or error
            return RetryableError(f"{self.base_url}: connection failed ({cause!r})")
        if not isinstance(error, openai.APIStatusError):
            return FatalError(self._scrub(f"{self.base_url}: {error}"))
        status = error.status_code
        message = self._scrub(_server_message(error))
        if status in (408, 409, 429) or status >= 500:
            retry_after = parse_retry_after(dict(error.response.headers.items()))
            return RetryableError(f"{self.base_url}: HTTP {status}: {message}", retry_after)
        if status in (401, 403):
            return FatalError(
                f"{self.base_url}: the key in ${self.api_key_env} was rejected ({status}); "
                f"set {self.api_key_env} to a valid key for this endpoint"
            )
        if status == 404:
            return FatalError(
                f"{self.base_url}: not found (404): {message} (is teacher.model "
                f"'{self.model}' served there? is base_url right?)"
            )
        return FatalError(f"{self.base_url}: request rejected ({status}): {message}")

    async def complete(
        self, messages: Messages, n: int, sampling: Sampling, seed: int | None = None
    ) -> Reply:
        """Up to ``n`` completions of ``messages``; see ``Backend.complete``."""
        seeded = {} if seed is None else {"seed": seed}
        try:
            response = await self._api().chat.completions.create(
                model=self.model,
                messages=messages,  # type: ignore[arg-type]
                n=n,
                temperature=sampling.temperature,
                top_p=sampling.top_p,
                max_tokens=sampling.max_tokens,
                **seeded,
            )
        except openai.OpenAIError as error:
            raise self._map_error(error) from None
        choices = sorted(response.choices or [], key=lambda choice: choice.index)
        texts = [choice.message.content or "" for choice in choices if choice.message]
        usage = response.usage
        details = getattr(usage, "prompt_tokens_details", None) if usage else None
        return Reply(
            texts=texts,
            usage=Usage(
                prompt_tokens=usage.prompt_tokens if usage else 0,
                completion_tokens=usage.completion_tokens if usage else 0,
                cached_prompt_tokens=int(getattr(details, "cached_tokens", 0) or 0),
            ),
        )

    async def check(self) -> None:
        """Call ``/models`` once: FatalError when the endpoint is unreachable or the key is bad.

        Rate limits, server errors and servers without ``/models`` pass: the engine's retries
        and the first real request deal with those.
        """
        try:
            await self._api().models.list()
        except openai.APIConnectionError as error:
            cause = error.__cause__ or error
            raise FatalError(
                f"cannot reach {self.base_url}: {type(cause).__name__}: {cause} (is the server "
                "running? check teacher.base_url)"
            ) from None
        except openai.APIStatusError as error:
            mapped = self._map_error(error)
            if isinstance(mapped, FatalError) and error.status_code in (401, 403):
                raise mapped from None

    async def aclose(self) -> None:
        """Close the HTTP pool of the current client (a later call opens a new one)."""
        if self._client is not None:
            client, self._client, self._loop = self._client, None, None
            await client.close()
