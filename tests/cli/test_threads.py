"""Thread shares of llama.cpp servers and torch that run at once, and the oversubscription
warning (``mindmirror.threads``)."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import torch

from mindmirror import embedded, threads
from mindmirror.config import EvalConfig
from mindmirror.errors import UserError
from mindmirror.student import engines
from mindmirror.threads import Part, engine_plan, plan_threads, trainer_plan, usable_cores


def test_parts_share_the_cores_and_configured_ones_keep_theirs() -> None:
    plan = plan_threads(8, [Part("a", 2), Part("b", None, processes=2), Part("c")])
    assert plan.threads == (2, 2, 2) and plan.warning is None
    # Never below one thread, however little is left.
    assert plan_threads(2, [Part("a", 2), Part("b")]).threads == (2, 1)


def test_engine_servers_share_the_cores_left_by_running_servers() -> None:
    assert engine_plan(2, [], servers=1, threads=None).threads == (2,)
    assert engine_plan(2, [], servers=2, threads=None).threads == (1,)
    assert engine_plan(16, [], servers=2, threads=None).threads == (8,)
    assert engine_plan(16, [4], servers=1, threads=None).threads == (4, 12)
    assert engine_plan(2, [2], servers=1, threads=None).threads == (2, 1)
    assert engine_plan(1, [], servers=1, threads=None) == threads.ThreadPlan((1,), None)


def test_a_trainer_beside_a_server_takes_the_cores_it_leaves() -> None:
    assert trainer_plan(2, [1], processes=1, threads=None) == threads.ThreadPlan((1, 1), None)
    assert trainer_plan(8, [2, 2], processes=2, threads=None).threads == (4, 2)


def test_oversubscribed_plans_warn_in_one_line_naming_the_setting() -> None:
    warning = engine_plan(2, [], servers=2, threads=2).warning
    assert warning is not None and "\n" not in warning
    assert "engine servers 2x2 = 4 on 2 cores" in warning and "eval.engine_threads" in warning
    warning = trainer_plan(2, [1], processes=1, threads=2).warning
    assert warning is not None
    assert "running llama.cpp servers 1 + torch 2 = 3 on 2 cores" in warning
    assert "OMP_NUM_THREADS" in warning


def test_usable_cores_follow_a_cgroup_quota(tmp_path: Path) -> None:
    cpu_max = tmp_path / "cpu.max"
    cpu_max.write_text("max 100000\n")
    affinity = usable_cores(cpu_max)
    assert affinity >= 1
    cpu_max.write_text("50000 100000\n")
    assert usable_cores(cpu_max) == 1
    assert usable_cores(tmp_path / "missing") == affinity


def _proc(tmp_path: Path, *commands: list[str]) -> Path:
    """A fake /proc holding one process per command line."""
    for pid, argv in enumerate(commands, 100):
        (tmp_path / str(pid)).mkdir()
        (tmp_path / str(pid) / "cmdline").write_bytes(b"\0".join(a.encode() for a in argv))
    return tmp_path


def test_running_servers_are_read_from_their_command_lines(tmp_path: Path) -> None:
    python = ["/venv/bin/python", "-m", "llama_cpp.server", "--model", "x.gguf"]
    proc = _proc(
        tmp_path,
        [*python, "--n_threads", "1", "--n_threads_batch", "1"],
        [*python, "--n_threads", "1"],  # prompts on every core: llama-cpp-python's default
        ["/usr/bin/llama-server", "-m", "x.gguf", "-t", "3"],
        ["/usr/bin/python", "-m", "mindmirror", "train", "r.yaml"],
    )
    assert sorted(threads.running_llama_servers(proc, cores=4)) == [1, 3, 4]


def test_an_oversubscribed_engine_config_warns(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(engines, "usable_cores", lambda: 2)
    monkeypatch.setattr(engines, "running_llama_servers", lambda cores: [])
    plan = engines.server_threads(EvalConfig(engine_servers=2, engine_threads=2))
    assert plan.threads == (2,)
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "warning" in err and "4 on 2 cores" in err
    engines.server_threads(EvalConfig())
    assert capsys.readouterr().err == ""


def test_training_beside_a_server_lowers_torch_threads_and_warns(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(threads, "_LOWERED", {})
    monkeypatch.setattr(threads, "usable_cores", lambda: 2)
    monkeypatch.setattr(threads, "running_llama_servers", lambda cores: [1])
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        threads.share_torch_threads()
        assert torch.get_num_threads() == 1
        assert "torch trains with 1 thread(s)" in capsys.readouterr().err
        # The server gone, the next training gets torch's threads back.
        monkeypatch.setattr(threads, "running_llama_servers", lambda cores: [])
        threads.share_torch_threads()
        assert torch.get_num_threads() == 2 and capsys.readouterr().err == ""
        # OMP_NUM_THREADS is the user's choice: it stays, with a one-line warning.
        monkeypatch.setattr(threads, "running_llama_servers", lambda cores: [1])
        monkeypatch.setenv("OMP_NUM_THREADS", "2")
        threads.share_torch_threads(quiet=True)
        assert torch.get_num_threads() == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "3 on 2 cores" in err and "OMP_NUM_THREADS" in err
    finally:
        torch.set_num_threads(before)


def test_threads_set_by_the_caller_are_never_raised(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(threads, "_LOWERED", {})
    monkeypatch.setattr(threads, "usable_cores", lambda: 16)
    monkeypatch.setattr(threads, "running_llama_servers", lambda cores: [4])
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)  # a test's or a bench's --threads 1
        threads.share_torch_threads()
        monkeypatch.setattr(threads, "running_llama_servers", lambda cores: [])
        threads.share_torch_threads()
        assert torch.get_num_threads() == 1 and capsys.readouterr().err == ""
    finally:
        torch.set_num_threads(before)


def test_the_server_reads_prompts_with_its_own_threads(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    started: dict[str, Any] = {}

    class Exited:
        returncode = 1

        def __init__(self, cmd: list[str], **options: Any) -> None:
            started.update(cmd=cmd, env=options["env"])

        def poll(self) -> int:
            return 1

        def terminate(self) -> None: ...

        def wait(self, timeout: float | None = None) -> int:
            return 1

    monkeypatch.setattr(subprocess, "Popen", Exited)
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"")
    with pytest.raises(UserError), embedded.llama_server(gguf, n_threads=1, passive_wait=True):
        pass
    cmd = started["cmd"]
    assert cmd[cmd.index("--n_threads") + 1] == "1"
    assert cmd[cmd.index("--n_threads_batch") + 1] == "1"
    assert started["env"]["OMP_WAIT_POLICY"] == "PASSIVE"
