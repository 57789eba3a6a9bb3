"""The student's batched llama.cpp server: OpenAI-compatible completions over ``BatchDecoder``.

``python -m mindmirror.student.batch_server --model student.gguf --alias NAME --port P`` serves
``GET /v1/models`` and ``POST /v1/completions`` on loopback; every request in flight shares
the decoder's batch (``--parallel`` sequence slots), so the request engine's concurrent
requests are decoded together instead of one after another as llama-cpp-python's server does.
``GET /mindmirror/memory`` reports the server process's peak resident memory, so that the
scoring that started it can count it (the server is another process).

The completions fields honoured: ``prompt`` (one string), ``max_tokens``, ``temperature``,
``top_p``, ``n`` (up to ``--parallel``), ``seed`` (sample ``i`` draws with ``seed + i``; a
random one when absent) and ``logprobs`` (the chosen tokens' log-probabilities; with N > 0
also the top N at the first position). One field of mindmirror's own: ``continuations``, a list
of token-id lists (up to ``MAX_CONTINUATIONS`` of up to ``MAX_CONTINUATION_TOKENS`` each), makes
the request score them after the prompt instead of generating (``n`` 1), and its choice carries
``continuation_logprobs``, each one's total log-probability (how the student's verdicts are
read: one prompt pass, exactly what transformers' teacher forcing gives).

The other sampling fields of OpenAI's and llama-cpp-python's servers are accepted only at
their neutral values (``NEUTRAL``) and ``stop``, ``echo``, ``stream`` and the like are refused
(``REFUSED``), so nothing samples differently from what was asked. A bad request gets HTTP 400
naming the field; a failure of the decoder, 500.

``batch_server`` (in the parent) starts it as a child process for a ``with`` block.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi import Request as HttpRequest
from fastapi.responses import JSONResponse

from mindmirror.student.llama_batch import BatchDecoder, Choice, Refused, Request
from mindmirror.student.peak_memory import peak_rss_mb

#: Sampling fields of OpenAI's and llama.cpp's servers, and the value that leaves sampling as
#: asked (the only one accepted).
NEUTRAL = {
    "top_k": 0,
    "min_p": 0.0,
    "repeat_penalty": 1.0,
    "presence_penalty": 0.0,
    "frequency_penalty": 0.0,
    "typical_p": 1.0,
    "tfs_z": 1.0,
    "mirostat_mode": 0,
    "best_of": 1,
}
#: Completions fields this server cannot honour (refused unless empty or false).
REFUSED = ("stop", "echo", "suffix", "logit_bias", "stream", "grammar", "logits_processor")
#: The most continuations one scoring request may ask, and tokens in each.
MAX_CONTINUATIONS = 16
MAX_CONTINUATION_TOKENS = 64
#: Sequence slots decoded together by default (``eval.engine_parallel``'s default too).
PARALLEL = 16
#: Where the server reports its peak resident memory (beside the OpenAI routes, not in them).
MEMORY_ROUTE = "/mindmirror/memory"


class BadRequest(ValueError):
    """A completions request this server cannot honour (HTTP 400)."""


def _field(body: dict[str, Any], name: str, default: float, low: float, high: float) -> Any:
    """``body[name]`` (``default`` when absent) checked against ``[low, high]``; an integer
    where ``default`` is one."""
    value = body.get(name)
    if value is None:
        return default
    kind, noun = (int, "an integer") if isinstance(default, int) else (int | float, "a number")
    if isinstance(value, bool) or not isinstance(value, kind) or not low <= value <= high:
        raise BadRequest(f"{name} must be {noun} between {low:g} and {high:g}, got {value!r}")
    return value


def _continuations(body: dict[str, Any]) -> list[list[int]]:
    """``body["continuations"]``: token-id lists to score (none when absent); ``BadRequest``
    unless it is a list of 1 to ``MAX_CONTINUATIONS`` lists of 1 to ``MAX_CONTINUATION_TOKENS``
    non-negative integers, asked with ``n`` 1."""
    value = body.get("continuations")
    if value is None:
        return []
    problem = BadRequest(
        f"continuations must be a list of 1 to {MAX_CONTINUATIONS} lists of 1 to "
        f"{MAX_CONTINUATION_TOKENS} token ids"
    )
    if not isinstance(value, list) or not 1 <= len(value) <= MAX_CONTINUATIONS:
        raise problem
    for tokens in value:
        if not isinstance(tokens, list) or not 1 <= len(tokens) <= MAX_CONTINUATION_TOKENS:
            raise problem
        if not all(isinstance(t, int) and not isinstance(t, bool) and t >= 0 for t in tokens):
            raise problem
    if body.get("n", 1) != 1:
        raise BadRequest("continuations are scored once: n must be 1")
    if body.get("logprobs") is not None:
        raise BadRequest("logprobs is not given with continuations (their totals are)")
    return value


def parse_request(body: Any, tokenize: Any, parallel: int) -> Request:
    """The ``Request`` a completions body asks for; ``BadRequest`` naming the field."""
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object")
    prompt = body.get("prompt")
    if isinstance(prompt, list) and len(prompt) == 1:
        prompt = prompt[0]
    if not isinstance(prompt, str):
        raise BadRequest("prompt must be one string")
    for name in REFUSED:
        if body.get(name) not in (None, False, [], {}):
            raise BadRequest(f"{name} is not supported by this server")
    for name, neutral in NEUTRAL.items():
        if body.get(name) is not None and body[name] != neutral:
            raise BadRequest(f"{name} is only accepted at {neutral} (sampling as asked)")
    return Request(
        prompt=tokenize(prompt),
        n=_field(body, "n", 1, 1, parallel),
        max_tokens=_field(body, "max_tokens", 16, 1, 1 << 20),
        temperature=float(_field(body, "temperature", 1.0, 0.0, 100.0)),
        top_p=float(_field(body, "top_p", 1.0, 0.0, 1.0)),
        seed=_field(body, "seed", secrets.randbits(31), 0, 1 << 63),
        logprobs=body.get("logprobs") is not None,
        top_logprobs=_field(body, "logprobs", 0, 0, 1000),
        continuations=_continuations(body),
    )


def _logprobs(choice: Choice, decoder: BatchDecoder) -> dict[str, Any]:
    tokens = [decoder.piece(t).decode("utf-8", errors="replace") for t in choice.tokens]
    offsets, offset = [], 0
    for token in tokens:
        offsets.append(offset)
        offset += len(token)
    tops: list[dict[str, float]] = [choice.top_logprobs] + [{} for _ in tokens[1:]]
    return {
        "tokens": tokens,
        "token_logprobs": choice.token_logprobs,
        "top_logprobs": tops if tokens else [],
        "text_offset": offsets,
    }


def response_body(
    model: str, request: Request, choices: list[Choice], decoder: BatchDecoder
) -> dict[str, Any]:
    """The OpenAI ``text_completion`` object for ``choices``."""
    return {
        "id": f"cmpl-{uuid.uuid4().hex}",
        "object": "text_completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": i,
                "text": choice.text,
                "logprobs": _logprobs(choice, decoder) if request.logprobs else None,
                "finish_reason": choice.finish_reason,
            }
            | (
                {"continuation_logprobs": choice.continuation_logprobs}
                if request.continuations
                else {}
            )
            for i, choice in enumerate(choices)
        ],
        "usage": {
            "prompt_tokens": len(request.prompt),
            "completion_tokens": sum(len(c.tokens) for c in choices),
            "total_tokens": len(request.prompt) + sum(len(c.tokens) for c in choices),
        },
    }


def make_app(decoder: BatchDecoder, alias: str) -> FastAPI:
    """The FastAPI app serving ``decoder`` as model ``alias``."""
    app = FastAPI(title="mindmirror batched llama.cpp server")

    def error(status: int, message: str) -> JSONResponse:
        kind = "invalid_request_error" if status == 400 else "server_error"
        return JSONResponse({"error": {"message": message, "type": kind}}, status_code=status)

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        return {"object": "list", "data": [{"id": alias, "object": "model", "owned_by": "local"}]}

    @app.get(MEMORY_ROUTE)
    async def memory() -> dict[str, float | None]:
        return {"peak_rss_mb": peak_rss_mb()}

    @app.post("/v1/completions")
    async def completions(http: HttpRequest) -> Any:
        try:
            body = await http.json()
        except ValueError:
            return error(400, "the body is not JSON")
        try:
            request = parse_request(body, decoder.tokenize, decoder.parallel)
            choices = await asyncio.wrap_future(decoder.submit(request))
        except (BadRequest, Refused) as problem:
            return error(400, str(problem))
        except Exception as problem:  # a failed decoding step: the client may retry
            return error(500, str(problem))
        return response_body(alias, request, choices, decoder)

    return app


def main(argv: list[str] | None = None) -> None:
    """Parse the command line, load the model, serve until killed."""
    import uvicorn

    parser = argparse.ArgumentParser(description="Batched llama.cpp completions server.")
    parser.add_argument("--model", type=Path, required=True, help="GGUF file")
    parser.add_argument("--alias", required=True, help="model id it answers as")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--n-ctx", type=int, default=1024, help="context per sequence")
    parser.add_argument("--parallel", type=int, default=PARALLEL, help="sequence slots")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    decoder = BatchDecoder(
        args.model, parallel=args.parallel, n_ctx=args.n_ctx, threads=args.threads
    )
    decoder.start()
    uvicorn.run(make_app(decoder, args.alias), host=args.host, port=args.port, log_level="warning")


@contextmanager
def batch_server(
    model: Path,
    *,
    alias: str,
    n_ctx: int,
    parallel: int = PARALLEL,
    threads: int = 1,
    log_path: Path | None = None,
    timeout_s: float = 120.0,
    passive_wait: bool = False,
) -> Iterator[str]:
    """Serve the GGUF ``model`` as ``alias`` with this module's batched server for the block;
    yield its base URL (``.../v1``). ``n_ctx`` is the context of each of the ``parallel``
    sequences."""
    from mindmirror.embedded import free_port, log_file, require_llama_cpp, server_process

    require_llama_cpp()
    port = free_port()
    cmd = [
        sys.executable, "-m", "mindmirror.student.batch_server",
        "--model", str(model), "--alias", alias, "--port", str(port),
        "--n-ctx", str(n_ctx), "--parallel", str(parallel), "--threads", str(threads),
    ]  # fmt: skip
    with server_process(
        cmd, port, log_path or log_file(port), timeout_s=timeout_s, passive_wait=passive_wait
    ) as url:
        yield url


if __name__ == "__main__":
    main()
