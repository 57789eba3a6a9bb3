"""The chat-completions request as `mindmirror serve` reads it: the body (size-limited), its
JSON, the fields it uses, and the OpenAI-style error answered for a bad one (400/413)."""

from __future__ import annotations

import json
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError


class ApiError(Exception):
    """A bad request: answered with ``status`` and an OpenAI-style error body."""

    def __init__(self, status: int, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.param = status, message, param


class Message(BaseModel):
    """A chat message; ``content`` may be a string or a list of OpenAI content parts."""

    model_config = ConfigDict(extra="allow")
    role: str
    content: str | list[dict[str, Any]] | None = None

    def text(self) -> str:
        """The message's text (text parts joined)."""
        if isinstance(self.content, list):
            return "".join(str(p.get("text", "")) for p in self.content if p.get("type") == "text")
        return self.content or ""


class ChatRequest(BaseModel):
    """The subset of the chat-completions request this server reads; other fields are ignored."""

    model_config = ConfigDict(extra="allow")
    model: str | None = None
    messages: list[Message] = Field(min_length=1)
    n: int | None = None
    max_tokens: int | None = None
    max_completion_tokens: int | None = None
    temperature: float | None = Field(None, ge=0.0, le=2.0)
    top_p: float | None = Field(None, gt=0.0, le=1.0)
    stream: bool | None = False
    mindmirror: dict[str, Any] | None = None


def error_response(status: int, message: str, param: str | None = None) -> JSONResponse:
    """An OpenAI-style error body with ``status``."""
    kind = "invalid_request_error" if status < 500 else "server_error"
    body = {"error": {"message": message, "type": kind, "param": param, "code": None}}
    return JSONResponse(body, status_code=status)


async def read_body(request: Request, limit: int) -> bytes | None:
    """The request body, or None as soon as it is known to pass ``limit`` bytes: from its
    ``Content-Length``, or while reading a chunked body (the rest is never read or held)."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        return None
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            return None
    return bytes(body)


def _lone_surrogate(data: Any) -> bool:
    """Whether any string (key or value) in parsed JSON holds a lone surrogate, which JSON's
    ``\\ud800`` escapes allow but no tokenizer or UTF-8 reply can carry (iterative: any depth)."""
    stack = [data]
    while stack:
        node = stack.pop()
        if isinstance(node, str):
            try:
                node.encode("utf-8")
            except UnicodeEncodeError:
                return True
        elif isinstance(node, dict):
            stack.extend(node.keys())
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return False


def parse_request(body: bytes) -> ChatRequest:
    """The chat request in ``body``; ApiError 400 naming the problem when it is not UTF-8,
    not JSON, nested past json's recursion limit, holds a lone surrogate, or has a bad field."""
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise ApiError(
            400, f"the request body is not valid UTF-8 (byte {error.start}): send UTF-8 JSON"
        ) from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        raise ApiError(400, "the request body is not valid JSON") from None
    except RecursionError:
        raise ApiError(400, "the request body is nested too deeply to be a chat request") from None
    if _lone_surrogate(data):
        raise ApiError(
            400,
            "the request body holds a lone surrogate (an unpaired \\ud800-\\udfff escape): "
            "send valid Unicode text",
        )
    try:
        return ChatRequest.model_validate(data)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ApiError(400, f"{where}: {first['msg']}", where or None) from None
