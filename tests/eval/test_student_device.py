"""A student generates on the GPU where there is one (training already ran there), and only
where transformers generates: a student served by llama.cpp keeps its weights on the CPU."""

from __future__ import annotations

import pytest
import torch

from mindmirror.student.generate import TransformersGenerator
from mindmirror.student.infer import Student


class _Model:
    """Only what a generator touches when it is made: the device and ``to``."""

    def __init__(self) -> None:
        self.device = torch.device("cpu")
        self.moved: list[str] = []

    def to(self, device: str) -> _Model:
        self.moved.append(device)
        return self


def test_transformers_generation_moves_the_student_to_the_gpu_only_where_there_is_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    model = _Model()
    student = Student(model, None, "causal")  # type: ignore[arg-type]
    assert model.moved == []  # loading alone moves nothing: llama.cpp may generate for it
    assert isinstance(student.generator, TransformersGenerator)
    assert model.moved == ["cuda"]
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    on_cpu = _Model()
    TransformersGenerator(on_cpu, None)  # type: ignore[arg-type]
    assert on_cpu.moved == []


def test_a_served_student_stays_on_the_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    model = _Model()
    server = object()  # stands for a llama.cpp server generating for the student
    student = Student(model, None, "causal", server=server)  # type: ignore[arg-type]
    assert student.generator is server
    assert model.moved == []
