"""``train.compile_layers``: the repeated blocks compiled, the same training, eager generation."""

from __future__ import annotations

import json

import pytest
import torch
from pydantic import ValidationError
from torch._dynamo.utils import counters
from torch.nn.utils import parameters_to_vector

from mindmirror.config import TrainConfig
from mindmirror.errors import UserError
from mindmirror.student.compiled import compile_blocks, eager, repeated_blocks
from mindmirror.student.model import add_lora, load_student
from mindmirror.student.train import train
from tests.student.test_student_training import make_run, recipe


def captured() -> int:
    """Frames dynamo has traced so far in this process."""
    return counters["stats"]["calls_captured"]


def test_the_option_is_off_by_default_and_a_plain_bool() -> None:
    assert TrainConfig().compile_layers is False
    assert TrainConfig(compile_layers=True).compile_layers is True
    with pytest.raises(ValidationError):
        TrainConfig(compile_layers="sometimes")


def test_the_blocks_are_the_decoder_layers_and_t5_blocks(tiny_llama, tiny_t5) -> None:
    llama = load_student(tiny_llama)[0]
    assert [type(b).__name__ for b in repeated_blocks(llama)] == ["LlamaDecoderLayer"] * 2
    lora = add_lora(load_student(tiny_llama)[0], "causal", r=2)
    assert len(repeated_blocks(lora)) == 2
    t5 = load_student(tiny_t5)[0]
    assert [type(b).__name__ for b in repeated_blocks(t5)] == ["T5Block"] * 4
    with pytest.raises(UserError, match="names no repeated blocks"):
        compile_blocks(torch.nn.Linear(2, 2))


def test_compiled_blocks_run_eagerly_inside_eager(tiny_llama) -> None:
    model, tokenizer, _ = load_student(tiny_llama)
    plain = model(**tokenizer(["Tom has 3 apples."], return_tensors="pt")).logits
    assert compile_blocks(model) == 2
    ids = tokenizer(["Tom has 3 apples."], return_tensors="pt")
    before = captured()
    with eager():
        torch.testing.assert_close(model(**ids).logits, plain)
    assert captured() == before
    torch.testing.assert_close(model(**ids).logits, plain, rtol=1e-4, atol=1e-4)
    assert captured() > before


def test_compiled_training_learns_what_eager_training_learns(tmp_path, records, tiny_llama) -> None:
    trained, summaries = {}, {}
    for on in (False, True):
        run = make_run(tmp_path / str(on), records)
        # bf16 autocast as on the CPUs that train in it; batches of different lengths.
        settings = {"method": "multi_cot", "max_steps": 4, "precision": "bf16_force"}
        before = captured()
        summary = train(recipe(run, tiny_llama, compile_layers=on, **settings), run, quiet=True)
        assert (captured() > before) is on
        summaries[on] = summary["stages"]["reasoning"]
        trained[on] = load_student(run.root / summary["final"])[0]
        assert json.loads((run.student / "train.json").read_text())["recipe"].count(
            f"compile_layers: {'true' if on else 'false'}"
        )
        # Validation generated (eagerly) and chose a checkpoint.
        assert summaries[on]["best_metric"]["eval_accuracy"] is not None
    eager_loss, compiled_loss = summaries[False]["train_loss"], summaries[True]["train_loss"]
    assert compiled_loss == pytest.approx(eager_loss, rel=1e-3)
    # The weights moved the same way: what compiling changes (bf16 rounding, amplified by
    # Adam's normalised steps on weights with tiny gradients; about 2% here) is a small part
    # of what the 4 steps changed. The saved student holds them under the plain names.
    base = load_student(tiny_llama)[0]
    assert trained[True].state_dict().keys() == base.state_dict().keys()
    start, eager_w, compiled_w = (
        parameters_to_vector(m.parameters()) for m in (base, trained[False], trained[True])
    )
    assert (compiled_w - eager_w).norm() < 0.1 * (eager_w - start).norm()
