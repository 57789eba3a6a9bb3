"""A small OpenAI Batch API server in front of a real OpenAI-compatible server.

It speaks the Files and Batches endpoints the way OpenAI does (upload a JSONL input file,
create a batch, poll it, download its output and error files) and runs each line of a batch by
forwarding it to the upstream server (the llama.cpp server in tests), so the batch path of
``teach`` is exercised against real completions. Everything else (``/v1/models``, online
``/v1/chat/completions``) is forwarded unchanged and counted. A separate process, like
``tests/fault_proxy.py``, so a test can SIGKILL its client while a batch is in flight.

Run alone::

    python tests/batch_server.py --upstream http://127.0.0.1:8080/v1 [--port 0]
        # prints "READY <port>" once it listens

Control endpoints (JSON, same port):

- ``POST /_config``: ``{"hold": true}`` keeps new and running batches ``in_progress`` without
  running a line until ``{"hold": false}``; ``{"fail_lines": [0, 3]}`` answers those lines
  (0-based, per batch) with a 500 in the error file; ``{"expire_after": 4}`` runs that many
  lines, then expires the batch (the rest go to the error file as ``batch_expired``).
- ``POST /_reset``: clears settings, batches, files and counters.
- ``GET /_stats``: ``{"batches_created", "lines_run", "online", "retrieves", "files"}``:
  ``online`` counts chat completions sent outside batches.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.fault_proxy import (
    ChildHandle,
    Request,
    encode_response,
    error_body,
    read_request,
    ready_child,
)


def parse_multipart(content_type: str, body: bytes) -> dict[str, tuple[str | None, bytes]]:
    """Form fields of a ``multipart/form-data`` body: name -> (filename, data)."""
    boundary = content_type.split("boundary=", 1)[1].strip().strip('"').encode()
    fields: dict[str, tuple[str | None, bytes]] = {}
    for part in body.split(b"--" + boundary):
        head, sep, data = part.partition(b"\r\n\r\n")
        if not sep:
            continue
        name = filename = None
        for line in head.decode("latin-1").split("\r\n"):
            if line.lower().startswith("content-disposition"):
                for item in line.split(";"):
                    key, _, value = item.strip().partition("=")
                    if key == "name":
                        name = value.strip('"')
                    elif key == "filename":
                        filename = value.strip('"')
        if name is not None:
            fields[name] = (filename, data.removesuffix(b"\r\n"))
    return fields


class BatchServer:
    """The server's state and request handling (see the module docstring)."""

    def __init__(self, upstream: str) -> None:
        parsed = urlparse(upstream)
        self.upstream = f"{parsed.scheme}://{parsed.netloc}"
        self.client = httpx.AsyncClient(base_url=self.upstream, timeout=None)
        self.reset()

    def reset(self) -> None:
        """Forget every file, batch, setting and counter."""
        self.files: dict[str, dict[str, Any]] = {}
        self.batches: dict[str, dict[str, Any]] = {}
        self.fail_lines: set[int] = set()
        self.expire_after: int | None = None
        self.released = asyncio.Event()
        self.released.set()
        self.counts = {"batches_created": 0, "lines_run": 0, "online": 0, "retrieves": 0}

    # ------------------------------------------------------------------ files and batches

    def _file(self, data: bytes, filename: str, purpose: str) -> dict[str, Any]:
        meta = {
            "id": f"file-{uuid.uuid4().hex[:12]}",
            "object": "file",
            "bytes": len(data),
            "created_at": int(time.time()),
            "filename": filename,
            "purpose": purpose,
            "status": "processed",
        }
        self.files[meta["id"]] = {"meta": meta, "data": data}
        return meta

    def _create_batch(self, payload: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        source = self.files.get(payload.get("input_file_id", ""))
        if source is None:
            return 404, {"error": {"message": "no such input file", "type": "invalid_request"}}
        batch = {
            "id": f"batch_{uuid.uuid4().hex[:12]}",
            "object": "batch",
            "endpoint": payload.get("endpoint"),
            "input_file_id": payload["input_file_id"],
            "completion_window": payload.get("completion_window", "24h"),
            "status": "validating",
            "created_at": int(time.time()),
            "output_file_id": None,
            "error_file_id": None,
            "errors": None,
            "metadata": payload.get("metadata"),
            "request_counts": {"total": 0, "completed": 0, "failed": 0},
        }
        self.batches[batch["id"]] = batch
        self.counts["batches_created"] += 1
        lines = [json.loads(line) for line in source["data"].decode().splitlines() if line]
        asyncio.get_running_loop().create_task(self._run_batch(batch, lines))
        return 200, batch

    async def _run_line(self, index: int, line: dict[str, Any]) -> tuple[bool, dict[str, Any]]:
        """One line of a batch: (succeeded, its output or error file entry)."""
        entry: dict[str, Any] = {"id": f"batch_req_{uuid.uuid4().hex[:12]}"}
        entry["custom_id"] = line["custom_id"]
        if index in self.fail_lines:
            body = {"error": {"message": "Injected failure.", "type": "server_error"}}
            entry["response"] = {"status_code": 500, "request_id": "x", "body": body}
            entry["error"] = None
            return False, entry
        reply = await self.client.post(line["url"], json=line["body"])
        self.counts["lines_run"] += 1
        entry["response"] = {
            "status_code": reply.status_code,
            "request_id": uuid.uuid4().hex,
            "body": reply.json(),
        }
        entry["error"] = None
        return reply.status_code == 200, entry

    async def _run_batch(self, batch: dict[str, Any], lines: list[dict[str, Any]]) -> None:
        batch["request_counts"]["total"] = len(lines)
        batch["status"] = "in_progress"
        outputs: list[dict[str, Any]] = []
        errors: list[dict[str, Any]] = []
        expired = False
        for index, line in enumerate(lines):
            await self.released.wait()
            if self.expire_after is not None and index >= self.expire_after:
                expired = True
                message = "This request could not be executed before the window expired."
                errors.append(
                    {
                        "id": f"batch_req_{uuid.uuid4().hex[:12]}",
                        "custom_id": line["custom_id"],
                        "response": None,
                        "error": {"code": "batch_expired", "message": message},
                    }
                )
                continue
            ok, entry = await self._run_line(index, line)
            (outputs if ok else errors).append(entry)
            batch["request_counts"]["completed" if ok else "failed"] += 1
        batch["status"] = "finalizing"
        for name, entries in (("output_file_id", outputs), ("error_file_id", errors)):
            if entries:
                data = "".join(json.dumps(e) + "\n" for e in entries).encode()
                batch[name] = self._file(data, f"{batch['id']}_{name}.jsonl", "batch_output")["id"]
        batch["status"] = "expired" if expired else "completed"

    # ------------------------------------------------------------------ HTTP

    def _control(self, request: Request) -> tuple[int, dict[str, Any]]:
        data = json.loads(request.body or b"{}")
        if request.path == "/_stats":
            return 200, {**self.counts, "files": len(self.files)}
        if request.path == "/_reset":
            self.reset()
            return 200, {"ok": True}
        if request.path == "/_config":
            if "hold" in data:
                (self.released.clear if data["hold"] else self.released.set)()
            if "fail_lines" in data:
                self.fail_lines = set(data["fail_lines"])
            if "expire_after" in data:
                self.expire_after = data["expire_after"]
            return 200, {"ok": True}
        return 404, {"error": f"unknown control path {request.path}"}

    async def _forward(self, request: Request) -> tuple[int, bytes, dict[str, str]]:
        headers = {"content-type": request.headers.get("content-type", "application/json")}
        reply = await self.client.request(
            request.method, request.path, content=request.body, headers=headers
        )
        return reply.status_code, reply.content, {}

    async def route(self, request: Request) -> tuple[int, bytes, dict[str, str]]:
        """Answer one API request: (status, body, extra headers)."""
        path = urlparse(request.path).path.rstrip("/")
        parts = path.split("/")
        if request.method == "POST" and path == "/v1/files":
            fields = parse_multipart(request.headers.get("content-type", ""), request.body)
            filename, data = fields.get("file", (None, b""))
            purpose = fields.get("purpose", (None, b""))[1].decode()
            return 200, json.dumps(self._file(data, filename or "upload", purpose)).encode(), {}
        if path.startswith("/v1/files/") and len(parts) in (4, 5):
            stored = self.files.get(parts[3])
            if stored is None:
                return 404, error_body("no such file", "invalid_request_error"), {}
            if path.endswith("/content"):
                return 200, stored["data"], {"content-type": "application/octet-stream"}
            return 200, json.dumps(stored["meta"]).encode(), {}
        if request.method == "POST" and path == "/v1/batches":
            status, payload = self._create_batch(json.loads(request.body))
            return status, json.dumps(payload).encode(), {}
        if request.method == "GET" and path == "/v1/batches":
            limit = int(parse_qs(urlparse(request.path).query).get("limit", ["20"])[0])
            data = sorted(self.batches.values(), key=lambda b: b["created_at"], reverse=True)
            page = {"object": "list", "data": data[:limit], "has_more": len(data) > limit}
            return 200, json.dumps(page).encode(), {}
        if path.startswith("/v1/batches/") and len(parts) == 4:
            batch = self.batches.get(parts[3])
            if batch is None:
                return 404, error_body("no such batch", "invalid_request_error"), {}
            self.counts["retrieves"] += 1
            return 200, json.dumps(batch).encode(), {}
        if path.endswith("/chat/completions"):
            self.counts["online"] += 1
        return await self._forward(request)

    async def serve_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        """Serve keep-alive requests on one connection until it closes."""
        try:
            while (request := await read_request(reader)) is not None:
                if request.path.startswith("/_"):
                    status, payload = self._control(request)
                    writer.write(encode_response(status, json.dumps(payload).encode()))
                else:
                    status, body, headers = await self.route(request)
                    writer.write(encode_response(status, body, headers))
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, ValueError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()


async def _main(args: argparse.Namespace) -> None:
    server_state = BatchServer(args.upstream)
    server = await asyncio.start_server(server_state.serve_connection, "127.0.0.1", args.port)
    print(f"READY {server.sockets[0].getsockname()[1]}", flush=True)
    async with server:
        await server.serve_forever()


class BatchServerHandle(ChildHandle):
    """A running batch server process: its URL and its control endpoints."""

    def configure(self, **settings: Any) -> None:
        """Set ``hold``, ``fail_lines`` and/or ``expire_after``."""
        httpx.post(f"{self.base}/_config", json=settings, timeout=10).raise_for_status()

    def reset(self) -> None:
        """Forget batches, files, settings and counters."""
        httpx.post(f"{self.base}/_reset", json={}, timeout=10).raise_for_status()

    def stats(self) -> dict[str, Any]:
        """Counters: batches_created, lines_run, online, retrieves, files."""
        return dict(httpx.get(f"{self.base}/_stats", timeout=10).json())


@contextlib.contextmanager
def batch_server(upstream: str) -> Iterator[BatchServerHandle]:
    """Start the server as a child process on a free loopback port; stop it afterwards."""
    cmd = [sys.executable, __file__, "--upstream", upstream]
    with ready_child(cmd, "batch server") as (url, process):
        yield BatchServerHandle(url, process)


def main() -> None:
    """Command-line entry: parse arguments and serve until killed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--upstream", required=True, help="server URL, e.g. http://h:p/v1")
    parser.add_argument("--port", type=int, default=0, help="0 = a free port (printed)")
    asyncio.run(_main(parser.parse_args()))


if __name__ == "__main__":
    main()
