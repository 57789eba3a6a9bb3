"""Which engine generates for a student (``eval.engine``), and the servers it needs.

``generation_engine(student, cfg)`` is a context manager that yields the student (and its
judge) ready to sample and judge with the chosen engine:

- ``transformers``: the student as it is (``TransformersGenerator``, the reference);
- ``llama_cpp``: each student exported to GGUF (``eval.gguf_type``) in a temporary folder and
  served on loopback for the block by the batched llama.cpp server
  (``mindmirror.student.batch_server``: ``eval.engine_parallel`` sequences decoded together,
  one request per sample so that a slot is refilled as soon as a sample ends;
  ``eval.engine_servers`` processes); the
  model id it answers as carries a hash of the file, so cached samples of other weights are
  never reused;
- ``openai``: the server at ``eval.engine_url`` already hosting the student (vLLM, llama.cpp);
  a separate judge (a two-stage run's stage-1 student) is not hosted there, so it judges with
  transformers;
- ``auto``: ``llama_cpp`` where the student is causal, exportable (a Llama-architecture model
  with a byte-level BPE tokenizer) and llama-cpp-python's server is installed, else
  ``transformers``; seq2seq students always stay on transformers.

On ``openai`` servers a judge whose tokenizer splits a verdict word judges with transformers
(``ServerGenerator``); mindmirror's llama.cpp server scores verdicts of any length itself.
``servers_peak_rss_mb`` asks the llama.cpp servers for their peak memory before they stop.
"""

from __future__ import annotations

import hashlib
import importlib.util
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import replace
from pathlib import Path

import httpx
from rich.console import Console

from mindmirror.config import EvalConfig
from mindmirror.errors import UserError
from mindmirror.requests.cache import ResponseCache
from mindmirror.student.generate import TransformersGenerator
from mindmirror.student.infer import Student
from mindmirror.student.server import ServerGenerator, ServerSettings, open_cache
from mindmirror.threads import ThreadPlan, engine_plan, running_llama_servers, usable_cores

console = Console(stderr=True)
#: Tokens of the verdict prompt beyond the input (its shared prefix and one verdict token).
VERDICT_TOKENS = 16


def llama_cpp_blocker(student: Student) -> str | None:
    """Why ``student`` cannot generate through llama.cpp here (None: it can)."""
    from mindmirror.deployment.export_gguf import check_gguf_student

    if student.kind != "causal":
        return "seq2seq students have no llama.cpp path; they generate with transformers"
    try:
        check_gguf_student(student.model)
    except UserError as error:
        return str(error)
    if importlib.util.find_spec("llama_cpp") is None:
        return "llama.cpp's server is not installed: pip install 'llama-cpp-python[server]'"
    return None


def choose_engine(cfg: EvalConfig, student: Student) -> str:
    """The engine that will run: ``cfg.engine``, with ``auto`` resolved.

    Raises:
        UserError: ``llama_cpp`` asked for a student it cannot serve.
    """
    if cfg.engine in ("transformers", "openai"):
        return cfg.engine
    blocker = llama_cpp_blocker(student)
    if cfg.engine == "llama_cpp" and blocker is not None:
        raise UserError(f"eval.engine=llama_cpp: {blocker} (or set eval.engine=transformers)")
    return "transformers" if blocker else "llama_cpp"


def server_threads(cfg: EvalConfig) -> ThreadPlan:
    """The threads of each engine server beside the llama.cpp servers already running here
    (the student's and the judge's take turns, so they share one plan); warns on stderr when
    the threads outnumber the cores."""
    cores = usable_cores()
    plan = engine_plan(
        cores, running_llama_servers(cores=cores), cfg.engine_servers, cfg.engine_threads
    )
    if plan.warning:
        console.print(f"[yellow]warning[/]: {plan.warning}", highlight=False, soft_wrap=True)
    return plan


def _file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()[:16]


def _first_model(url: str) -> str:
    """The first model id the server at ``url`` lists; UserError when it cannot tell."""
    try:
        reply = httpx.get(f"{url.rstrip('/')}/models", timeout=30)
        reply.raise_for_status()
        return str(reply.json()["data"][0]["id"])
    except (httpx.HTTPError, KeyError, IndexError, TypeError, ValueError) as error:
        raise UserError(
            f"cannot list the models at {url} ({error}); set eval.engine_model"
        ) from None


def _llama_cpp_server(
    stack: ExitStack,
    student: Student,
    cfg: EvalConfig,
    folder: Path,
    name: str,
    cache: ResponseCache,
    n_ctx: int,
    threads: ThreadPlan,
) -> ServerGenerator:
    """Export ``student`` to GGUF in ``folder``; serve it (``cfg.engine_servers`` processes,
    each with the last part's ``threads``) for the life of ``stack``."""
    from mindmirror.deployment.export_gguf import write_gguf
    from mindmirror.student.batch_server import batch_server

    path = write_gguf(
        student.model, student.tokenizer, folder / f"{name}-{cfg.gguf_type}.gguf", cfg.gguf_type
    )
    alias = f"mindmirror-{name}-{_file_digest(path)}"
    servers = cfg.engine_servers
    parallel = cfg.engine_parallel
    urls = [
        stack.enter_context(
            batch_server(
                path,
                alias=alias,
                n_ctx=n_ctx,
                parallel=parallel,
                threads=threads.threads[-1],
                log_path=folder / f"{name}-server-{index}.log",
                passive_wait=threads.warning is not None,
            )
        )
        for index in range(servers)
    ]
    return ServerGenerator(
        urls,
        alias,
        student.tokenizer,
        cache=cache,
        fallback=TransformersGenerator(student.model, student.tokenizer),
        llama_cpp=True,
        # One request per slot: every sequence of every server busy until the last samples.
        settings=ServerSettings(concurrency=parallel * servers),
    )


def servers_peak_rss_mb(served: Student) -> float | None:
    """The summed peak resident memory (MB) of the servers hosting ``served`` and its judge,
    asked while they run; None when none hosts them (transformers) or one does not report it
    (an OpenAI-compatible server other than mindmirror's batched llama.cpp server).

    A sum of peaks is an upper bound on what they held at once.
    """
    from mindmirror.student.batch_server import MEMORY_ROUTE

    servers = [s.server for s in (served, served.judge) if s is not None and s.server]
    urls = {url for server in servers for url in server.urls}
    if not urls:
        return None
    total = 0.0
    for url in sorted(urls):
        try:
            reply = httpx.get(url.removesuffix("/v1") + MEMORY_ROUTE, timeout=10)
            reply.raise_for_status()
            total += float(reply.json()["peak_rss_mb"])  # None (no reading): TypeError
        except (httpx.HTTPError, KeyError, TypeError, ValueError):
            return None
    return round(total, 1)


@contextmanager
def generation_engine(
    student: Student,
    cfg: EvalConfig,
    *,
    cache: Path | None = None,
    max_new_tokens: int | None = None,
    quiet: bool = True,
) -> Iterator[Student]:
    """Yield ``student`` (a copy, with its judge) generating through ``cfg.engine``.

    Args:
        cache: SQLite file keeping the server's samples (a run's makes eval resumable); None
            keeps them in memory for the block.
        max_new_tokens: the longest generation asked (sizes llama.cpp's context; default the
            longer of ``cfg.max_new_tokens`` and ``cfg.answer_max_tokens``).
        quiet: no line saying which engine runs.
    """
    engine = choose_engine(cfg, student)
    if engine == "transformers":
        yield student
        return
    longest = max_new_tokens or max(cfg.max_new_tokens, cfg.answer_max_tokens)
    n_ctx = cfg.max_input_tokens + longest + VERDICT_TOKENS
    with ExitStack() as stack:
        samples = stack.enter_context(open_cache(cache))
        if engine == "openai":
            assert cfg.engine_url is not None  # EvalConfig requires it for engine openai
            server = ServerGenerator(
                [cfg.engine_url],
                cfg.engine_model or _first_model(cfg.engine_url),
                student.tokenizer,
                cache=samples,
                fallback=TransformersGenerator(student.model, student.tokenizer),
                llama_cpp=False,
                settings=ServerSettings(concurrency=cfg.engine_concurrency, use_n=True),
            )
            served = replace(student, server=server)
            where = cfg.engine_url
        else:
            folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="mindmirror-")))
            threads = server_threads(cfg)
            try:
                server = _llama_cpp_server(
                    stack, student, cfg, folder, "student", samples, n_ctx, threads
                )
            except UserError as error:
                if cfg.engine != "auto":
                    raise
                # A tokenizer or rope scaling the GGUF export cannot carry: the reference path.
                console.print(f"[yellow]transformers generates[/]: {error}", highlight=False)
                yield student
                return
            judge = student.judge
            if judge is not None and llama_cpp_blocker(judge) is None:
                judge = replace(
                    judge,
                    server=_llama_cpp_server(
                        stack, judge, cfg, folder, "judge", samples, n_ctx, threads
                    ),
                )
            served = replace(student, server=server, judge=judge)
            where = f"llama.cpp ({cfg.gguf_type} GGUF) at {', '.join(server.urls)}"
        if not quiet:
            console.print(f"student generates through {where}", highlight=False)
        yield served
