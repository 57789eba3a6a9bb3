"""Polling a batch whose endpoint stopped answering: back off, then stop with one line and
keep the batch id for a later run (a real HTTP server on loopback that answers 503)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from mindmirror.embedded import EMBEDDED_MODEL
from mindmirror.errors import UserError
from mindmirror.requests.cache import cache_key
from mindmirror.teacher.batch_files import STATE_SCHEMA, load_state
from tests.teacher.test_batch import make_engine, prompts

# Past this many status checks the server answers 404, so that code which never gives up
# fails with another message instead of hanging the test.
PATIENCE = 12


@contextmanager
def dead_batch_endpoint() -> Iterator[tuple[str, dict[str, int]]]:
    """An endpoint whose Batch API lists no batch and answers 503 to every status check."""
    seen = {"retrieves": 0}

    class Handler(BaseHTTPRequestHandler):
        def _send(self, status: int, payload: dict) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            if self.path.startswith("/v1/batches/"):
                seen["retrieves"] += 1
                status = 503 if seen["retrieves"] <= PATIENCE else 404
                self._send(status, {"error": {"message": "upstream unavailable"}})
            else:
                self._send(200, {"object": "list", "data": [], "has_more": False})

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1", seen
    finally:
        server.shutdown()
        server.server_close()


def write_state(folder: Path) -> Path:
    """The state a run killed while its batch ran leaves: one uncollected batch of prompt 0."""
    prompt = prompts(1)[0]
    key = cache_key(EMBEDDED_MODEL, prompt.messages, prompt.sampling, 0, prompt.prompt_version)
    request = {"keys": [key], "indices": [0], "prompt_version": prompt.prompt_version}
    entry = {
        "input_file": "batch-inputs/input-0000.jsonl",
        "input_file_id": "file-1",
        "id": "batch_dead",
        "status": "in_progress",
        "submitted": 0,
        "collected": False,
        "model": EMBEDDED_MODEL,
        "requests": {"r0": {**request, "status": "pending"}},
    }
    state = folder / "batches.json"
    state.write_text(json.dumps({"schema": STATE_SCHEMA, "batches": [entry]}))
    return state


def test_polling_a_dead_endpoint_stops_and_keeps_the_batch_id(tmp_path: Path) -> None:
    state = write_state(tmp_path)
    with dead_batch_endpoint() as (url, seen):
        engine, _ = make_engine(url, tmp_path, use_n=False, batch_unreachable_s=0.5)
        with pytest.raises(UserError) as caught:
            engine.run_sync(prompts(1), "CoTs")
    message = str(caught.value)
    assert "batch batch_dead: status checks" in message and "503" in message
    assert "re-run `mindmirror teach`" in message and "teacher.batch_unreachable_s" in message
    assert 2 <= seen["retrieves"] <= PATIENCE  # tried again, with backoff, then gave up
    (kept,) = load_state(state)["batches"]
    assert kept["id"] == "batch_dead" and not kept["collected"]
