"""Shared fixtures: the public data in ../shared/data and the embedded llama.cpp server."""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from mindmirror.embedded import embedded_gguf, llama_server
from mindmirror.errors import UserError

# Tests never reach the Hugging Face Hub (there is no network here, and a test must not wait
# for one): the Hub code paths fail fast and say so.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"


def shared_path(*parts: str) -> Path:
    """A path inside ../shared/data; skips the calling test when it is absent (fresh clones)."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"needs the public benchmark data at {path} (present in CI, not in clones)")
    return path


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Root of ../shared/data, or skip with the reason."""
    return shared_path()


@pytest.fixture(scope="session")
def gguf_path() -> Path:
    """The embedded SmolLM2 GGUF, or skip with the install command."""
    try:
        return embedded_gguf()
    except UserError as error:
        pytest.skip(str(error))


@pytest.fixture(scope="session")
def llama_url(gguf_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Base URL (``http://127.0.0.1:PORT/v1``) of one real llama.cpp server for the session."""
    if importlib.util.find_spec("llama_cpp") is None:
        pytest.skip("needs llama-cpp-python[server] (pip install -e '.[embedded]')")
    log = tmp_path_factory.mktemp("llama") / "server.log"
    with llama_server(gguf_path, log_path=log) as url:
        yield url
