"""A bearer key for ``mindmirror serve`` (``--api-key-env NAME`` / ``serve.api_key_env``).

The key lives in an environment variable, never in a file, a log line or an error message.
When it is set, every request (``/health`` and ``/v1/models`` included) must carry
``Authorization: Bearer <key>``; anything else gets OpenAI's 401 answer. The comparison hashes
both sides first and compares the digests in constant time, so neither the key's characters
nor its length leak through timing.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.responses import Response

from mindmirror.errors import UserError

UNAUTHORIZED = {
    "error": {
        "message": "missing or wrong API key: send the header Authorization: Bearer <key>",
        "type": "invalid_request_error",
        "param": None,
        "code": "invalid_api_key",
    }
}


def read_api_key(env_name: str) -> str:
    """The key in ``$env_name``; UserError naming the variable (not its value) when it is
    unset or empty (an empty key would leave the server open)."""
    key = os.environ.get(env_name)
    if key is None or not key.strip():
        state = "is not set" if key is None else "is empty"
        raise UserError(
            f"--api-key-env {env_name}: ${env_name} {state}; export {env_name}=<a secret key> "
            "(clients then send it as their API key)"
        )
    return key.strip()


def _digest(value: bytes) -> bytes:
    return hashlib.sha256(value).digest()


def key_matches(header: str | None, key: str) -> bool:
    """Whether an ``Authorization`` header carries ``key`` as a bearer token (constant time;
    the scheme name is case-insensitive, as HTTP says)."""
    scheme, _, token = (header or "").partition(" ")
    given = token.encode("utf-8", "surrogateescape")
    same = hmac.compare_digest(_digest(given), _digest(key.encode()))
    return same and scheme.lower() == "bearer"


def require_key(app: FastAPI, key: str) -> None:
    """Make every request to ``app`` need ``Authorization: Bearer <key>`` (401 otherwise)."""

    @app.middleware("http")
    async def check_key(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        if not key_matches(request.headers.get("authorization"), key):
            return JSONResponse(
                UNAUTHORIZED, status_code=401, headers={"WWW-Authenticate": "Bearer"}
            )
        return await call_next(request)
