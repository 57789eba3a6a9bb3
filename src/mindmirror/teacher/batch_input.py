"""The input files of the Batch API path: one request line per group of missing samples, with
exactly the body the online path would send, cut into files within OpenAI's per-batch limits."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from mindmirror.requests.limits import estimate_tokens, request_seed
from mindmirror.requests.types import Prompt, Usage

if TYPE_CHECKING:
    from mindmirror.requests.engine import RequestEngine

ENDPOINT = "/v1/chat/completions"
# OpenAI's limits per batch: 50,000 requests and a 200 MB input file (kept well below).
MAX_LINES = 50_000
MAX_BYTES = 190_000_000

Pending = list[tuple[Prompt, list[int]]]


class InputSettings(Protocol):
    """What building the request lines reads; ``mindmirror.config.TeacherConfig`` has all of it."""

    use_n: bool
    send_seed: bool
    budget_usd: float | None
    price_batch_factor: float


@dataclass
class BatchLine:
    """One request line of a batch: ``indices`` of ``prompt``, their cache keys, and the body."""

    custom_id: str
    prompt: Prompt
    indices: list[int]
    keys: list[str]
    body: dict[str, Any]


def request_lines(engine: RequestEngine, pending: Pending, cfg: InputSettings) -> list[BatchLine]:
    """Request lines for ``pending``, within the budget: the body the online path sends."""
    lines: list[BatchLine] = []
    budget = cfg.budget_usd
    left = None if budget is None else budget - engine.stats.cost_usd
    for prompt, missing in pending:
        groups = [missing] if cfg.use_n else [[index] for index in missing]
        for indices in groups:
            keys = [engine._key(prompt, index) for index in indices]
            if left is not None:
                worst = engine.cost(
                    Usage(estimate_tokens(prompt, 0), prompt.sampling.max_tokens * len(indices))
                )
                worst *= cfg.price_batch_factor
                if worst > left:
                    continue
                left -= worst
            body: dict[str, Any] = {
                "model": engine.backend.model,
                "messages": prompt.messages,
                "n": len(indices),
                "temperature": prompt.sampling.temperature,
                "top_p": prompt.sampling.top_p,
                "max_tokens": prompt.sampling.max_tokens,
            }
            if cfg.send_seed:
                body["seed"] = request_seed(keys[0])
            lines.append(BatchLine(f"r{len(lines)}", prompt, list(indices), keys, body))
    return lines


def input_chunks(lines: list[BatchLine]) -> list[list[tuple[BatchLine, bytes]]]:
    """Input files within the per-batch limits of lines and bytes."""
    chunks: list[list[tuple[BatchLine, bytes]]] = [[]]
    size = 0
    for line in lines:
        record = {"custom_id": line.custom_id, "method": "POST", "url": ENDPOINT}
        data = (json.dumps({**record, "body": line.body}, ensure_ascii=False) + "\n").encode()
        if chunks[-1] and (len(chunks[-1]) >= MAX_LINES or size + len(data) > MAX_BYTES):
            chunks.append([])
            size = 0
        chunks[-1].append((line, data))
        size += len(data)
    return [chunk for chunk in chunks if chunk]
