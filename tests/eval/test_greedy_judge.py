"""Validating a judge reads each prompt once: ``greedy_judge`` gives what greedy generation and
``verdict_probs`` give apart, on tiny real models (no download)."""

from __future__ import annotations

import pytest
import torch

from mindmirror.student.generate import verdict_probs
from mindmirror.student.model import add_lora
from mindmirror.student.validate import greedy_generate, greedy_judge
from tests.eval.conftest import Fitted, memorised_pairs
from tests.eval.tiny import tiny_model, tiny_tokenizer

#: Prompts of different lengths, so the batch is left-padded.
INPUTS = [
    "verdict: x y",
    "verdict: Tom has 3 apples and buys 4 more. CoT: 3 + 4 = 7, so 7.",
    "verdict: a",
]


def apart(model: torch.nn.Module, tok: object, kind: str, max_new_tokens: int) -> tuple:
    """The two passes the trainer ran before: greedy text, then the verdict distribution."""
    texts = greedy_generate(model, tok, kind, INPUTS, max_new_tokens=max_new_tokens, batch_size=2)
    return texts, verdict_probs(model, tok, INPUTS, batch_size=2)


@pytest.mark.parametrize("kind", ["causal", "seq2seq", "lora"])
def test_one_pass_equals_two(kind: str) -> None:
    """Random tiny models run to the token limit, so the KV cache really is cut back from a
    long generation before the verdicts continue it; LoRA goes through peft's wrapper."""
    seq2seq = kind == "seq2seq"
    tok = tiny_tokenizer(seq2seq)
    model = tiny_model(seq2seq, len(tok))
    if kind == "lora":
        model = add_lora(model, "causal", r=4, alpha=8)
        with torch.no_grad():  # peft starts B at zero: the adapter must change the outputs
            for name, weight in model.named_parameters():
                if "lora_B" in name:
                    weight.normal_(std=0.5)
    student_kind = "seq2seq" if seq2seq else "causal"
    texts, probs = greedy_judge(model, tok, student_kind, INPUTS, max_new_tokens=7, batch_size=2)
    want_texts, want_probs = apart(model, tok, student_kind, 7)
    assert texts == want_texts
    assert any(texts)  # something was generated after the prompt
    for got, want in zip(probs, want_probs, strict=True):
        assert list(got) == list(want)
        for verdict in got:
            assert got[verdict] == pytest.approx(want[verdict], abs=1e-5)


def test_trained_judge_early_stop_and_mode_kept(fitted_causal: Fitted) -> None:
    """A fitted judge writes its verdict and stops (EOS) before the token limit; its verdicts
    come out right and the model is left in the mode it was in."""
    student = fitted_causal.student
    pairs = memorised_pairs()[4:]
    student.model.train()
    texts, probs = greedy_judge(
        student.model,
        student.tokenizer,
        "causal",
        [i for i, _ in pairs],
        max_new_tokens=32,
        batch_size=2,
    )
    assert student.model.training
    student.model.eval()
    assert texts == [t for _, t in pairs]
    assert probs[0]["correct"] > 0.9
    assert probs[1]["wrong"] > 0.9
