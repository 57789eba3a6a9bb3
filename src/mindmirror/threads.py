"""Threads for the parts that compute at the same time, so none busy-waits on another's cores.

llama.cpp (built with OpenMP, as llama-cpp-python's wheels are) and torch (GNU OpenMP) wait at
the barrier after each operation by spinning on their core before they sleep. When the
threads of parts that run at once outnumber the cores, a thread pushed off its core keeps
the rest of its team spinning: on a busy 2-core machine a 2-thread llama.cpp server made 1.4
tokens/s and a 1-thread one 18 (docs/benchmarks.md).

The rule: parts that compute at the same time share the cores this process may use
(``os.sched_getaffinity``, capped by a cgroup CPU quota) instead of each taking them all:

- a llama.cpp server started here uses the same threads for generation and for prompt
  processing (``n_threads_batch``, which llama-cpp-python otherwise sets to every core);
- the student's engine servers (batched: more threads pay, unlike a one-sequence server) share
  the cores left by llama.cpp servers already running on the machine (``eval.engine_threads``
  overrides);
- training beside running llama.cpp servers (a teacher or a student server of another
  command) lowers torch's threads to the cores they leave, at least one (never raises
  them; ``OMP_NUM_THREADS`` overrides);
- where the threads still outnumber the cores, one line on stderr says so, and the servers
  started here wait passively (``OMP_WAIT_POLICY=PASSIVE``) rather than spin.

Within one command the parts take turns (the trainer never runs beside its own teacher
server; eval's torch work waits while the student's servers sample), so only servers of
other commands are counted beside them.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

from mindmirror.progress import log_console

#: Torch's threads before training beside servers lowered them (``from``) and what they were
#: lowered to (``to``), restored once no server runs.
_LOWERED: dict[str, int] = {}


@dataclass(frozen=True)
class Part:
    """Something that computes at the same time as the other parts of a plan.

    ``threads`` is per process (None: its share of the cores); ``setting`` names what sets
    them, for the warning (None: not ours to set)."""

    name: str
    threads: int | None = None
    processes: int = 1
    setting: str | None = None


@dataclass(frozen=True)
class ThreadPlan:
    """Threads per process of each part (in the order given), and the oversubscription
    warning (None when the threads fit the cores)."""

    threads: tuple[int, ...]
    warning: str | None


def usable_cores(cgroup: Path = Path("/sys/fs/cgroup/cpu.max")) -> int:
    """Cores this process may run on: its CPU affinity, capped by a cgroup v2 CPU quota."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    cores = cores or 1
    try:
        quota, period = cgroup.read_text().split()[:2]
        limit = math.ceil(int(quota) / int(period))
    except (OSError, ValueError):  # no cgroup v2 file, or no quota ("max")
        return cores
    return max(1, min(cores, limit))


def plan_threads(cores: int, parts: Sequence[Part], reserve: int = 0) -> ThreadPlan:
    """Each part's threads: configured ones as given; the others share what the configured
    ones and ``reserve`` (cores kept for other work) leave, evenly per process, at least 1."""
    fixed = sum(p.threads * p.processes for p in parts if p.threads is not None)
    waiting = sum(p.processes for p in parts if p.threads is None)
    share = max(1, (cores - reserve - fixed) // waiting) if waiting else 0
    threads = tuple(p.threads if p.threads is not None else share for p in parts)
    total = sum(n * p.processes for n, p in zip(threads, parts, strict=True))
    if total <= cores:
        return ThreadPlan(threads, None)
    counts = " + ".join(
        f"{p.name} {n if p.processes == 1 else f'{p.processes}x{n}'}"
        for n, p in zip(threads, parts, strict=True)
        if n
    )
    settings = [p.setting for n, p in zip(threads, parts, strict=True) if p.setting and n > 1]
    fix = f"; lower {' or '.join(settings)}" if settings else "; run them one after another"
    return ThreadPlan(
        threads,
        f"threads: {counts} = {total} on {cores} cores: their spinning threads will starve "
        f"each other{fix}",
    )


def _server_threads(argv: list[str], cores: int) -> int | None:
    """The most threads a llama.cpp server command line computes with (None: not a server).

    Defaults where a flag is missing: llama-cpp-python's server generates with half the cores
    and reads prompts with all of them; llama.cpp's ``llama-server`` uses the cores for both
    (``-tb`` defaults to ``-t``)."""
    python = "llama_cpp.server" in argv
    batched = "mindmirror.student.batch_server" in argv
    if not (python or batched) and (not argv or Path(argv[0]).name != "llama-server"):
        return None
    flags = {flag: int(value) for flag, value in pairwise(argv) if value.isdigit()}
    if batched:
        return flags.get("--threads", 1)
    if python:
        generate = flags.get("--n_threads", max(1, cores // 2))
        return max(generate, flags.get("--n_threads_batch", cores))
    generate = flags.get("-t", flags.get("--threads", cores))
    return max(generate, flags.get("-tb", flags.get("--threads-batch", generate)))


def running_llama_servers(proc: Path = Path("/proc"), cores: int | None = None) -> list[int]:
    """Threads of each llama.cpp server running on this machine (Linux ``/proc``; none
    elsewhere), read from their command lines."""
    cores = cores or usable_cores()
    found = []
    for entry in proc.glob("[0-9]*/cmdline"):
        try:
            raw = entry.read_bytes()
        except OSError:
            continue
        argv = [arg.decode(errors="replace") for arg in raw.split(b"\0") if arg]
        threads = _server_threads(argv, cores)
        if threads is not None:
            found.append(threads)
    return found


def server_env(passive: bool) -> dict[str, str]:
    """The environment of a llama.cpp server child: waiting passively where threads are
    oversubscribed, unless the user set the OpenMP wait policy."""
    env = dict(os.environ)
    if passive:
        env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    return env


def engine_plan(
    cores: int, running: Sequence[int], servers: int, threads: int | None
) -> ThreadPlan:
    """Threads of each of the student's ``servers`` engine servers (``threads``: configured)
    beside the llama.cpp servers ``running`` already: the cores they leave, shared, at least 1.

    Eval's own process waits while they sample, so they may take every core left: a batched
    server decodes 16-20 sequences per step, and a second thread made it about 1.5x faster
    on 2 cores (docs/benchmarks.md)."""
    parts = [Part("running llama.cpp servers", sum(running))] if running else []
    parts.append(
        Part("engine servers", threads, servers, "eval.engine_threads or eval.engine_servers")
    )
    return plan_threads(cores, parts)


def trainer_plan(
    cores: int, running: Sequence[int], processes: int, threads: int | None
) -> ThreadPlan:
    """Torch threads of each of ``processes`` training processes (``threads``: configured)
    beside the llama.cpp servers ``running``: the cores they leave, at least 1."""
    parts = [
        Part("running llama.cpp servers", sum(running)),
        Part("torch", threads, processes, "OMP_NUM_THREADS"),
    ]
    return plan_threads(cores, parts)


def share_torch_threads(quiet: bool = False) -> None:
    """Before training: beside running llama.cpp servers, lower torch's threads to the cores
    they leave (never raise them; ``OMP_NUM_THREADS`` keeps its own), say so on stderr
    (unless ``quiet``) and warn when the threads still outnumber the cores. Once no server
    runs, threads lowered here come back."""
    import torch

    current = torch.get_num_threads()
    cores = usable_cores()
    running = running_llama_servers(cores=cores)
    if not running:
        if _LOWERED.get("to") == current:
            torch.set_num_threads(_LOWERED.pop("from"))
        _LOWERED.clear()
        return
    configured = os.environ.get("OMP_NUM_THREADS", "")
    processes = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    console = log_console()
    if not (configured.isdigit() and int(configured) > 0):
        share = trainer_plan(cores, running, processes, None).threads[1]
        if share < current:
            torch.set_num_threads(share)
            _LOWERED.setdefault("from", current)
            _LOWERED["to"] = current = share
            if not quiet:
                console.print(
                    f"torch trains with {share} thread(s) per process: llama.cpp servers "
                    f"running here use {sum(running)} of the {cores} cores",
                    markup=False,
                    highlight=False,
                )
    warning = trainer_plan(cores, running, processes, current).warning
    if warning:
        console.print(f"[yellow]warning[/]: {warning}", highlight=False)
