"""Progress where there is no terminal: plain lines at a steady pace; a rich bar on terminals."""

from __future__ import annotations

import io
import logging
import os
import subprocess
import sys
import warnings
from types import SimpleNamespace

import pytest
from rich.console import Console

from mindmirror import progress
from mindmirror.progress import ProgressReport, format_duration, log_console, quiet_libraries
from mindmirror.student.trainer import RichProgress


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def console(terminal: bool) -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(file=out, force_terminal=terminal, width=120), out


def test_plain_lines_at_a_steady_pace_and_at_the_end() -> None:
    con, out = console(terminal=False)
    clock = Clock()
    with ProgressReport("CoTs", 100, console=con, interval_s=10, clock=clock) as report:
        for _ in range(50):  # 50 items over 25 s: a line every 10 s, not one per item
            clock.now += 0.5
            report.update(advance=1, status="1,234 tok $0.0100")
    lines = out.getvalue().splitlines()
    assert lines[0] == "CoTs: 0/100 started"
    assert len(lines) == 1 + 2 + 1, lines
    assert lines[1] == "CoTs: 20/100 (20%) 2.00/s ETA 40s  1,234 tok $0.0100"
    assert lines[-1] == "CoTs: 50/100 (50%) 2.00/s done in 25s  1,234 tok $0.0100"
    assert "\x1b[" not in out.getvalue()  # no terminal codes in a log file


def test_a_resumed_count_rates_only_the_new_work() -> None:
    con, out = console(terminal=False)
    clock = Clock()
    with ProgressReport("train", 10, completed=6, unit="step", console=con, clock=clock) as r:
        clock.now += 8
        r.update(completed=8)
    assert out.getvalue().splitlines()[-1] == "train: 8/10 (80%) 0.25 step/s done in 8s"


def test_a_terminal_gets_a_rich_bar_and_quiet_gets_nothing() -> None:
    con, out = console(terminal=True)
    with ProgressReport("CoTs", 4, console=con) as report:
        report.update(advance=4)
    assert "started" not in out.getvalue() and "4/4" in out.getvalue()
    con, out = console(terminal=False)
    with ProgressReport("CoTs", 4, console=con, enabled=False) as report:
        report.update(advance=4)
    assert out.getvalue() == ""


def test_failed_items_are_counted_in_the_line_and_the_bar() -> None:
    con, out = console(terminal=False)
    clock = Clock()
    with ProgressReport("CoTs", 12, console=con, clock=clock) as report:
        clock.now += 2
        report.update(advance=12, failed=12)
    assert out.getvalue().splitlines()[-1] == "CoTs: 12/12 (100%, 12 failed) 6.00/s done in 2s"
    con, out = console(terminal=True)
    with ProgressReport("CoTs", 4, console=con) as report:
        report.update(advance=4, failed=1, status="9 tok")
    assert "1 failed" in out.getvalue() and "9 tok" in out.getvalue()


def test_log_lines_stay_whole_in_a_pipe(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """rich wraps at 80 columns when stderr is no terminal; a log wants one event per line."""
    monkeypatch.delenv("COLUMNS", raising=False)
    event = "cell 3/12 mind_mirror-n5-seed0: train + eval " + "(answer, cot, vote, mirror) " * 4
    log_console().print(f"[bold]{event}[/]")
    assert capsys.readouterr().err == event + "\n"


def test_the_trainer_reports_plain_lines_with_the_loss() -> None:
    con, out = console(terminal=False)
    callback = RichProgress("step_by_step/reasoning", con)
    state = SimpleNamespace(is_world_process_zero=True, max_steps=4, global_step=0)
    callback.on_train_begin(None, state, None)
    for step in range(1, 5):
        state.global_step = step
        callback.on_log(None, state, None, logs={"loss": 1.0 / step})
        callback.on_step_end(None, state, None)
    callback.on_log(None, state, None, logs={"eval_accuracy": 0.5})
    callback.on_train_end(None, state, None)
    lines = out.getvalue().splitlines()
    assert lines[0] == "step_by_step/reasoning: 0/4 started"
    assert lines[-1].startswith("step_by_step/reasoning: 4/4 (100%) ")
    assert "step/s done in" in lines[-1] and "loss 0.250  val accuracy 0.500" in lines[-1]


def test_format_duration() -> None:
    assert [format_duration(s) for s in (4.4, 133, 3900)] == ["4s", "2m13s", "1h05m"]
    assert format_duration(float("inf")) == "?"


def test_library_noise_is_silenced_unless_the_user_set_it(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in progress.LIBRARY_QUIET_ENV:
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("TRANSFORMERS_VERBOSITY", "info")
    with warnings.catch_warnings():
        quiet_libraries()
        assert os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] == "1"
        assert os.environ["TRANSFORMERS_VERBOSITY"] == "info"  # the user's own choice wins
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("default")
            quiet_libraries()
            warnings.warn_explicit("noise", UserWarning, "x.py", 1, module="transformers.x")
            warnings.warn_explicit("ours", UserWarning, "y.py", 1, module="mindmirror.y")
    assert [str(w.message) for w in caught] == ["ours"]


def test_transformers_bars_are_off_after_quiet_libraries() -> None:
    """They read the switches at import time: a fresh process, as the CLI is."""
    code = (
        "from mindmirror.progress import quiet_libraries; quiet_libraries(); "
        "from transformers.utils import logging; "
        "print(logging.is_progress_bar_enabled(), logging.get_verbosity())"
    )
    env = {k: v for k, v in os.environ.items() if k not in progress.LIBRARY_QUIET_ENV}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    )
    assert out.stdout.split() == ["False", str(logging.ERROR)]


def test_transformers_logs_are_quiet_when_it_was_imported_first() -> None:
    """The benches import transformers before they call quiet_libraries: its logging level was
    read at import, so a checkpoint's load report ("missing keys: lm_head.weight", tied to the
    embeddings) reached the protocol's log. The user's own level still wins."""
    code = (
        "from transformers.utils import logging; "
        "from mindmirror.progress import quiet_libraries; quiet_libraries(); "
        "print(logging.get_verbosity())"
    )
    env = {k: v for k, v in os.environ.items() if k not in progress.LIBRARY_QUIET_ENV}
    for user, level in ((None, logging.ERROR), ("info", logging.INFO)):
        run_env = env if user is None else {**env, "TRANSFORMERS_VERBOSITY": user}
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, env=run_env, check=True
        )
        assert out.stdout.split() == [str(level)]
