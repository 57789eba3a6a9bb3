"""The peak resident memory of one training stage, from the kernel's own high-water mark.

Linux keeps a process's peak resident set (``VmHWM`` in ``/proc/self/status``) and lets the
process reset it (writing ``5`` to ``/proc/self/clear_refs``). Resetting at a stage's start
and reading at its end gives that stage's peak even when one process trains many stages (the
SVAMP protocol trains dozens), at no cost to the training: no sampling thread, no profiler.
Where the reset is refused the reading is the process's peak so far, an upper bound on the
stage's; elsewhere (macOS, Windows) there is no reading.
"""

from __future__ import annotations

from pathlib import Path

STATUS = Path("/proc/self/status")
CLEAR_REFS = Path("/proc/self/clear_refs")


def reset_peak() -> bool:
    """Start a new peak from this process's current resident memory; whether it was reset."""
    try:
        CLEAR_REFS.write_text("5")
    except OSError:
        return False
    return True


def peak_rss_mb() -> float | None:
    """This process's peak resident memory since the last reset (else since it started), in
    MB; None where the kernel does not report it."""
    try:
        lines = STATUS.read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    return None
