"""`bench/verdict_fallbacks.py`: the verdicts transformers gave, read from a run's cache."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from mindmirror.errors import UserError
from mindmirror.requests.cache import ResponseCache
from mindmirror.requests.types import Usage

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))
from verdict_fallbacks import count_fallbacks  # noqa: E402

WORDS = [" correct", " wrong", " uncertain"]


def test_unreadable_verdict_replies_are_counted_per_model(tmp_path: Path) -> None:
    path = tmp_path / "samples.sqlite"
    readable = {" correct": -0.1, " wrong": -2.5, " uncertain": -6.0, " the": -7.0}
    far_down = {" the": -0.1, " a": -0.5, " correct": -3.0}  # two words below the list's floor
    with ResponseCache(path, label="student") as cache:
        for i, (model, top) in enumerate(
            [("judge", readable), ("judge", readable), ("student", far_down), ("student", readable)]
        ):
            payload = json.dumps(
                {"text": " correct", "token_logprobs": [-0.1], "top_logprobs": top}
            )
            cache.put(f"v{i}", payload, Usage(1, 1), model=model)
        sampled = json.dumps({"text": "3 + 4 = 7.", "token_logprobs": [-0.2, -0.1]})
        cache.put("s0", sampled, Usage(1, 2), model="student")
        greedy = json.dumps({"text": "7", "token_logprobs": [-0.3], "top_logprobs": {}})
        cache.put("a0", greedy, Usage(1, 1), model="student")  # llama.cpp's answer replies
    assert count_fallbacks(path, WORDS) == {
        "judge": {"verdicts": 2, "judged_by_transformers": 0},
        "student": {"verdicts": 2, "judged_by_transformers": 1},
    }
    with pytest.raises(UserError, match="no sample cache"):
        count_fallbacks(tmp_path / "missing.sqlite", WORDS)
