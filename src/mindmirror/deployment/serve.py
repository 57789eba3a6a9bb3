"""`mindmirror serve`: an OpenAI-compatible HTTP API over a trained student (FastAPI + uvicorn).

Endpoints: ``POST /v1/chat/completions``, ``GET /v1/models``, ``GET /health``. The last user
message is the question. Any OpenAI client works (``base_url=http://127.0.0.1:PORT/v1``, any
key); the response carries an extra ``mindmirror`` field with the mode, answer, verdict,
confidence, abstention and samples.

Modes (request field ``mindmirror: {"mode": ...}``, e.g. the openai client's
``extra_body={"mindmirror": {"mode": "mirror"}}``; the default is ``predict``'s: ``answer`` for
students trained without CoTs (standard, distill), else ``serve.mode``, ``cot`` unless set):

- ``answer`` / ``cot``: ``n`` choices, each one output (greedy when ``n`` is 1 and
  ``temperature`` is 0 or unset, sampled otherwise). With ``cot`` and ``n`` this is what
  ``teach`` needs, so the project's own student can act as a teacher server.
- ``vote`` / ``mirror``: ``n`` (when > 1, else ``eval.num_samples``) sampled CoTs aggregated
  into ONE choice: the chosen CoT; the samples are listed in the ``mindmirror`` field. They
  always sample (``temperature`` 0 or unset means ``eval.temperature``).

Authentication: with ``serve.api_key_env`` (``--api-key-env NAME``) every request needs
``Authorization: Bearer $NAME`` (401 otherwise; ``mindmirror.deployment.serve_auth``).

Limits: loopback by default; request bodies over ``serve.max_body_bytes`` get 413 (reading
stops at the limit, chunked bodies included);
``max_tokens`` over ``serve.max_tokens_limit``, ``n`` over ``serve.max_n``, streaming, no user
message, an unknown mode, ``mirror`` for a student trained without self-evaluation, and a body
that is not UTF-8 JSON (too deeply nested, or with a lone surrogate) get 400 with an
OpenAI-style ``{"error": {"message": ...}}``.
The model runs one request at a time (a lock); requests queue.
"""

from __future__ import annotations

import errno
import socket
import threading
import time
import uuid
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import torch
from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from rich.console import Console
from starlette.exceptions import HTTPException as StarletteHTTPException

from mindmirror.config import EvalConfig, InferMode, ServeConfig
from mindmirror.deployment.chat_request import (
    ApiError,
    ChatRequest,
    error_response,
    parse_request,
    read_body,
)
from mindmirror.deployment.serve_auth import read_api_key, require_key
from mindmirror.errors import UserError
from mindmirror.predict import (
    Predictor,
    check_mode,
    default_mode,
    run_recipe,
    trained_method,
    untrained_mode,
)
from mindmirror.student.formats import EXPLAIN, PREDICT, reasoning_input
from mindmirror.student.infer import MODES, Prediction, Student, infer_modes, sample_confidence
from mindmirror.tasks.base import Task

console = Console(stderr=True)


@dataclass
class Served:
    """What the server holds: the student, the task that parses answers, and settings."""

    student: Student
    task: Task
    serve: ServeConfig
    eval: EvalConfig
    lock: threading.Lock
    api_key: str | None = None
    #: The training method (None when unknown): ``mirror`` is refused for one without verdicts.
    method: str | None = None


def _check(
    req: ChatRequest, cfg: ServeConfig, method: str | None
) -> tuple[str, InferMode, int, int]:
    """Validate limits and the mode (for a student trained with ``method``); return
    (question, mode, n, max_tokens)."""
    if req.stream:
        raise ApiError(400, "streaming is not supported; send stream=false", "stream")
    users = [m for m in req.messages if m.role == "user"]
    question = users[-1].text().strip() if users else ""
    if not question:
        raise ApiError(400, "no user message with text: the last user message is the question")
    mode = str((req.mindmirror or {}).get("mode", cfg.mode))
    if mode not in MODES:
        raise ApiError(400, f"unknown mode {mode!r}: choose from {', '.join(MODES)}", "mode")
    reason = untrained_mode(mode, method)
    if reason is not None:
        raise ApiError(400, reason, "mode")
    n = 1 if req.n is None else req.n
    if not 1 <= n <= cfg.max_n:
        raise ApiError(400, f"n must be between 1 and {cfg.max_n} (got {n})", "n")
    max_tokens = req.max_completion_tokens or req.max_tokens
    if max_tokens is not None and not 1 <= max_tokens <= cfg.max_tokens_limit:
        raise ApiError(
            400,
            f"max_tokens must be between 1 and {cfg.max_tokens_limit} (got {max_tokens})",
            "max_tokens",
        )
    return question, cast(InferMode, mode), n, max_tokens or 0


def _sample_dict(p: Prediction, i: int) -> dict[str, Any]:
    s = p.samples[i]
    return {"text": s.text, "answer": s.answer, "verdict": s.verdict, "probs": s.probs}


def _reasoning(
    served: Served, question: str, mode: str, n: int, max_tokens: int, req: ChatRequest
) -> tuple[list[str], dict[str, Any]]:
    """``answer``/``cot``: n independent outputs, each parsed."""
    cfg = served.eval
    prefix = PREDICT if mode == "answer" else EXPLAIN
    default_max = cfg.answer_max_tokens if mode == "answer" else cfg.max_new_tokens
    temperature = cfg.temperature if req.temperature is None else req.temperature
    greedy = temperature == 0.0 or (n == 1 and req.temperature is None)
    if greedy and n > 1:
        raise ApiError(400, "n > 1 needs temperature > 0 (greedy decoding has one answer)", "n")
    (samples,) = served.student.generator.generate(
        [reasoning_input(prefix, question)],
        num_samples=n,
        sample=not greedy,
        temperature=temperature,
        top_p=req.top_p or cfg.top_p,
        max_new_tokens=max_tokens or default_max,
        batch_size=max(n, cfg.batch_size),
        max_input_tokens=cfg.max_input_tokens,
        # A fresh seed per request: a server's cache must not hand back the last samples.
        seed=int(torch.randint(0, 2**31 - 1, ()).item()),
    )
    parsed = [served.task.parse_answer(s.text, None, question) for s in samples]
    confidences = [sample_confidence(s) for s in samples]
    calibration = served.student.answer_confidence if mode == "answer" and greedy else None
    abstained = False
    if calibration is not None:
        # answer mode's calibration (train.answer_confidence), fitted on greedy answers:
        # P(right), abstaining under it. A sampled answer's probability is taken under the
        # sampling distribution, outside what it was fitted on: it stays raw.
        confidences = [calibration.confidence(c) for c in confidences]
        abstained = parsed[0] is None or confidences[0] < calibration.threshold
    extra = {
        "mode": mode,
        "answer": parsed[0],
        "verdict": None,
        "confidence": confidences[0],
        "abstained": abstained,
        "samples": [
            {"text": s.text, "answer": a, "confidence": c}
            for s, a, c in zip(samples, parsed, confidences, strict=True)
        ],
    }
    return [s.text for s in samples], extra


def _aggregate(
    served: Served, question: str, mode: InferMode, n: int, max_tokens: int, req: ChatRequest
) -> tuple[list[str], dict[str, Any]]:
    """``vote``/``mirror``: K sampled CoTs, one chosen answer."""
    update: dict[str, Any] = {"num_samples": n if n > 1 else served.eval.num_samples}
    if req.temperature:
        update["temperature"] = req.temperature
    if req.top_p:
        update["top_p"] = req.top_p
    if max_tokens:
        update["max_new_tokens"] = max_tokens
    cfg = served.eval.model_copy(update=update)
    fitted = served.student.confidence
    if mode == "mirror" and fitted is not None and cfg.num_samples != fitted.samples:
        raise ApiError(
            400,
            f"mirror's combined confidence was fitted on {fitted.samples} CoTs per question: "
            f"send n={fitted.samples} (got {cfg.num_samples})",
            "n",
        )
    seed = int(torch.randint(0, 2**31 - 1, ()).item())
    runs = infer_modes(served.student, served.task, [question], [mode], cfg, seed=seed)
    pred = runs[mode].predictions[0]
    extra = {
        "mode": mode,
        "answer": pred.answer,
        "verdict": pred.verdict,
        "confidence": pred.confidence,
        "abstained": pred.abstained,
        "samples": [_sample_dict(pred, i) for i in range(len(pred.samples))],
    }
    return [pred.cot or ""], extra


def _count(tok: Any, text: str) -> int:
    return len(tok(text, add_special_tokens=False)["input_ids"])


def complete(served: Served, req: ChatRequest) -> dict[str, Any]:
    """Answer one validated chat request (blocking; call it under ``served.lock``)."""
    question, mode, n, max_tokens = _check(req, served.serve, served.method)
    handler = _reasoning if mode in ("answer", "cot") else _aggregate
    texts, extra = handler(served, question, mode, n, max_tokens, req)
    tok = served.student.tokenizer
    limit = max_tokens or (
        served.eval.answer_max_tokens if mode == "answer" else served.eval.max_new_tokens
    )
    counts = [_count(tok, t) for t in texts]
    prompt_tokens = _count(tok, question)
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": served.serve.model_name,
        "choices": [
            {
                "index": i,
                "message": {"role": "assistant", "content": text},
                "finish_reason": "length" if count >= limit else "stop",
            }
            for i, (text, count) in enumerate(zip(texts, counts, strict=True))
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": sum(counts),
            "total_tokens": prompt_tokens + sum(counts),
        },
        "mindmirror": extra,
    }


def create_app(served: Served) -> FastAPI:
    """The FastAPI application over a loaded student."""
    app = FastAPI(title="mindmirror student", docs_url=None, redoc_url=None)
    if served.api_key is not None:
        require_key(app, served.api_key)

    @app.exception_handler(StarletteHTTPException)
    async def httperror_response(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return error_response(exc.status_code, str(exc.detail))

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        return {
            "object": "list",
            "data": [
                {
                    "id": served.serve.model_name,
                    "object": "model",
                    "created": 0,
                    "owned_by": "mindmirror",
                }
            ],
        }

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> JSONResponse:
        body = await read_body(request, served.serve.max_body_bytes)
        if body is None:
            return error_response(413, f"request body over {served.serve.max_body_bytes} bytes")
        try:
            req = parse_request(body)
        except ApiError as error:
            return error_response(error.status, error.message, error.param)

        def run() -> dict[str, Any]:
            with served.lock:
                return complete(served, req)

        try:
            return JSONResponse(await run_in_threadpool(run))
        except ApiError as error:
            return error_response(error.status, error.message, error.param)

    return app


# ------------------------------------------------------------------------------ loading


def load_served(
    path: str | Path,
    *,
    task: str | None = None,
    engine: str | None = None,
    engine_url: str | None = None,
) -> Served:
    """Load a trained student (run directory or student folder) and its task for serving;
    ``engine``/``engine_url`` override the run's ``eval.engine``/``eval.engine_url``."""
    predictor = Predictor.load(path, task=task, engine=engine, engine_url=engine_url)
    return Served(
        student=predictor.student,
        task=predictor.task,
        serve=predictor.serve.model_copy(update={"mode": predictor.mode}),
        eval=predictor.eval,
        lock=threading.Lock(),
        method=predictor.method,
    )


def serve_settings(path: str | Path, overrides: dict[str, Any]) -> ServeConfig:
    """The run's ``serve:`` settings (defaults outside a run) with ``overrides``, validated
    without loading any model; UserError naming the bad option."""
    recipe = run_recipe(Path(path))
    base = recipe.serve if recipe else ServeConfig()
    try:
        return ServeConfig.model_validate({**base.model_dump(), **overrides})
    except ValidationError as error:
        first = error.errors()[0]
        name = str(first["loc"][0]) if first["loc"] else "option"
        value = overrides.get(name, first.get("input"))
        shown = repr(value) if value == "" else value
        message = first["msg"].removeprefix("Value error, ")
        raise UserError(f"--{name.replace('_', '-')} {shown}: {message}") from None


def listen(host: str, port: int) -> socket.socket:
    """A socket listening on ``host:port``, opened before the model loads so that a taken port
    or a bad address fails at once, in one line (and nothing else can take the port)."""
    try:
        family, _, _, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        return socket.create_server(address[:2], family=family)
    except OSError as error:
        reason = error.strerror or str(error)
        if error.errno == errno.EADDRINUSE:
            raise UserError(
                f"port {port} on {host} is already in use: stop what listens there, or pick "
                "another with --port"
            ) from None
        raise UserError(
            f"cannot listen on {host}:{port} ({reason}): check --host and --port"
        ) from None


def serve_main(
    path: str | Path,
    host: str | None = None,
    port: int | None = None,
    *,
    mode: str | None = None,
    task: str | None = None,
    model_name: str | None = None,
    api_key_env: str | None = None,
    engine: str | None = None,
    engine_url: str | None = None,
) -> None:
    """Serve the student at ``path`` until interrupted (``mindmirror serve PATH``).

    ``host``/``port``/``mode``/``model_name`` override the run's ``serve:`` settings; ``task``
    names the task when ``path`` is a student folder outside a run directory; ``engine`` and
    ``engine_url`` choose what generates (``eval.engine``: a llama.cpp server runs as long as
    this one). Every override is checked and the port is taken before the model loads.
    """
    import uvicorn

    from mindmirror.student.engines import generation_engine

    check_mode(mode)
    update = {"host": host, "port": port, "mode": mode, "model_name": model_name}
    update["api_key_env"] = api_key_env
    cfg = serve_settings(path, {k: v for k, v in update.items() if v is not None})
    key = read_api_key(cfg.api_key_env) if cfg.api_key_env is not None else None
    method = trained_method(Path(path), run_recipe(Path(path)))
    reason = untrained_mode(mode or default_mode(method, cfg), method)
    if reason is not None:
        raise UserError(reason)
    sock = listen(cfg.host, cfg.port)
    with ExitStack() as stack:
        stack.callback(sock.close)
        served = load_served(path, task=task, engine=engine, engine_url=engine_url)
        served.serve = cfg.model_copy(update={"mode": mode or served.serve.mode})
        longest = max(cfg.max_tokens_limit, served.eval.max_new_tokens)
        served.student = stack.enter_context(
            generation_engine(served.student, served.eval, max_new_tokens=longest, quiet=False)
        )
        served.api_key = key
        if cfg.host not in ("127.0.0.1", "localhost", "::1") and key is None:
            console.print(
                f"[yellow]warning[/]: listening on {cfg.host}, not loopback: anyone who "
                "can reach this port can use the model (set --api-key-env to require a key)"
            )
        where = f"[{cfg.host}]" if ":" in cfg.host else cfg.host
        console.print(
            f"serving {cfg.model_name} ({served.student.kind}, mode {served.serve.mode}) at "
            f"http://{where}:{sock.getsockname()[1]}/v1",
            highlight=False,
            markup=False,
        )
        server = uvicorn.Server(uvicorn.Config(create_app(served), log_level="warning"))
        server.run(sockets=[sock])
