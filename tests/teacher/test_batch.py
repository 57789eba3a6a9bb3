"""Teaching through the Batch API, against a real batch server fronting the llama.cpp server.

``tests/batch_server.py`` speaks OpenAI's Files and Batches endpoints and runs each batch line
on the embedded SmolLM2 server; it counts batches, lines and online requests, which proves that
a kill, a re-run or a partly failed batch pays for nothing twice.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mindmirror.cli import app
from mindmirror.config import TeacherConfig, recipe_from_dict
from mindmirror.embedded import EMBEDDED_MODEL
from mindmirror.errors import UserError
from mindmirror.requests.cache import ResponseCache
from mindmirror.requests.engine import RequestEngine
from mindmirror.requests.types import Prompt, Sampling, Usage
from mindmirror.rundir import RunDir
from mindmirror.teacher.backends import OpenAIBackend
from mindmirror.teacher.batch import BatchRunner
from mindmirror.teacher.batch_files import load_state
from mindmirror.teacher.teach import teach
from tests.batch_server import BatchServerHandle, batch_server

KEY_ENV = "MINDMIRROR_TEST_BATCH_KEY"
SAMPLING = Sampling(temperature=0.7, top_p=1.0, max_tokens=8)
PRICES = {"price_input_per_mtok": 1e6, "price_output_per_mtok": 2e6}  # $1 / $2 per token


@pytest.fixture(scope="module")
def server_process(llama_url: str) -> Iterator[BatchServerHandle]:
    with batch_server(llama_url) as handle:
        yield handle


@pytest.fixture
def server(server_process: BatchServerHandle) -> BatchServerHandle:
    """The shared batch server with no faults and its counters at zero."""
    server_process.reset()
    return server_process


def prompts(count: int, n: int = 1, tag: str = "p") -> list[Prompt]:
    return [
        Prompt(
            ("cot", f"{tag}{i}"),
            [{"role": "user", "content": f"Name a colour. ({tag}{i})"}],
            n,
            SAMPLING,
            "test_v1",
        )
        for i in range(count)
    ]


def make_engine(
    url: str, folder: Path, batch: bool = True, **settings: object
) -> tuple[RequestEngine, TeacherConfig]:
    """An engine on ``folder/cache.sqlite`` with the batch hook on ``folder/batches.json``."""
    values: dict[str, object] = {"concurrency": 2, "timeout_s": 60.0, "batch_poll_s": 0.2}
    cfg = TeacherConfig(
        model=EMBEDDED_MODEL,
        base_url=url,
        api_key_env=KEY_ENV,
        batch=batch,
        **values | settings,  # type: ignore[arg-type]
    )
    engine = RequestEngine(
        OpenAIBackend.from_config(cfg), ResponseCache(folder / "cache.sqlite"), cfg, quiet=True
    )
    engine.batch = BatchRunner(cfg, folder / "batches.json", enabled=batch, poll_start_s=0.05)
    return engine, cfg


def statuses(folder: Path) -> list[str]:
    state = load_state(folder / "batches.json")
    return [r["status"] for entry in state["batches"] for r in entry["requests"].values()]


@pytest.mark.server
def test_a_batch_fills_the_cache_at_half_price_and_online_reuses_it(
    server: BatchServerHandle, tmp_path: Path
) -> None:
    engine, _ = make_engine(server.url, tmp_path, use_n=False, **PRICES)
    results = engine.run_sync(prompts(4), "CoTs")
    assert all(texts[0] for texts in results.values())
    stats = engine.last
    assert (stats.samples_batch, stats.batch_requests, stats.requests) == (4, 4, 0)
    counts = server.stats()
    assert (counts["batches_created"], counts["lines_run"], counts["online"]) == (1, 4, 0)
    online_price = engine.cost(Usage(stats.prompt_tokens, stats.completion_tokens))
    assert stats.prompt_tokens > 0 and stats.cost_usd == pytest.approx(0.5 * online_price)
    assert statuses(tmp_path) == ["ok"] * 4

    # The online path keys samples the same way: a run without batch sends nothing, and the
    # cached samples keep their batch price.
    online, _ = make_engine(server.url, tmp_path, batch=False, use_n=False, **PRICES)
    assert online.run_sync(prompts(4), "CoTs") == results
    assert online.last.cache_hits == 4 and online.last.requests == 0
    assert online.last.cached_cost_usd == pytest.approx(stats.cost_usd)
    assert server.stats()["batches_created"] == 1 and server.stats()["online"] == 0


@pytest.mark.server
def test_failed_and_expired_requests_fall_back_online_once(
    server: BatchServerHandle, tmp_path: Path
) -> None:
    server.configure(fail_lines=[1], expire_after=4)
    engine, _ = make_engine(server.url, tmp_path, use_n=False)
    results = engine.run_sync(prompts(6), "CoTs")
    assert all(texts[0] for texts in results.values())
    counts = server.stats()
    # Lines 0, 2, 3 ran in the batch; line 1 failed, 4 and 5 expired: three go online.
    assert (counts["lines_run"], counts["online"]) == (3, 3)
    assert (engine.last.samples_batch, engine.last.requests) == (3, 3)
    recorded = statuses(tmp_path)
    assert recorded.count("ok") == 3 and recorded.count("expired") == 2
    assert recorded[1].startswith("failed: Injected failure")

    # A re-run submits no batch for what a batch already tried, and pays for nothing.
    again, _ = make_engine(server.url, tmp_path, use_n=False)
    assert again.run_sync(prompts(6), "CoTs") == results
    after = server.stats()
    assert (after["batches_created"], after["lines_run"], after["online"]) == (1, 3, 3)
    assert again.last.cache_hits == 6


@pytest.mark.server
def test_n_above_what_the_server_returns_is_handled_online(
    server: BatchServerHandle, tmp_path: Path
) -> None:
    engine, _ = make_engine(server.url, tmp_path, use_n=True)
    results = engine.run_sync(prompts(2, n=3), "CoTs")
    assert all(all(texts) for texts in results.values())
    # llama.cpp answers n=3 with one choice: one sample each from the batch, two online.
    assert statuses(tmp_path) == ["partial", "partial"]
    assert engine.last.samples_batch == 2
    assert server.stats()["lines_run"] == 2 and engine.last.samples_new == 6


@pytest.mark.server
def test_kill_while_in_progress_resumes_the_same_batch(
    server: BatchServerHandle, tmp_path: Path
) -> None:
    server.configure(hold=True)
    child = textwrap.dedent(
        f"""
        import sys
        sys.path.insert(0, {str(Path(__file__).resolve().parents[2])!r})
        from pathlib import Path
        from tests.teacher.test_batch import make_engine, prompts
        engine, _ = make_engine({server.url!r}, Path({str(tmp_path)!r}), use_n=False)
        engine.run_sync(prompts(5), "CoTs")
        """
    )
    process = subprocess.Popen([sys.executable, "-c", child])
    state = tmp_path / "batches.json"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and server.stats()["retrieves"] < 2:
            time.sleep(0.05)
    finally:
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
    (entry,) = json.loads(state.read_text())["batches"]
    assert entry["id"] and entry["status"] == "in_progress" and not entry["collected"]
    server.configure(hold=False)
    engine, _ = make_engine(server.url, tmp_path, use_n=False)
    results = engine.run_sync(prompts(5), "CoTs")
    assert all(texts[0] for texts in results.values())
    counts = server.stats()
    assert (counts["batches_created"], counts["lines_run"], counts["online"]) == (1, 5, 0)
    assert engine.last.samples_batch == 5


@pytest.mark.server
def test_an_endpoint_without_a_batch_api_is_one_clear_line(llama_url: str, tmp_path: Path) -> None:
    engine, _ = make_engine(llama_url, tmp_path)
    with pytest.raises(UserError, match=r"has no Batch API .*teacher.batch=false"):
        engine.run_sync(prompts(1), "CoTs")


def test_batch_needs_the_openai_backend() -> None:
    with pytest.raises(UserError, match=r"teacher: batch: true needs backend `openai`"):
        recipe_from_dict({"teacher": {"backend": "local", "batch": True}})
    recipe = recipe_from_dict(
        {"teacher": {"backend": "import", "batch": True, "import": {"path": "x.jsonl"}}},
        ["teacher.import.evaluate_with=openai"],
    )
    assert recipe.teacher.batch and recipe.teacher.price_batch_factor == 0.5


def test_teach_help_says_when_to_choose_batch() -> None:
    text = CliRunner().invoke(app, ["teach", "--help"], env={"COLUMNS": "200"}).output
    assert "teacher.batch=true" in text and "half" in text and "24 hours" in text


@pytest.mark.server
def test_teach_runs_cots_and_evaluations_as_two_batches(
    server: BatchServerHandle, tmp_path: Path
) -> None:
    data = {
        "run_dir": str(tmp_path / "run"),
        "task": {"name": "arith", "num_examples": 30, "limit": {"train": 2, "validation": 1}},
        "teacher": {
            "backend": "openai",
            "base_url": server.url,
            "model": EMBEDDED_MODEL,
            "api_key_env": KEY_ENV,
            "num_cots": 2,
            "num_evals": 1,
            "max_tokens": 12,
            "eval_max_tokens": 8,
            "few_shot": 0,
            "use_n": False,
            "batch": True,
            "batch_poll_s": 0.2,
            **PRICES,
        },
    }
    run = RunDir(tmp_path / "run")
    summary = teach(recipe_from_dict(data), run, quiet=True)
    assert summary["samples_batch"] == 3 * 2 + 3 * 2 * 1 and summary["requests"] == 0
    counts = server.stats()
    assert (counts["batches_created"], counts["online"]) == (2, 0)
    assert len(load_state(run.teacher / "batches.json")["batches"]) == 2
    again = teach(recipe_from_dict(data), run, quiet=True)
    assert again["cache_hits"] == summary["samples_batch"] and again["cost_usd_this_run"] == 0
    assert again["cost_usd"] == pytest.approx(summary["cost_usd"])  # still at the batch price
    assert server.stats()["batches_created"] == 2
