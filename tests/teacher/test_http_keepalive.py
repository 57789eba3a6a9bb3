"""The openai backend drops idle connections before a uvicorn server (vLLM, SGLang, llama.cpp's
Python server: 5 s keep-alive) closes them, so no request is sent on a connection the server is
closing; busy connections are still reused."""

from __future__ import annotations

import asyncio
from typing import Any

from mindmirror.requests.types import Sampling
from mindmirror.teacher.backends import OpenAIBackend
from mindmirror.teacher.backends.openai_http import KEEPALIVE_S
from tests.scripted_teacher import scripted_teacher

SAMPLING = Sampling(0.7, 1.0, 4)
MESSAGES = [{"role": "user", "content": "Say hi."}]


def test_idle_connections_are_not_kept_until_the_server_closes_them() -> None:
    def answer(body: dict[str, Any]) -> tuple[int, str]:
        return 200, "hi"

    async def requests(backend: OpenAIBackend, counts: list[int], teacher: Any) -> None:
        for pause in (0.0, 0.2, KEEPALIVE_S + 0.5):
            await asyncio.sleep(pause)
            await backend.complete(MESSAGES, 1, SAMPLING)
            counts.append(teacher.connections)
        await backend.aclose()

    counts: list[int] = []
    with scripted_teacher(answer) as teacher:
        backend = OpenAIBackend("m", teacher.url, "MINDMIRROR_TEST_NO_KEY", timeout_s=10)
        asyncio.run(requests(backend, counts, teacher))
    # Reused after 0.2 s; a fresh connection after an idle time a 5 s server timeout nears.
    assert counts == [1, 1, 2] and KEEPALIVE_S < 4
