"""A fault-injecting HTTP proxy in front of a real OpenAI-compatible server.

Tests and the throughput benchmark put it between the request engine and the llama.cpp server
to inject the faults a real API produces, and to count what reached the server. It is a
separate process (plain ``asyncio`` streams, ``httpx`` towards the server) so it owns its
sockets: it can drop a connection without a response, or hang until the client gives up.

Run alone::

    python tests/fault_proxy.py --upstream http://127.0.0.1:8080/v1 [--port 0] [--latency 1.0]
        [--api-key KEY]        # prints "READY <port>" once it listens

Control endpoints (JSON, same port):

- ``POST /_faults`` ``{"kind": K, "count": 1, ...}`` queues a fault for the next ``count``
  chat-completion requests. ``K``: ``429`` (with ``retry_after``, default ``"1"``; seconds or
  an HTTP date), ``500``, ``hang`` (no answer until the client closes or ``hang_s``),
  ``drop`` (close the connection without a response), ``trim`` (forward, then keep only
  ``trim_to`` choices, default 1).
- ``POST /_config`` ``{"latency_s": 1.0, "api_key": "secret" | null}``: a fixed delay added to
  every chat-completion request; a required key (other keys get a 401, as OpenAI answers).
- ``POST /_reset``: clears queued faults and counters.
- ``GET /_stats``: ``{"received", "forwarded", "faults": {kind: count}, "other"}``:
  ``forwarded`` counts chat-completion requests that reached the server.

Everything else is forwarded unchanged (non-streaming only). From Python use ``fault_proxy()``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import subprocess
import sys
from collections import Counter, deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse

import httpx

_REASONS = {200: "OK", 401: "Unauthorized", 404: "Not Found", 411: "Length Required"}
_REASONS |= {429: "Too Many Requests", 500: "Internal Server Error", 502: "Bad Gateway"}
# Hop-by-hop and length headers are the proxy's own business; httpx already decoded the body.
_SKIP_HEADERS = {"host", "content-length", "connection", "transfer-encoding", "content-encoding"}
_SKIP_HEADERS |= {"keep-alive", "accept-encoding"}
FAULT_KINDS = ("429", "500", "hang", "drop", "trim")


@dataclass
class Request:
    """One parsed HTTP/1.1 request."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Fault:
    """A queued fault and how many more requests it applies to."""

    kind: str
    count: int
    options: dict[str, Any] = field(default_factory=dict)


async def read_request(reader: asyncio.StreamReader) -> Request | None:
    """Read one request; None when the client closed the connection."""
    line = await reader.readline()
    if not line.strip():
        return None
    method, path, _version = line.decode("latin-1").split(" ", 2)
    headers: dict[str, str] = {}
    while (raw := await reader.readline()) not in (b"\r\n", b"\n", b""):
        name, _, value = raw.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    body = await reader.readexactly(length) if length else b""
    return Request(method, path, headers, body)


def encode_response(status: int, body: bytes, headers: dict[str, str] | None = None) -> bytes:
    """An HTTP/1.1 response with a Content-Length, keeping the connection open."""
    lines = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Status')}"]
    merged = {"content-type": "application/json"} | (headers or {})
    lines += [f"{name}: {value}" for name, value in merged.items()]
    lines += [f"content-length: {len(body)}", "connection: keep-alive", "", ""]
    return "\r\n".join(lines).encode("latin-1") + body


def error_body(message: str, kind: str, code: str | None = None) -> bytes:
    """An OpenAI-style error body."""
    return json.dumps({"error": {"message": message, "type": kind, "code": code}}).encode()


class FaultProxy:
    """The proxy's state and request handling (see the module docstring)."""

    def __init__(self, upstream: str, latency_s: float = 0.0, api_key: str | None = None) -> None:
        parsed = urlparse(upstream)
        self.upstream = f"{parsed.scheme}://{parsed.netloc}"
        self.latency_s = latency_s
        self.api_key = api_key
        self.faults: deque[Fault] = deque()
        self.received = 0
        self.forwarded = 0
        self.other = 0
        self.injected: Counter[str] = Counter()
        # Idle upstream connections are dropped before uvicorn's 5 s keep-alive timeout
        # closes them: reusing one just as the server closes it ends in a reset (ReadError).
        self.client = httpx.AsyncClient(
            base_url=self.upstream,
            timeout=None,
            limits=httpx.Limits(
                max_connections=512, max_keepalive_connections=512, keepalive_expiry=2.0
            ),
        )

    def _next_fault(self) -> Fault | None:
        if not self.faults:
            return None
        fault = self.faults[0]
        fault.count -= 1
        if fault.count <= 0:
            self.faults.popleft()
        self.injected[fault.kind] += 1
        return fault

    def _control(self, request: Request) -> tuple[int, dict[str, Any]]:
        data = json.loads(request.body or b"{}")
        if request.path == "/_stats":
            return 200, {
                "received": self.received,
                "forwarded": self.forwarded,
                "other": self.other,
                "faults": dict(self.injected),
                "queued": [(f.kind, f.count) for f in self.faults],
            }
        if request.path == "/_reset":
            self.faults.clear()
            self.received = self.forwarded = self.other = 0
            self.injected.clear()
            return 200, {"ok": True}
        if request.path == "/_config":
            self.latency_s = float(data.get("latency_s", self.latency_s))
            if "api_key" in data:
                self.api_key = data["api_key"]
            return 200, {"ok": True}
        if request.path == "/_faults":
            kind = str(data.pop("kind"))
            if kind not in FAULT_KINDS:
                return 400, {"error": f"unknown fault {kind!r}; one of {FAULT_KINDS}"}
            self.faults.append(Fault(kind, int(data.pop("count", 1)), data))
            return 200, {"ok": True}
        return 404, {"error": f"unknown control path {request.path}"}

    async def _forward(self, request: Request) -> tuple[int, bytes, dict[str, str]]:
        headers = {k: v for k, v in request.headers.items() if k not in _SKIP_HEADERS}
        try:
            reply = await self.client.request(
                request.method, request.path, content=request.body, headers=headers
            )
        except httpx.HTTPError as error:
            return 502, error_body(f"upstream failed: {error!r}", "proxy_error"), {}
        out = {k: v for k, v in reply.headers.items() if k.lower() not in _SKIP_HEADERS}
        return reply.status_code, reply.content, out

    async def handle(
        self, request: Request, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> bool:
        """Answer one request; False when the connection must be closed afterwards."""
        if request.path.startswith("/_"):
            status, payload = self._control(request)
            writer.write(encode_response(status, json.dumps(payload).encode()))
            return True
        if self.api_key is not None:
            given = request.headers.get("authorization", "")
            if given != f"Bearer {self.api_key}":
                body = error_body("Incorrect API key provided.", "invalid_request_error", "401")
                writer.write(encode_response(401, body))
                return True
        if not request.path.rstrip("/").endswith("/chat/completions"):
            self.other += 1
            status, body, headers = await self._forward(request)
            writer.write(encode_response(status, body, headers))
            return True
        self.received += 1
        if self.latency_s > 0:
            await asyncio.sleep(self.latency_s)
        fault = self._next_fault()
        kind, options = (fault.kind, fault.options) if fault else (None, {})
        if kind == "429":
            retry_after = str(options.get("retry_after", "1"))
            body = error_body("Rate limit reached (injected).", "rate_limit_error")
            writer.write(encode_response(429, body, {"retry-after": retry_after}))
            return True
        if kind == "500":
            writer.write(encode_response(500, error_body("Injected failure.", "server_error")))
            return True
        if kind == "hang":
            # Stay silent until the client gives up and closes the connection.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(reader.read(), float(options.get("hang_s", 600)))
            return False
        if kind == "drop":
            return False
        status, body, headers = await self._forward(request)
        if status == 200:
            self.forwarded += 1
        if kind == "trim" and status == 200:
            data = json.loads(body)
            data["choices"] = data["choices"][: int(options.get("trim_to", 1))]
            body = json.dumps(data).encode()
        writer.write(encode_response(status, body, headers))
        return True

    async def serve_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        """Serve keep-alive requests on one connection until it closes or a fault drops it."""
        try:
            while (request := await read_request(reader)) is not None:
                keep = await self.handle(request, reader, writer)
                await writer.drain()
                if not keep:
                    break
        except (ConnectionError, asyncio.IncompleteReadError, ValueError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()


async def _main(args: argparse.Namespace) -> None:
    proxy = FaultProxy(args.upstream, args.latency, args.api_key)
    server = await asyncio.start_server(
        proxy.serve_connection, "127.0.0.1", args.port, backlog=1024
    )
    port = server.sockets[0].getsockname()[1]
    print(f"READY {port}", flush=True)
    async with server:
        await server.serve_forever()


@dataclass
class ChildHandle:
    """A running loopback server child (see ``ready_child``): its base URL and process."""

    base: str
    process: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        """Base URL for an OpenAI client (``.../v1``)."""
        return f"{self.base}/v1"


class ProxyHandle(ChildHandle):
    """A running proxy process: its URLs and its control endpoints."""

    def _post(self, path: str, payload: dict[str, Any]) -> dict[str, Any]:
        reply = httpx.post(f"{self.base}{path}", json=payload, timeout=10)
        reply.raise_for_status()
        return dict(reply.json())

    def fault(self, kind: str, count: int = 1, **options: Any) -> None:
        """Queue ``kind`` for the next ``count`` chat-completion requests."""
        self._post("/_faults", {"kind": kind, "count": count, **options})

    def configure(self, **settings: Any) -> None:
        """Set ``latency_s`` and/or ``api_key`` (None removes the key check)."""
        self._post("/_config", settings)

    def reset(self) -> None:
        """Clear queued faults and counters."""
        self._post("/_reset", {})

    def stats(self) -> dict[str, Any]:
        """Counters: received, forwarded, other, faults, queued."""
        return dict(httpx.get(f"{self.base}/_stats", timeout=10).json())


@contextlib.contextmanager
def fault_proxy(
    upstream: str, *, latency_s: float = 0.0, api_key: str | None = None
) -> Iterator[ProxyHandle]:
    """Start the proxy as a child process on a free loopback port; stop it afterwards."""
    cmd = [sys.executable, __file__, "--upstream", upstream, "--latency", str(latency_s)]
    if api_key is not None:
        cmd += ["--api-key", api_key]
    with ready_child(cmd, "fault proxy") as (url, process):
        yield ProxyHandle(url, process)


@contextlib.contextmanager
def ready_child(cmd: list[str], what: str) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """Run a loopback server child that prints ``READY <port>`` once it listens; yield its URL
    and process, and stop it afterwards (terminate, then kill after 10 s)."""
    process = subprocess.Popen(cmd, stdout=subprocess.PIPE)
    try:
        assert process.stdout is not None
        line = process.stdout.readline().decode().split()
        if len(line) != 2 or line[0] != "READY":
            raise RuntimeError(f"{what} did not start (exit code {process.poll()})")
        yield f"http://127.0.0.1:{line[1]}", process
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def main() -> None:
    """Command-line entry: parse arguments and serve until killed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--upstream", required=True, help="server URL, e.g. http://h:p/v1")
    parser.add_argument("--port", type=int, default=0, help="0 = a free port (printed)")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added per request")
    parser.add_argument("--api-key", default=None, help="require this bearer key (else 401)")
    asyncio.run(_main(parser.parse_args()))


if __name__ == "__main__":
    main()
