"""The embedded llama.cpp server never outlives the process that started it."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

CHILD = """
import time
from mindmirror.embedded import llama_server
with llama_server() as url:
    print(url, flush=True)
    time.sleep(120)
"""


@pytest.mark.server
def test_server_dies_with_a_killed_parent(gguf_path: Path) -> None:
    parent = subprocess.Popen([sys.executable, "-c", CHILD], stdout=subprocess.PIPE, text=True)
    assert parent.stdout is not None
    assert parent.stdout.readline().startswith("http://127.0.0.1:")
    children = subprocess.run(
        ["pgrep", "-P", str(parent.pid)], capture_output=True, text=True
    ).stdout.split()
    assert children, "the server should be a child process"
    parent.kill()  # SIGKILL: no finally block runs in the parent
    parent.wait()
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and any(os.path.exists(f"/proc/{c}") for c in children):
        time.sleep(0.2)
    assert not any(os.path.exists(f"/proc/{c}") for c in children)
