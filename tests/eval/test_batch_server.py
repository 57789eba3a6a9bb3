"""The batched llama.cpp server: real HTTP on loopback, the embedded GGUF, many sequences at once.

What it must do that llama-cpp-python's server does not: decode concurrent requests (and a
request's ``n`` samples) together, while every answer stays what that request alone would get.
"""

from __future__ import annotations

import asyncio
import importlib.util
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from mindmirror.embedded import llama_server
from mindmirror.student.batch_server import BadRequest, batch_server, parse_request
from mindmirror.student.llama_batch import BatchDecoder, Refused, Request
from mindmirror.student.nucleus import nucleus_mass
from mindmirror.student.server import LLAMA_CPP_NEUTRAL
from mindmirror.threads import _server_threads

needs_llama = pytest.mark.skipif(
    importlib.util.find_spec("llama_cpp") is None,
    reason="needs llama-cpp-python[server] (pip install -e '.[embedded]')",
)
PROMPTS = [
    "Question: Tom has 12 apples and buys 7 more. How many apples does he have?\nAnswer:",
    "Question: A box holds 6 eggs. How many eggs are in 4 boxes?\nAnswer:",
    "Question: Mia reads 15 pages a day. How many pages does she read in 3 days?\nAnswer:",
]


def _tokens(text: str) -> list[int]:
    return [ord(c) for c in text]


def test_requests_are_read_field_by_field() -> None:
    request = parse_request(
        {"prompt": ["ab"], "n": 3, "max_tokens": 9, "temperature": 0.5, "seed": 4, "logprobs": 2}
        | LLAMA_CPP_NEUTRAL,
        _tokens,
        parallel=4,
    )
    assert request.prompt == [97, 98] and request.n == 3 and request.max_tokens == 9
    assert request.seed == 4 and request.logprobs and request.top_logprobs == 2
    assert not parse_request({"prompt": "a"}, _tokens, 4).logprobs
    scored = parse_request({"prompt": "a", "continuations": [[5, 2], [7]]}, _tokens, 4)
    assert scored.continuations == [[5, 2], [7]]
    assert parse_request({"prompt": "a"}, _tokens, 4).continuations == []


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"prompt": 3}, "prompt"),
        ({"prompt": ["a", "b"]}, "prompt"),
        ({"prompt": "a", "n": 5}, r"\bn must"),
        ({"prompt": "a", "n": 1.5}, r"\bn must"),
        ({"prompt": "a", "logprobs": -1}, "logprobs"),
        ({"prompt": "a", "best_of": 2}, "best_of"),
        ({"prompt": "a", "stream": True}, "stream"),
        ({"prompt": "a", "presence_penalty": 0.5}, "presence_penalty"),
        ({"prompt": "a", "temperature": -1}, "temperature"),
        ({"prompt": "a", "top_p": 1.5}, "top_p"),
        ({"prompt": "a", "top_k": 40}, "top_k"),
        ({"prompt": "a", "repeat_penalty": 1.1}, "repeat_penalty"),
        ({"prompt": "a", "stop": ["\n"]}, "stop"),
        ({"prompt": "a", "seed": "x"}, "seed"),
        ({"prompt": "a", "logprobs": True}, "logprobs"),
        ({"prompt": "a", "continuations": [5]}, "continuations"),
        ({"prompt": "a", "continuations": []}, "continuations"),
        ({"prompt": "a", "continuations": [[]]}, "continuations"),
        ({"prompt": "a", "continuations": [[-1]]}, "continuations"),
        ({"prompt": "a", "continuations": [[True]]}, "continuations"),
        ({"prompt": "a", "continuations": [[1]] * 17}, "continuations"),
        ({"prompt": "a", "continuations": [[1]], "n": 2}, "n must be 1"),
        ({"prompt": "a", "continuations": [[1]], "logprobs": 5}, "logprobs"),
    ],
)
def test_what_it_cannot_honour_is_refused_by_name(body: dict[str, Any], field: str) -> None:
    with pytest.raises(BadRequest, match=field):
        parse_request(body, _tokens, parallel=4)


@pytest.fixture(scope="module")
def batch_url(gguf_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if importlib.util.find_spec("llama_cpp") is None:
        pytest.skip("needs llama-cpp-python[server] (pip install -e '.[embedded]')")
    log = tmp_path_factory.mktemp("batch") / "server.log"
    with batch_server(gguf_path, alias="tiny", n_ctx=256, parallel=4, log_path=log) as url:
        yield url


def _complete(url: str, **body: Any) -> httpx.Response:
    return httpx.post(f"{url}/completions", json={"model": "tiny", **body}, timeout=300)


async def _together(url: str, bodies: list[dict[str, Any]]) -> list[dict[str, Any]]:
    async with httpx.AsyncClient(timeout=300) as client:
        replies = await asyncio.gather(
            *[client.post(f"{url}/completions", json={"model": "tiny", **b}) for b in bodies]
        )
    for reply in replies:
        reply.raise_for_status()
    return [reply.json() for reply in replies]


@needs_llama
@pytest.mark.server
def test_greedy_text_and_log_probabilities_are_llama_cpps_own(
    batch_url: str, gguf_path: Path, tmp_path: Path
) -> None:
    body = {"max_tokens": 24, "temperature": 0, "logprobs": 5} | LLAMA_CPP_NEUTRAL
    # All three at once, so each shares the batch with the others.
    ours = asyncio.run(_together(batch_url, [{"prompt": p} | body for p in PROMPTS]))
    with llama_server(gguf_path, n_ctx=256, n_threads=1, log_path=tmp_path / "log") as url:
        theirs = [_complete(url, prompt=p, **body).json() for p in PROMPTS]
    for mine, reference in zip(ours, theirs, strict=True):
        (a,), (b,) = mine["choices"], reference["choices"]
        assert a["text"] == b["text"]
        assert a["logprobs"]["token_logprobs"][:5] == pytest.approx(
            b["logprobs"]["token_logprobs"][:5], abs=1e-3
        )
        top_a, top_b = a["logprobs"]["top_logprobs"][0], b["logprobs"]["top_logprobs"][0]
        assert max(top_a, key=top_a.get) == max(top_b, key=top_b.get)
        # The end token is counted and carries a log-probability (transformers counts it).
        ended = a["finish_reason"] == "stop"
        used = mine["usage"]["completion_tokens"]
        assert used == reference["usage"]["completion_tokens"] + ended
        assert len(a["logprobs"]["token_logprobs"]) == used


@needs_llama
@pytest.mark.server
def test_more_requests_than_slots_all_finish_with_their_own_seeded_samples(
    batch_url: str,
) -> None:
    body = {"max_tokens": 16, "temperature": 0.9, "n": 2, "logprobs": 0}
    # 6 requests of 2 samples on 4 slots: they queue, and each gets its n samples.
    bodies = [{"prompt": PROMPTS[i % 3], "seed": 100 + i} | body for i in range(6)]
    replies = asyncio.run(_together(batch_url, bodies))
    texts = [[c["text"] for c in r["choices"]] for r in replies]
    assert all(len(t) == 2 for t in texts)
    assert len({t for row in texts for t in row}) > 6  # seeds draw different samples
    for reply in replies:
        for choice in reply["choices"]:
            logprobs = choice["logprobs"]["token_logprobs"]
            assert len(logprobs) == len(choice["logprobs"]["tokens"]) <= 16
            assert all(lp <= 0 for lp in logprobs)
            assert choice["finish_reason"] in ("stop", "length")
    # Alone, the same request draws the same samples every time.
    alone = [_complete(batch_url, **bodies[0]).json()["choices"] for _ in range(2)]
    assert [c["text"] for c in alone[0]] == [c["text"] for c in alone[1]]


@needs_llama
@pytest.mark.server
def test_a_narrow_nucleus_leaves_one_token_of_probability_one(batch_url: str) -> None:
    reply = _complete(
        batch_url, prompt=PROMPTS[1], max_tokens=8, temperature=1.0, top_p=0.01, logprobs=0
    ).json()
    assert reply["choices"][0]["logprobs"]["token_logprobs"] == pytest.approx([0.0] * 8)


def _nucleus_by_full_sort(weights: np.ndarray, top_p: float) -> float:
    ranked = np.sort(weights)[::-1]
    kept = int(np.searchsorted(np.cumsum(ranked) / weights.sum(), top_p)) + 1
    return float(ranked[:kept].sum())


@pytest.mark.parametrize("temperature", [0.3, 1.0, 3.0])
def test_the_nucleus_mass_is_the_full_sorts_number(temperature: float) -> None:
    """The partial sort gives exactly the full sort's mass, for peaked and for flat
    distributions (nuclei of one word to thousands), ties and a nucleus of every word."""
    generator = np.random.default_rng(0)
    cases = [np.exp((generator.standard_normal(49152) * 4) / temperature) for _ in range(5)]
    cases += [np.ones(1000), np.array([5.0, 5.0, 1.0, 1.0, 1.0])]
    for weights in cases:
        for top_p in (0.01, 0.5, 0.9, 0.95, 0.999, 0.9999999):
            exact = _nucleus_by_full_sort(weights, top_p)
            assert nucleus_mass(weights, weights.sum(), top_p) == exact


@needs_llama
@pytest.mark.server
def test_bad_requests_get_400_naming_the_problem_and_the_server_lives_on(
    batch_url: str,
) -> None:
    too_long = _complete(batch_url, prompt="word " * 300, max_tokens=8)
    assert too_long.status_code == 400 and "context" in too_long.json()["error"]["message"]
    assert _complete(batch_url, prompt="a", n=9).status_code == 400
    broken = httpx.post(f"{batch_url}/completions", content=b"{", timeout=30)
    assert broken.status_code == 400
    assert _complete(batch_url, prompt=PROMPTS[0], max_tokens=2).status_code == 200
    # A running batched server counts, with its threads, in the plans of later commands.
    port = batch_url.split(":")[-1].split("/")[0]
    found = []
    for entry in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            argv = [a.decode() for a in entry.read_bytes().split(b"\0") if a]
        except OSError:
            continue
        if "mindmirror.student.batch_server" in argv and port in argv:
            found.append(_server_threads(argv, cores=2))
    assert found == [1]


@needs_llama
def test_a_failed_step_fails_its_requests_and_the_decoder_goes_on(
    gguf_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import llama_cpp

    decoder = BatchDecoder(gguf_path, parallel=2, n_ctx=64, threads=1)
    thread = decoder.start()
    request = Request(decoder.tokenize(PROMPTS[0]), max_tokens=4, temperature=0.0)
    with monkeypatch.context() as patch:
        patch.setattr(llama_cpp, "llama_decode", lambda ctx, batch: 1)
        failed = decoder.submit(request)
        with pytest.raises(RuntimeError, match="llama_decode"):
            failed.result(timeout=60)
    (choice,) = decoder.submit(request).result(timeout=60)
    assert len(choice.tokens) == 4 and choice.text
    with pytest.raises(Refused, match="empty"):
        decoder.submit(Request([])).result(timeout=5)
    decoder.stop()
    thread.join(timeout=60)
    assert not thread.is_alive()
    with pytest.raises(RuntimeError, match="stopped"):
        decoder.submit(request).result(timeout=5)


@needs_llama
def test_top_p_log_probabilities_take_the_nucleus_from_nucleus_mass(
    gguf_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mindmirror.student import llama_batch

    calls: list[float] = []

    def counted(weights: np.ndarray, total: float, top_p: float, first: int = 256) -> float:
        calls.append(top_p)
        return nucleus_mass(weights, total, top_p, first)

    monkeypatch.setattr(llama_batch, "nucleus_mass", counted)
    decoder = BatchDecoder(gguf_path, parallel=2, n_ctx=64, threads=1)
    thread = decoder.start()
    prompt = decoder.tokenize(PROMPTS[0])
    request = Request(prompt, n=2, max_tokens=6, temperature=0.8, top_p=0.9, seed=3, logprobs=True)
    choices = decoder.submit(request).result(timeout=60)
    decoder.stop()
    thread.join(timeout=60)
    tokens = sum(len(c.tokens) for c in choices)
    assert calls == [0.9] * tokens
    assert all(lp <= 0.0 for c in choices for lp in c.token_logprobs)


@needs_llama
def test_continuations_are_scored_as_the_greedy_path_and_the_cache_is_cut_back(
    gguf_path: Path,
) -> None:
    """A scoring request gives each continuation the sum of its tokens' log-probabilities
    (here checked against the decoder's own greedy path), and cutting the KV cache back to the
    prompt after each one leaves the next as if it came first."""
    decoder = BatchDecoder(gguf_path, parallel=3, n_ctx=96, threads=1)
    thread = decoder.start()
    prompt = decoder.tokenize(PROMPTS[0])
    greedy = Request(prompt, max_tokens=4, temperature=0.0, logprobs=True)
    other = Request(decoder.tokenize(PROMPTS[1]), max_tokens=6, temperature=0.9, seed=1)
    (path,) = decoder.submit(greedy).result(timeout=60)
    tokens = path.tokens
    assert len(tokens) == 4
    scoring = Request(prompt, max_tokens=1, continuations=[tokens, tokens[:1], [7, 8], tokens])
    # Scored beside a sampling request, so its steps share batches with another sequence.
    both = [decoder.submit(scoring), decoder.submit(other)]
    (scored,), _ = [future.result(timeout=60) for future in both]
    whole, first, _, again = scored.continuation_logprobs
    assert whole == pytest.approx(sum(path.token_logprobs), abs=1e-3)
    assert first == pytest.approx(path.token_logprobs[0], abs=1e-4)
    assert again == pytest.approx(whole, abs=1e-4)
    assert scored.tokens == [] and scored.text == ""
    with pytest.raises(Refused, match="continuations"):
        decoder.submit(Request(prompt, continuations=[[10**7]])).result(timeout=5)
    decoder.stop()
    thread.join(timeout=60)


@needs_llama
def test_a_sequence_moved_into_a_gap_goes_on_as_if_it_had_stayed(gguf_path: Path) -> None:
    """When the first of three sequences ends, the third moves down into its slot (its KV
    stream copied) and its greedy text and log-probabilities are those it gets alone; the slot
    it left is clean for the next request."""
    decoder = BatchDecoder(gguf_path, parallel=3, n_ctx=96, threads=1)
    prompts = [decoder.tokenize(p) for p in PROMPTS]
    lengths = [2, 12, 12]  # the first ends early, so slot 0 empties below two running ones
    together = [
        decoder.submit(Request(p, max_tokens=n, temperature=0.0, logprobs=True))
        for p, n in zip(prompts, lengths, strict=True)
    ]
    thread = decoder.start()  # all three queued before it starts: admitted into slots 0, 1, 2
    shared = [future.result(timeout=60)[0] for future in together]
    assert decoder.moves == 1
    # One request of 3 greedy samples takes slots 0, 1 and 2 at once, the one moved out of too.
    again = decoder.submit(Request(prompts[2], n=3, max_tokens=12, temperature=0.0, logprobs=True))
    references = again.result(timeout=60)
    decoder.stop()
    thread.join(timeout=60)
    for reference in references:
        assert shared[2].tokens == reference.tokens
        assert shared[2].token_logprobs == pytest.approx(reference.token_logprobs, abs=1e-3)


@needs_llama
@pytest.mark.server
def test_a_scoring_request_over_http_returns_continuation_logprobs(batch_url: str) -> None:
    body = {"prompt": PROMPTS[2], "max_tokens": 1, "temperature": 0, "continuations": [[28], [29]]}
    (choice,) = _complete(batch_url, **body).json()["choices"]
    assert len(choice["continuation_logprobs"]) == 2
    assert all(lp < 0 for lp in choice["continuation_logprobs"])
    (plain,) = _complete(batch_url, prompt=PROMPTS[2], max_tokens=1).json()["choices"]
    assert "continuation_logprobs" not in plain
