"""The local backend: the embedded SmolLM2 GGUF loaded by transformers, batched sampling."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from mindmirror.errors import UserError
from mindmirror.requests.types import Sampling
from mindmirror.teacher.backends.local import LocalBackend

MESSAGES = [
    [{"role": "user", "content": "What is 2 + 3?"}],
    [{"role": "user", "content": "Name a colour."}],
    [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Say hi."}],
]


@pytest.mark.slow
def test_local_backend_batches_concurrent_requests(gguf_path: Path) -> None:
    backend = LocalBackend(str(gguf_path), batch_size=2)
    calls: list[int] = []
    generate = backend._lm.generate

    def counting_generate(**kwargs: Any) -> Any:
        calls.append(int(kwargs["input_ids"].shape[0]))
        return generate(**kwargs)

    backend._lm.generate = counting_generate
    sampling = Sampling(temperature=0.8, top_p=0.95, max_tokens=6)

    async def go() -> list[Any]:
        return await asyncio.gather(*(backend.complete(m, 2, sampling) for m in MESSAGES))

    replies = asyncio.run(go())
    # Three concurrent prompts with batch_size 2: two generate calls (2 prompts, then 1).
    assert calls == [2, 1]
    for reply in replies:
        assert len(reply.texts) == 2
        assert all(isinstance(text, str) for text in reply.texts)
        assert reply.usage.prompt_tokens > 5
        assert 2 <= reply.usage.completion_tokens <= 12

    greedy = asyncio.run(backend.complete(MESSAGES[0], 3, Sampling(0.0, 1.0, 6)))
    assert len(greedy.texts) == 3 and len(set(greedy.texts)) == 1
    assert greedy.texts[0].strip()


def test_local_backend_missing_gguf_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="GGUF file not found"):
        LocalBackend(str(tmp_path / "absent.gguf"))
