"""``teach`` end to end against the real llama.cpp server, and the kill -9 / resume test."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from mindmirror.config import recipe_from_dict
from mindmirror.embedded import EMBEDDED_MODEL
from mindmirror.records import read_records
from mindmirror.rundir import RunDir
from mindmirror.teacher.teach import teach
from tests.conftest import ROOT, shared_path
from tests.fault_proxy import fault_proxy

pytestmark = pytest.mark.server


def recipe_data(run_dir: Path, base_url: str, limit: dict[str, int], **teacher: Any) -> dict:
    return {
        "name": "server-test",
        "run_dir": str(run_dir),
        "task": {"name": "svamp", "path": str(shared_path("svamp", "dss")), "limit": limit},
        "teacher": {
            "backend": "openai",
            "base_url": base_url,
            "model": EMBEDDED_MODEL,
            "num_cots": 2,
            "num_evals": 1,
            "max_tokens": 16,
            "eval_max_tokens": 12,
            "few_shot": 1,
            "concurrency": 2,
            "timeout_s": 60,
            **teacher,
        },
    }


def assert_complete(run: RunDir, questions: int, cots: int, evals: int) -> None:
    records = read_records(run.records)
    assert len(records) == questions
    for record in records:
        assert len(record.cots) == cots
        for cot in record.cots:
            assert cot.status in ("ok", "unparsed") and cot.text
            assert len(cot.evaluations) == evals
            assert all(ev.source == "teacher" and ev.text for ev in cot.evaluations)


def test_teach_against_llama_cpp_then_resume_from_cache(llama_url: str, tmp_path: Path) -> None:
    run = RunDir(tmp_path / "run")
    recipe = recipe_from_dict(recipe_data(run.root, llama_url, {"train": 2, "validation": 1}))
    summary = teach(recipe, run, quiet=True)
    assert_complete(run, questions=3, cots=2, evals=1)
    assert summary["questions"] == {"train": 2, "validation": 1}
    assert summary["cots"] == 6 and summary["evaluations"] == 6 and summary["cots_error"] == 0
    assert summary["requests"] >= 12 and summary["cache_hits"] == 0
    assert summary["tokens_out"] > 0 and summary["model"] == EMBEDDED_MODEL
    records = run.records.read_text()

    again = teach(recipe, run, quiet=True)
    assert again["requests"] == 0 and again["cache_hits"] == 12
    assert again["tokens_out"] == summary["tokens_out"]  # cached usage still counted
    assert run.records.read_text() == records


def _cached_rows(path: Path) -> int:
    if not path.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=1) as db:
            return int(db.execute("SELECT COUNT(*) FROM samples").fetchone()[0])
    except sqlite3.OperationalError:  # the table is not created yet
        return 0


def _teach_command(recipe_path: Path) -> list[str]:
    return [sys.executable, "-m", "mindmirror", "teach", str(recipe_path), "--quiet"]


@pytest.mark.slow
def test_kill_9_mid_run_then_resume_requests_only_what_is_missing(
    llama_url: str, tmp_path: Path
) -> None:
    """SIGKILL ``mindmirror teach`` mid-run; the re-run must re-request no finished sample."""
    run = RunDir(tmp_path / "run")
    questions, concurrency = 6, 2
    total = questions * 2 + questions * 2 * 1  # N=2 CoTs, then M=1 evaluation per CoT
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    with fault_proxy(llama_url, latency_s=0.3) as proxy:
        # use_n off: one request per sample, so requests can be counted exactly.
        data = recipe_data(
            run.root, proxy.url, {"train": 4, "validation": 2}, use_n=False,
            concurrency=concurrency,
        )  # fmt: skip
        recipe_path = tmp_path / "recipe.yaml"
        recipe_path.write_text(yaml.safe_dump(data))

        first = subprocess.Popen(_teach_command(recipe_path), cwd=ROOT, env=env)
        deadline = time.monotonic() + 240
        while _cached_rows(run.cache) < 4:
            assert first.poll() is None, "teach finished before it could be killed"
            assert time.monotonic() < deadline, "no samples cached within 240 s"
            time.sleep(0.05)
        first.send_signal(signal.SIGKILL)
        first.wait()
        cached = _cached_rows(run.cache)
        # Requests of the dead process still being generated upstream finish (and are counted)
        # after the kill; wait for them so they are not charged to the resumed run.
        while (stats := proxy.stats())["received"] != stats["forwarded"]:
            assert time.monotonic() < deadline, "the proxy never settled"
            time.sleep(0.1)
        before = stats["forwarded"]
        assert not run.records.exists()  # killed before the end: no half-written records
        assert cached < total
        # Responses the server had sent but the killed process had not stored yet.
        assert cached <= before <= cached + concurrency

        proxy.reset()
        second = subprocess.run(_teach_command(recipe_path), cwd=ROOT, env=env, timeout=300)
        assert second.returncode == 0
        after = proxy.stats()
    # Exactly the missing samples were requested: no finished response was asked for twice.
    assert after["forwarded"] == total - cached
    assert after["received"] == total - cached
    assert _cached_rows(run.cache) == total
    assert_complete(run, questions=questions, cots=2, evals=1)


def test_imported_palm_cots_evaluated_by_a_live_teacher(llama_url: str, tmp_path: Path) -> None:
    """DSS files hold CoTs but no evaluations: ``evaluate_with: openai`` asks the server."""
    run = RunDir(tmp_path / "run")
    data = recipe_data(
        run.root,
        llama_url,
        {"train": 2, "validation": 1},
        backend="import",
        num_cots=3,
        **{
            "import": {
                "format": "dss",
                "path": str(shared_path("svamp", "dss")),
                "evaluate_with": "openai",
            }
        },
    )
    summary = teach(recipe_from_dict(data), run, quiet=True)
    assert_complete(run, questions=3, cots=1, evals=1)  # DSS: one PaLM CoT per question
    assert summary["requests"] == 3 and summary["evaluations"] == 3
    record = read_records(run.records)[0]
    assert record.teacher.backend == "import" and record.teacher.eval_prompt_version == "eval_v2"
