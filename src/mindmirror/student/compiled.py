"""``train.compile_layers``: the student's repeated blocks compiled with ``torch.compile``.

Profiled on 1 CPU thread (SmolLM2-135M, bf16 autocast), a training step spends as long in
element-wise kernels and autocast's bf16/fp32 casts (RMSNorm, rotary embeddings, SiLU, residual
adds, and their backward) as in its matmuls. Inductor fuses each block's chain of them into a
few loops, forward and backward alike.

Only the blocks are compiled (regional compilation): every decoder layer runs the same code,
so one compiled graph serves all of them and the compile cost does not grow with the depth;
embeddings, the vocabulary projection and the loss (logits at target positions only) stay
eager. Shapes are dynamic from the first call: batches differ in length and rows, and static
shapes would compile again for each new one. Validation's generation runs the blocks eagerly
(:func:`eager`): its cached single-token steps would be other graphs, each compiled for a
handful of calls. A stage's saved student is a plain model (compiling changes no weight names).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn

from mindmirror.errors import UserError
from mindmirror.student.model import base_model


def repeated_blocks(model: nn.Module) -> list[nn.Module]:
    """The model's repeated blocks: modules whose class the model lists as never to be split
    across devices (``_no_split_modules``: ``LlamaDecoderLayer``, ``T5Block``, ...); a LoRA
    model's blocks are its base model's."""
    names = set(getattr(base_model(model), "_no_split_modules", None) or ())
    return [module for module in model.modules() if type(module).__name__ in names]


def compile_blocks(model: nn.Module) -> int:
    """Compile each repeated block of ``model`` in place (dynamic shapes); return how many.

    Raises:
        UserError: the model names no repeated blocks (nothing to compile).
    """
    blocks = repeated_blocks(model)
    if not blocks:
        raise UserError(
            f"train.compile_layers: {type(model).__name__} names no repeated blocks to compile "
            "(no _no_split_modules); set train.compile_layers to false"
        )
    for block in blocks:
        block.compile(dynamic=True)
    return len(blocks)


@contextlib.contextmanager
def eager() -> Iterator[None]:
    """Run compiled modules eagerly inside the block (no compiling, no compiled graphs); a
    torch without ``set_stance`` (before 2.6) runs them as they are."""
    if not hasattr(torch.compiler, "set_stance"):
        yield
        return
    with torch.compiler.set_stance("force_eager"):
        yield
