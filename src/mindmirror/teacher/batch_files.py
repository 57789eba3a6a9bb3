"""The files of the Batch API path: the run's batch state (``teacher/batches.json``) and the
lines of a finished batch's output and error files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mindmirror.errors import UserError
from mindmirror.requests.types import Reply, Usage

STATE_SCHEMA = "mindmirror.batches/1"
FILLED = frozenset({"ok", "partial"})


def load_state(path: Path) -> dict[str, Any]:
    """The batch state of a run (``{"schema", "batches": [...]}``; empty when there is none)."""
    if not path.is_file():
        return {"schema": STATE_SCHEMA, "batches": []}
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError:
        raise UserError(
            f"{path} is not valid JSON: restore it, or delete it to forget the batches it lists"
        ) from None
    if state.get("schema") != STATE_SCHEMA:
        raise UserError(f"{path}: unknown schema {state.get('schema')!r} (want {STATE_SCHEMA})")
    return dict(state)


def batch_priced_keys(state: dict[str, Any]) -> set[str]:
    """Cache keys of the samples that batches filled (priced at the batch rate)."""
    keys: set[str] = set()
    for entry in state["batches"]:
        for request in entry["requests"].values():
            if request.get("status") in FILLED:
                keys.update(request["keys"][: request.get("filled", 0)])
    return keys


def output_reply(body: dict[str, Any]) -> Reply:
    """Texts (in choice order) and usage of a chat-completion body from an output file."""
    choices = sorted(body.get("choices") or [], key=lambda choice: choice.get("index", 0))
    texts = [(choice.get("message") or {}).get("content") or "" for choice in choices]
    usage = body.get("usage") or {}
    return Reply(
        texts, Usage(int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0))
    )


def failure_status(line: dict[str, Any]) -> str:
    """The status of a request the batch did not answer: ``expired`` or ``failed: <why>``."""
    error = line.get("error") or {}
    response = line.get("response") or {}
    if error.get("code") == "batch_expired":
        return "expired"
    inner = (response.get("body") or {}).get("error") or {}
    why = error.get("message") or inner.get("message") or f"HTTP {response.get('status_code')}"
    return "failed: " + " ".join(str(why).split())[:200]
