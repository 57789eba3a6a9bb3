"""Progress of long work, one mechanism for the request engine, student generation and training.

``ProgressReport`` shows done/total, rate, ETA and a status text (tokens and cost, loss):

- on a terminal (or in Jupyter), a rich bar on stderr;
- elsewhere (nohup, CI, a pipe), plain lines on stderr: one at the start, one every
  ``interval_s`` seconds while work advances, and one at the end, e.g.
  ``teacher: CoTs: 120/400 (30%) 2.10/s ETA 2m13s  51,234 tok $0.0123``;
- items that ended without a result (``update(failed=...)``) count as done, and the count
  says how many of them failed: ``12/12 (100%, 12 failed)``;
- with ``enabled=False`` (``--quiet``), nothing.

``log_console`` is the stderr console for one-line events: on a terminal rich wraps them at its
width; in a pipe or a log file (where rich would assume 80 columns) each stays one line.

``quiet_libraries`` silences transformers', huggingface_hub's and datasets' own progress bars and
warnings (the CLI calls it unless ``--verbose``), so stderr carries only our lines; that includes
bare ``tqdm`` bars such as transformers' "Converting and de-quantizing GGUF tensors" when it
converts a ``.gguf`` student (``TQDM_DISABLE``, read by every new bar).
"""

from __future__ import annotations

import functools
import math
import os
import sys
import time
import warnings
from collections.abc import Callable
from types import TracebackType

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

#: Seconds between plain progress lines (a log stays readable, a stalled job still shows).
PLAIN_INTERVAL_S = 15.0
#: Environment switches read by the libraries at import time (hence set before importing them).
LIBRARY_QUIET_ENV = {
    "TRANSFORMERS_VERBOSITY": "error",
    "TRANSFORMERS_NO_ADVISORY_WARNINGS": "1",
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    "HF_DATASETS_DISABLE_PROGRESS_BARS": "1",
    "TQDM_DISABLE": "1",
}
LIBRARY_MODULES = r"(transformers|huggingface_hub|datasets|peft|accelerate)(\.|$)"


def log_console(*, quiet: bool = False) -> Console:
    """A stderr console whose ``print`` keeps each event on one line when stderr is not a
    terminal (a log is read line by line and grepped; rich would wrap it at 80 columns)."""
    console = Console(stderr=True, quiet=quiet)
    console.soft_wrap = not (console.is_terminal or console.is_jupyter)
    return console


class RateColumn(ProgressColumn):
    """Items per second (``-/s`` until rich has measured a speed)."""

    def __init__(self, unit: str = "") -> None:
        super().__init__()
        self.unit = f" {unit}" if unit else ""

    def render(self, task: Task) -> Text:
        """The task's current (or final) speed."""
        speed = task.finished_speed or task.speed
        text = f"{format_rate(speed)}{self.unit}/s" if speed else f"-{self.unit}/s"
        return Text(text, style="progress.data.speed")


def format_rate(per_second: float) -> str:
    """A rate with two decimals under 10/s, one above (``0.25``, ``12.3``)."""
    return f"{per_second:.2f}" if per_second < 10 else f"{per_second:.1f}"


def format_duration(seconds: float) -> str:
    """``45s``, ``2m13s``, ``1h05m`` (``?`` when unknown)."""
    if not math.isfinite(seconds) or seconds < 0:
        return "?"
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


class ProgressReport:
    """Progress of one loop over ``total`` items (see the module docstring).

    Use as a context manager (or ``start``/``stop``); call ``update`` as work advances.
    ``unit`` names the items in the rate (``step/s``); ``transient`` removes the terminal bar
    at the end (plain lines stay). ``clock`` is injectable for tests.
    """

    def __init__(
        self,
        description: str,
        total: int,
        *,
        completed: int = 0,
        unit: str = "",
        console: Console | None = None,
        enabled: bool = True,
        transient: bool = False,
        interval_s: float = PLAIN_INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.description = description
        self.total = total
        self.completed = completed
        self.failed = 0
        self.unit = unit
        self.status = ""
        self.console = console or log_console()
        self.enabled = enabled
        self.transient = transient
        self.interval_s = interval_s
        self.clock = clock
        self.rich = enabled and (self.console.is_terminal or self.console.is_jupyter)
        self._bar: Progress | None = None
        self._task: TaskID | None = None
        self._started = (0.0, completed)
        self._last_line = 0.0

    def start(self) -> ProgressReport:
        """Begin: the terminal bar, or the plain start line."""
        self._started = (self.clock(), self.completed)
        self._last_line = self._started[0]
        if self.rich:
            self._bar = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                RateColumn(self.unit),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                TextColumn("{task.fields[status]}"),
                console=self.console,
                transient=self.transient,
            )
            self._bar.start()
            self._task = self._bar.add_task(
                self.description, total=self.total, completed=self.completed, status=""
            )
        elif self.enabled:
            self._print(f"{self.description}: {self.completed}/{self.total} started")
        return self

    def update(
        self,
        *,
        completed: int | None = None,
        advance: int = 0,
        failed: int = 0,
        status: str | None = None,
    ) -> None:
        """Set or advance the count (``failed`` of the ``advance`` ended without a result) and
        the status text; a plain line when one is due."""
        self.completed = (self.completed if completed is None else completed) + advance
        self.failed += failed
        if status is not None:
            self.status = status
        if self._bar is not None and self._task is not None:
            self._bar.update(self._task, completed=self.completed, status=self._bar_status())
        elif self.enabled and not self.rich and self.clock() - self._last_line >= self.interval_s:
            self._print(self.line())

    def line(self, final: bool = False) -> str:
        """The plain progress line: done/total, share, rate, ETA (or elapsed time), status."""
        now = self.clock()
        elapsed = now - self._started[0]
        done = self.completed - self._started[1]
        rate = done / elapsed if elapsed > 0 and done > 0 else 0.0
        failed = f", {self.failed:,} failed" if self.failed else ""
        share = f" ({self.completed / self.total:.0%}{failed})" if self.total else failed
        unit = f" {self.unit}" if self.unit else ""
        speed = f"{format_rate(rate)}{unit}/s" if rate else f"-{unit}/s"
        if final:
            when = f"done in {format_duration(elapsed)}"
        else:
            left = (self.total - self.completed) / rate if rate else math.inf
            when = f"ETA {format_duration(left)}"
        text = f"{self.description}: {self.completed}/{self.total}{share} {speed} {when}"
        return f"{text}  {self.status}" if self.status else text

    def _bar_status(self) -> str:
        """The status column of the terminal bar, led by the failures when there are any."""
        if not self.failed:
            return self.status
        failed = f"[red]{self.failed:,} failed[/]"
        return f"{failed}  {self.status}" if self.status else failed

    def _print(self, text: str) -> None:
        self._last_line = self.clock()
        self.console.print(text, markup=False, highlight=False, soft_wrap=True)

    def stop(self) -> None:
        """End: remove or keep the terminal bar, or print the final plain line."""
        if self._bar is not None:
            self._bar.stop()
            self._bar = self._task = None
        elif self.enabled:
            self._print(self.line(final=True))

    def __enter__(self) -> ProgressReport:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _disable_tqdm() -> None:
    """Default ``disable=True`` for bars of the tqdm already imported (once: tqdm read
    ``TQDM_DISABLE`` when it was imported, so setting it now changes nothing); a bar that
    passes ``disable`` itself still decides."""
    from tqdm import std

    init = std.tqdm.__dict__["__init__"]  # a partialmethod where TQDM_* was set at import
    if not (isinstance(init, functools.partialmethod) and init.keywords.get("disable")):
        std.tqdm.__init__ = functools.partialmethod(init, disable=True)  # type: ignore[method-assign]


def quiet_libraries() -> None:
    """Silence the progress bars and warnings of transformers, huggingface_hub, datasets,
    peft, accelerate and bare tqdm (values the user set in the environment win).

    Call it before they are imported: they (and tqdm) read these switches at import time.
    Called later (a script that imported transformers first, as the benches do), it switches
    off the bars of transformers and huggingface_hub already loaded, lowers transformers'
    logging to errors (its load reports, e.g. a tied ``lm_head`` "missing" from a
    checkpoint), and makes ``disable`` the default of every new bare tqdm bar (what
    ``TQDM_DISABLE`` would have done)."""
    for key, value in LIBRARY_QUIET_ENV.items():
        os.environ.setdefault(key, value)
    warnings.filterwarnings("ignore", module=LIBRARY_MODULES)
    if os.environ["TQDM_DISABLE"] == "1" and "tqdm" in sys.modules:
        _disable_tqdm()
    if os.environ["TRANSFORMERS_VERBOSITY"] == "error" and "transformers" in sys.modules:
        from transformers.utils import logging

        logging.set_verbosity_error()
    if os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] != "1":
        return
    if "huggingface_hub" in sys.modules:
        from huggingface_hub.utils import disable_progress_bars

        disable_progress_bars()
    if "transformers" in sys.modules:
        from transformers.utils import logging

        logging.disable_progress_bar()
