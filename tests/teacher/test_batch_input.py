"""The Batch API input lines: the online body per group of samples, the budget, the file limits."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mindmirror.config import TeacherConfig
from mindmirror.requests.cache import ResponseCache
from mindmirror.requests.engine import RequestEngine
from mindmirror.requests.limits import request_seed
from mindmirror.requests.types import Messages, Prompt, Reply, Sampling
from mindmirror.teacher import batch_input
from mindmirror.teacher.batch_input import ENDPOINT, input_chunks, request_lines

SAMPLING = Sampling(temperature=0.7, top_p=1.0, max_tokens=10)


class NoCalls:
    """A backend that must not be called: building batch lines sends nothing."""

    model = "m"

    async def complete(
        self, messages: Messages, n: int, sampling: Sampling, seed: int | None = None
    ) -> Reply:
        raise AssertionError("a batch line was sent online")


def engine(tmp_path: Path, **settings: object) -> tuple[RequestEngine, TeacherConfig]:
    cfg = TeacherConfig(model="m", **settings)  # type: ignore[arg-type]
    return RequestEngine(NoCalls(), ResponseCache(tmp_path / "cache.sqlite"), cfg), cfg


def prompt(name: str, n: int) -> Prompt:
    return Prompt(("cot", name), [{"role": "user", "content": f"Q {name}"}], n, SAMPLING, "v1")


def test_lines_carry_the_online_body_grouped_by_use_n(tmp_path: Path) -> None:
    eng, cfg = engine(tmp_path, use_n=True, send_seed=True)
    lines = request_lines(eng, [(prompt("a", 3), [1, 2])], cfg)
    assert [line.custom_id for line in lines] == ["r0"]
    keys = [eng._key(prompt("a", 3), index) for index in (1, 2)]
    assert lines[0].keys == keys and lines[0].indices == [1, 2]
    assert lines[0].body["n"] == 2 and lines[0].body["seed"] == request_seed(keys[0])
    assert lines[0].body["max_tokens"] == 10 and lines[0].body["model"] == "m"

    single, cfg = engine(tmp_path / "b", use_n=False, send_seed=False)
    lines = request_lines(single, [(prompt("a", 3), [1, 2])], cfg)
    assert [(line.indices, line.body["n"]) for line in lines] == [([1], 1), ([2], 1)]
    assert "seed" not in lines[0].body


def test_a_budget_keeps_only_the_lines_whose_batch_priced_worst_case_fits(
    tmp_path: Path,
) -> None:
    prices = {"price_input_per_mtok": 0.0, "price_output_per_mtok": 1e6}  # $1 per output token
    # Each line's worst case: 10 output tokens at half price = $5; $12 holds two lines.
    eng, cfg = engine(tmp_path, use_n=False, budget_usd=12.0, **prices)
    lines = request_lines(eng, [(prompt("a", 4), [0, 1, 2, 3])], cfg)
    assert [line.indices for line in lines] == [[0], [1]]


def test_chunks_stay_within_the_line_and_byte_limits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    eng, cfg = engine(tmp_path, use_n=False)
    lines = request_lines(eng, [(prompt("a", 5), [0, 1, 2, 3, 4])], cfg)
    monkeypatch.setattr(batch_input, "MAX_LINES", 2)
    chunks = input_chunks(lines)
    assert [len(chunk) for chunk in chunks] == [2, 2, 1]
    record = json.loads(chunks[0][0][1])
    assert record["url"] == ENDPOINT and record["custom_id"] == "r0"
    assert record["body"] == lines[0].body
    size = len(chunks[0][0][1])
    monkeypatch.setattr(batch_input, "MAX_LINES", 50)
    monkeypatch.setattr(batch_input, "MAX_BYTES", 2 * size + 1)
    assert [len(chunk) for chunk in input_chunks(lines)] == [2, 2, 1]
