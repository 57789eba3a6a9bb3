"""A loaded student generates on the GPU where there is one (training already ran there)."""

from __future__ import annotations

import pytest
import torch

from mindmirror.student.infer import Student


class _Model:
    """Only what ``Student`` touches when it is made: the device and ``to``."""

    def __init__(self) -> None:
        self.device = torch.device("cpu")
        self.moved: list[str] = []

    def to(self, device: str) -> _Model:
        self.moved.append(device)
        return self


def test_a_student_moves_to_the_gpu_only_where_there_is_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    on_gpu = _Model()
    Student(on_gpu, None, "causal")  # type: ignore[arg-type]
    assert on_gpu.moved == ["cuda"]
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    on_cpu = _Model()
    Student(on_cpu, None, "causal")  # type: ignore[arg-type]
    assert on_cpu.moved == []
