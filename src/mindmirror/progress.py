"""Rich progress pieces shared by the teacher engine and student generation."""

from __future__ import annotations

from rich.progress import ProgressColumn, Task
from rich.text import Text


class RateColumn(ProgressColumn):
    """Items per second (``-/s`` until rich has measured a speed)."""

    def render(self, task: Task) -> Text:
        """The task's current (or final) speed."""
        speed = task.finished_speed or task.speed
        return Text(f"{speed:.1f}/s" if speed else "-/s", style="progress.data.speed")
