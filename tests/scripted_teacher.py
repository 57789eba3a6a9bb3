"""A real OpenAI-style chat endpoint on loopback whose answers a test scripts.

Where the llama.cpp server cannot be told what to answer (the same CoT twice, a 500 for the
self-evaluation prompts only), tests run this instead: a ``ThreadingHTTPServer`` that answers
``GET .../models`` and, for ``POST .../chat/completions``, whatever ``answer(body)`` returns::

    with scripted_teacher(lambda body: (200, "The answer is 5.")) as teacher:
        ...  # teacher.url is the base URL; teacher.bodies the request bodies received
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Answer = Callable[[dict[str, Any]], tuple[int, str]]


def is_evaluation(body: dict[str, Any]) -> bool:
    """Whether a request body asks for a self-evaluation (the eval templates' system line)."""
    return "careful grader" in body["messages"][0]["content"]


def completion(content: str, cached_tokens: int = 0) -> dict[str, Any]:
    """A chat-completion body with one choice; ``cached_tokens`` > 0 reports that many prompt
    tokens as served from the provider's prompt cache (``usage.prompt_tokens_details``)."""
    message = {"role": "assistant", "content": content}
    usage: dict[str, Any] = {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8}
    if cached_tokens:
        usage["prompt_tokens_details"] = {"cached_tokens": cached_tokens}
    return {
        "id": "x",
        "object": "chat.completion",
        "created": 0,
        "model": "m",
        "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
        "usage": usage,
    }


@dataclass
class ScriptedTeacher:
    """The running endpoint: its base URL, the chat-completion bodies it received and the
    number of TCP connections it accepted (it keeps them alive, HTTP/1.1)."""

    url: str
    bodies: list[dict[str, Any]] = field(default_factory=list)
    connections: int = 0

    def count(self, evaluations: bool) -> int:
        """Requests received for self-evaluations (True) or for CoTs (False)."""
        return sum(is_evaluation(body) == evaluations for body in self.bodies)


@contextmanager
def scripted_teacher(answer: Answer, cached_tokens: int = 0) -> Iterator[ScriptedTeacher]:
    """Serve ``answer`` (body -> (status, content or error message)) on a free loopback port;
    each completion reports ``cached_tokens`` of its 5 prompt tokens as provider-cached."""
    lock = threading.Lock()
    teacher = ScriptedTeacher("")

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def setup(self) -> None:
            super().setup()
            with lock:
                teacher.connections += 1

        def _send(self, status: int, payload: dict[str, Any]) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            self._send(200, {"object": "list", "data": [{"id": "m", "object": "model"}]})

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            with lock:
                teacher.bodies.append(body)
                status, text = answer(body)
            payload = (
                completion(text, cached_tokens) if status == 200 else {"error": {"message": text}}
            )
            self._send(status, payload)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    teacher.url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield teacher
    finally:
        server.shutdown()
        server.server_close()
