"""How the HTTP backend maps the ``openai`` client's errors, and how it handles the key."""

from __future__ import annotations

import email.utils
import time

import httpx2
import openai
import pytest

from mindmirror.errors import UserError
from mindmirror.requests.types import FatalError, RetryableError
from mindmirror.teacher.backends import OpenAIBackend

URL = "http://127.0.0.1:9/v1"
REQUEST = httpx2.Request("POST", f"{URL}/chat/completions")


def status_error(
    cls: type[openai.APIStatusError],
    status: int,
    body: object,
    headers: dict[str, str] | None = None,
) -> openai.APIStatusError:
    response = httpx2.Response(status, request=REQUEST, json=body, headers=headers or {})
    return cls(f"Error code: {status}", response=response, body=body)


@pytest.fixture
def backend(monkeypatch: pytest.MonkeyPatch) -> OpenAIBackend:
    monkeypatch.setenv("MM_TEST_KEY", "sk-secret-value")
    return OpenAIBackend("some-model", URL, "MM_TEST_KEY", timeout_s=7)


def test_rate_limits_and_server_errors_are_retryable(backend: OpenAIBackend) -> None:
    error = backend._map_error(
        status_error(openai.RateLimitError, 429, {"message": "slow down"}, {"Retry-After": "4"})
    )
    assert isinstance(error, RetryableError) and error.retry_after == 4.0
    assert "HTTP 429: slow down" in str(error)
    date = email.utils.formatdate(time.time() + 30, usegmt=True)
    error = backend._map_error(
        status_error(openai.InternalServerError, 503, {"message": "busy"}, {"Retry-After": date})
    )
    assert isinstance(error, RetryableError) and 25 <= (error.retry_after or 0) <= 31
    error = backend._map_error(status_error(openai.InternalServerError, 500, None))
    assert isinstance(error, RetryableError) and error.retry_after is None


def test_timeouts_and_dropped_connections_are_retryable(backend: OpenAIBackend) -> None:
    timeout = backend._map_error(openai.APITimeoutError(request=REQUEST))
    assert isinstance(timeout, RetryableError) and "no reply within 7s" in str(timeout)
    dropped = backend._map_error(openai.APIConnectionError(request=REQUEST))
    assert isinstance(dropped, RetryableError) and "connection failed" in str(dropped)


def test_wrong_key_unknown_model_and_bad_request_are_fatal(backend: OpenAIBackend) -> None:
    for cls, status in ((openai.AuthenticationError, 401), (openai.PermissionDeniedError, 403)):
        body = {"message": "Incorrect API key provided: sk-secret-value"}
        error = backend._map_error(status_error(cls, status, body))
        assert isinstance(error, FatalError)
        assert f"the key in $MM_TEST_KEY was rejected ({status})" in str(error)
        assert "sk-secret" not in str(error)
    missing = backend._map_error(
        status_error(
            openai.NotFoundError, 404, {"message": "The model `some-model` does not exist"}
        )
    )
    assert isinstance(missing, FatalError)
    assert "does not exist" in str(missing) and "teacher.model 'some-model'" in str(missing)
    bad = backend._map_error(
        status_error(openai.BadRequestError, 400, {"error": {"message": "max_tokens too large"}})
    )
    assert isinstance(bad, FatalError) and "rejected (400): max_tokens too large" in str(bad)


def test_server_messages_never_echo_the_key(backend: OpenAIBackend) -> None:
    body = {"message": "bad value for key sk-secret-value"}
    error = backend._map_error(status_error(openai.BadRequestError, 400, body))
    assert "sk-secret-value" not in str(error) and "***" in str(error)


def test_missing_key_for_openai_is_a_user_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MM_TEST_KEY", raising=False)
    with pytest.raises(UserError, match=r"\$MM_TEST_KEY is not set: export MM_TEST_KEY="):
        OpenAIBackend("gpt-4o-mini", None, "MM_TEST_KEY")
    local = OpenAIBackend("m", "http://localhost:8000/v1", "MM_TEST_KEY")  # no key needed
    assert local.base_url == "http://localhost:8000/v1"
