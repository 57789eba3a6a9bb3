"""Loading and saving students: kind detection, round trips, clear errors, the GGUF fix."""

from __future__ import annotations

import json

import pytest
import torch
from transformers import AutoModelForCausalLM

from mindmirror.errors import UserError
from mindmirror.rundir import RunDir
from mindmirror.student.model import (
    add_lora,
    convert_gguf,
    find_student,
    load_student,
    save_student,
    student_info,
)

IDS = torch.tensor([[5, 6, 7, 8, 9]])


def test_kind_is_detected_and_causal_tokenizers_pad_left(tiny_t5, tiny_llama) -> None:
    t5, t5_tok, t5_kind = load_student(tiny_t5)
    llama, llama_tok, llama_kind = load_student(tiny_llama)
    assert (t5_kind, llama_kind) == ("seq2seq", "causal")
    assert type(t5).__name__ == "T5ForConditionalGeneration"
    assert type(llama).__name__ == "LlamaForCausalLM"
    assert llama_tok.padding_side == "left" and llama_tok.pad_token is not None
    assert t5_tok.pad_token is not None


def test_save_and_load_round_trip_with_lora_merged(tmp_path, tiny_llama) -> None:
    model, tokenizer, kind = load_student(tiny_llama)
    lora = add_lora(model, kind, r=4, alpha=8, dropout=0.0)
    # Move the adapters off zero so that merging them changes the weights.
    with torch.no_grad():
        for name, param in lora.named_parameters():
            if "lora_B" in name:
                param.fill_(0.01)
    expected = lora(IDS).logits
    path = save_student(lora, tokenizer, tmp_path / "student", kind=kind, info={"stage": "x"})
    loaded, _, loaded_kind = load_student(path)
    assert loaded_kind == "causal"
    assert torch.allclose(loaded(IDS).logits, expected, atol=1e-5)
    assert student_info(path) == {"kind": "causal", "stage": "x"}
    # The adapters stay on the training model (merging worked on a copy).
    assert any("lora_" in name for name, _ in lora.named_parameters())


def test_run_directories_resolve_to_their_final_student(tmp_path, tiny_t5) -> None:
    run = RunDir(tmp_path / "run")
    run.student.mkdir(parents=True)
    with pytest.raises(UserError, match=r"no trained student in .*: train first"):
        find_student(run.root)
    model, tokenizer, kind = load_student(tiny_t5)
    save_student(model, tokenizer, run.stage("reasoning") / "best", kind=kind)
    (run.student / "train.json").write_text(json.dumps({"final": "student/reasoning/best"}))
    assert find_student(run.root) == run.stage("reasoning") / "best"
    assert load_student(run.root)[2] == "seq2seq"


def test_missing_students_are_user_errors(tmp_path) -> None:
    with pytest.raises(UserError, match="student GGUF file not found"):
        load_student(tmp_path / "nope.gguf")
    with pytest.raises(UserError, match="student model not found"):
        load_student("./no/such/folder")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="cannot load student"):
        load_student(tmp_path / "empty")


@pytest.mark.slow
def test_gguf_is_converted_once_to_a_plain_model_with_identical_logits(tmp_path, gguf_path) -> None:
    folder = convert_gguf(gguf_path, cache_dir=tmp_path)
    assert convert_gguf(gguf_path, cache_dir=tmp_path) == folder
    config = json.loads((folder / "config.json").read_text())
    assert "quantization_config" not in config
    model, tokenizer, kind = load_student(gguf_path, cache_dir=tmp_path)
    assert kind == "causal" and not getattr(model, "is_quantized", False)
    assert getattr(model, "hf_quantizer", None) is None
    direct = AutoModelForCausalLM.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)
    ids = tokenizer("The answer is (84 / 2).", return_tensors="pt").input_ids
    with torch.no_grad():
        assert torch.equal(model(ids).logits, direct(ids).logits)
