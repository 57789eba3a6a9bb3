"""`train.report_to`: the Trainer logs to the experiment trackers a user names."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from mindmirror.errors import UserError
from mindmirror.records import Record
from mindmirror.student.train import train
from tests.student.test_student_training import make_run, recipe


def test_tensorboard_event_files_appear(
    tmp_path: Path, records: list[Record], tiny_llama: Path
) -> None:
    pytest.importorskip("tensorboard", reason="needs tensorboard (pip install tensorboard)")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = make_run(tmp_path, records)
    cfg = recipe(run, tiny_llama, method="step_by_step", max_steps=2, report_to="tensorboard")
    train(cfg, run, quiet=True)
    events = sorted(run.stage("reasoning").rglob("events.out.tfevents.*"))
    assert events, "no TensorBoard event file under the stage folder"
    logged = EventAccumulator(str(events[0].parent)).Reload()
    assert "train/loss" in logged.Tags()["scalars"]


def test_a_tracker_that_is_not_installed_is_one_clear_line(
    tmp_path: Path, records: list[Record], tiny_llama: Path
) -> None:
    if importlib.util.find_spec("wandb") is not None:
        pytest.skip("wandb is installed here")
    run = make_run(tmp_path, records)
    cfg = recipe(run, tiny_llama, method="step_by_step", max_steps=1, report_to=["wandb"])
    with pytest.raises(UserError, match=r"train.report_to: wandb is not installed: pip install"):
        train(cfg, run, quiet=True)
