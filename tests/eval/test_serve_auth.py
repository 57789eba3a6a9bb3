"""`serve --api-key-env`: every request needs the bearer key; the key never reaches the log."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
from typer.testing import CliRunner

from mindmirror.cli import app
from mindmirror.deployment.serve_auth import key_matches
from mindmirror.embedded import free_port
from mindmirror.student.model import save_student
from tests.eval.conftest import COT_RIGHT, Q_RIGHT, Fitted

KEY_ENV = "MINDMIRROR_TEST_SERVE_KEY"
KEY = "s3cret-key-for-the-test"


@pytest.fixture(scope="module")
def student(tmp_path_factory: pytest.TempPathFactory, fitted_causal: Fitted) -> Path:
    folder = tmp_path_factory.mktemp("serve-auth") / "student"
    s = fitted_causal.student
    return save_student(s.model, s.tokenizer, folder, kind="causal")


@pytest.fixture(scope="module")
def guarded(student: Path) -> Iterator[tuple[str, Path]]:
    """(base URL, log file) of `mindmirror serve --api-key-env` in its own process."""
    port = free_port()
    log_path = student.parent / "serve.log"
    env = {**os.environ, KEY_ENV: KEY, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "mindmirror", "serve", str(student), "--task", "svamp"]
    cmd += ["--port", str(port), "--api-key-env", KEY_ENV]
    with log_path.open("wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            assert proc.poll() is None, log_path.read_text()
            try:
                httpx.get(f"{url}/health", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.2)
        yield url, log_path
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_requests_without_the_right_key_get_401(guarded: tuple[str, Path]) -> None:
    url, _ = guarded
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": KEY}):
        for path in ("/health", "/v1/models"):
            reply = httpx.get(f"{url}{path}", headers=headers, timeout=10)
            assert reply.status_code == 401, (path, headers)
            assert reply.json()["error"]["code"] == "invalid_api_key"
    client = openai.OpenAI(base_url=f"{url}/v1", api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])


def test_the_right_key_is_served_and_never_logged(guarded: tuple[str, Path]) -> None:
    url, log_path = guarded
    client = openai.OpenAI(base_url=f"{url}/v1", api_key=KEY, max_retries=0, timeout=60)
    reply = client.chat.completions.create(
        model="m", messages=[{"role": "user", "content": Q_RIGHT}], max_tokens=24
    )
    assert reply.choices[0].message.content == COT_RIGHT
    assert httpx.get(f"{url}/health", headers={"Authorization": f"Bearer {KEY}"}).is_success
    log = log_path.read_text()
    assert "serving" in log and KEY not in log


def test_an_unset_key_variable_is_one_clear_line(student: Path) -> None:
    result = CliRunner().invoke(
        app, ["serve", str(student), "--task", "svamp", "--api-key-env", "MINDMIRROR_NO_SUCH_VAR"]
    )
    assert result.exit_code == 2
    assert "$MINDMIRROR_NO_SUCH_VAR is not set" in result.output
    assert "Traceback" not in result.output


def test_an_empty_key_variable_or_name_is_refused(
    student: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Either would serve with no key at all; the taken port stops a server that started."""
    monkeypatch.setenv("MINDMIRROR_EMPTY_KEY", "")
    cases = [
        ("", "--api-key-env '': '' is not an environment variable name"),
        ("MINDMIRROR_EMPTY_KEY", "$MINDMIRROR_EMPTY_KEY is empty; export MINDMIRROR_EMPTY_KEY="),
    ]
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = str(taken.getsockname()[1])
        for name, message in cases:
            args = ["serve", str(student), "--task", "svamp", "--port", port]
            result = CliRunner().invoke(app, [*args, "--api-key-env", name])
            assert result.exit_code == 2, result.output
            assert message in result.output
            assert "Traceback" not in result.output


def test_key_matching_is_exact() -> None:
    assert key_matches(f"Bearer {KEY}", KEY) and key_matches(f"bearer {KEY}", KEY)
    for header in (None, "", KEY, f"Bearer {KEY} ", f"Basic {KEY}", f"Bearer {KEY[:-1]}"):
        assert not key_matches(header, KEY)
