"""Work that several training processes (``accelerate launch``) must do once.

Sampling the student's own CoTs, asking a teacher about them and fitting a confidence are not
split across processes: the main process does them while the others wait, then the others
read back what it wrote (each of those steps reads back its own files when their settings
match). Waiting that long needs a barrier of its own: the training's collectives time out
after 30 minutes, and sampling or a paid teacher can take hours.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

import torch
import torch.distributed as dist
from transformers import TrainingArguments

#: How long the other processes wait for the main one's sampling and teacher requests.
WAIT = timedelta(days=2)


def several_processes() -> bool:
    """Whether a launcher started this process as one of several."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


@functools.cache
def _waiting_group() -> dist.ProcessGroup:
    """A gloo group (CPU, out of NCCL's watchdog) with a long timeout, made once by every
    process at the same point (the first ``main_process_first``)."""
    if not dist.is_initialized():
        # No stage has trained in this launch (each was read back), so nothing has started
        # the process group: start it as Trainer would; accelerate then adopts it.
        cuda = torch.cuda.is_available()
        if cuda:
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        seconds = TrainingArguments.__dataclass_fields__["ddp_timeout"].default
        dist.init_process_group(
            backend="nccl" if cuda else "gloo", timeout=timedelta(seconds=seconds)
        )
    return dist.new_group(backend="gloo", timeout=WAIT)


@contextmanager
def main_process_first() -> Iterator[None]:
    """Run the block on the main process, then on the others; a no-op in a single process.

    A failure on the main process leaves the others waiting until the launcher stops them
    (``accelerate launch`` does at once): letting them go on would have them read files that
    were never written.
    """
    if not several_processes():
        yield
        return
    group = _waiting_group()
    main = dist.get_rank() == 0
    if not main:
        dist.barrier(group=group)
    yield
    if main:
        dist.barrier(group=group)
