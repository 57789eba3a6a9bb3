"""bench/matmul_ceiling.py: the GEMMs it times are the ones a training step of the student runs."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from tests.eval.tiny import tiny_model

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
from matmul_ceiling import linear_shapes, shape_ceiling, step_gemms


def test_the_shapes_are_the_students_linear_layers_with_their_counts() -> None:
    model = tiny_model(False, 100)  # Llama: 2 layers, hidden 32, 4 heads of 8, 2 KV heads
    shapes = linear_shapes(model)
    assert shapes == {
        (32, 32, False): 4,  # q and o projections, 2 layers
        (32, 16, False): 4,  # k and v (2 KV heads of 8)
        (32, 64, False): 4,  # gate and up
        (64, 32, False): 2,  # down
        (32, 100, True): 1,  # the vocabulary head, once
    }


def test_a_step_runs_the_forward_and_both_gradients_of_equal_flops() -> None:
    gemms = step_gemms(576, 1536, 2048)
    assert gemms == [(2048, 576, 1536), (2048, 1536, 576), (1536, 2048, 576)]
    # Each is a real product of the step: the forward and the input gradient through the same
    # weight, the weight gradient over the step's rows.
    x, w, dy = torch.randn(8, 4), torch.randn(6, 4), torch.randn(8, 6)
    products = [(x, w.T), (dy, w), (dy.T, x)]
    assert [(a.shape[0], a.shape[1], b.shape[1]) for a, b in products] == step_gemms(4, 6, 8)


def test_the_ceiling_counts_every_product_of_the_step() -> None:
    shapes = linear_shapes(tiny_model(False, 100))
    ceiling, rows = shape_ceiling(shapes, 64, 16, torch.float32, seconds=0.01)
    assert ceiling > 0
    assert len(rows) == 3 * len(shapes)
    assert sum(share for _, _, share in rows) == pytest.approx(1.0)
    assert sum("head" in name for name, _, _ in rows) == 3
    assert any("(16x32x100)" in name for name, _, _ in rows)  # the head at logit positions only
