"""Batched generation and sequence scoring on tiny real models (no download)."""

from __future__ import annotations

import inspect
import math
import warnings

import pytest
import torch

from mindmirror.records import VERDICTS
from mindmirror.student.generate import candidate_logprobs, generate, verdict_probs
from mindmirror.student.model import add_lora, base_model
from tests.eval.conftest import COT_RIGHT, COT_WRONG, Fitted, memorised_pairs
from tests.eval.tiny import tiny_model, tiny_tokenizer

INPUTS = ["explain: a", "predict: Tom has 3 apples and buys 4 more, then 2 more", "verdict: x y"]


@pytest.mark.parametrize("seq2seq", [False, True], ids=["causal", "seq2seq"])
def test_batched_greedy_equals_one_at_a_time(seq2seq: bool) -> None:
    """Left padding (causal) and masking are right when a batch decodes like single inputs."""
    tok = tiny_tokenizer(seq2seq)
    model = tiny_model(seq2seq, len(tok))
    if not seq2seq:
        tok.padding_side = "left"
    batched = generate(model, tok, INPUTS, max_new_tokens=6, batch_size=8)
    single = [generate(model, tok, [text], max_new_tokens=6)[0] for text in INPUTS]
    assert [b[0].text for b in batched] == [s[0].text for s in single]
    for b, s in zip(batched, single, strict=True):
        assert b[0].logprob == pytest.approx(s[0].logprob, abs=1e-4)
        assert b[0].logprob <= 0.0


def test_memorised_cots_come_back_new_text_only(fitted_student: Fitted) -> None:
    """Only the continuation is decoded (no prompt, no special tokens)."""
    student = fitted_student.student
    pairs = memorised_pairs()[:3]
    out = generate(student.model, student.tokenizer, [i for i, _ in pairs], max_new_tokens=24)
    assert [o[0].text for o in out] == [t for _, t in pairs]
    assert all(math.exp(o[0].logprob) > 0.5 for o in out)


def test_k_samples_per_input_in_order_and_seeded(fitted_causal: Fitted) -> None:
    student = fitted_causal.student
    inputs = [i for i, _ in memorised_pairs()[:2]]
    torch.manual_seed(3)
    first = generate(
        student.model,
        student.tokenizer,
        inputs,
        num_samples=4,
        sample=True,
        temperature=1.0,
        max_new_tokens=24,
        batch_size=3,
    )
    torch.manual_seed(3)
    again = generate(
        student.model,
        student.tokenizer,
        inputs,
        num_samples=4,
        sample=True,
        temperature=1.0,
        max_new_tokens=24,
        batch_size=3,
    )
    assert [len(s) for s in first] == [4, 4]
    assert first == again
    # A memorised model samples its CoT most of the time; each input keeps its own samples.
    assert sum(s.text == COT_RIGHT for s in first[0]) >= 2
    assert sum(s.text == COT_WRONG for s in first[1]) >= 2


def test_greedy_with_several_samples_is_refused(fitted_causal: Fitted) -> None:
    student = fitted_causal.student
    with pytest.raises(ValueError, match="greedy"):
        generate(student.model, student.tokenizer, ["x"], num_samples=2)


@pytest.mark.parametrize("seq2seq", [False, True], ids=["causal", "seq2seq"])
def test_candidate_logprobs_match_the_model_loss(seq2seq: bool) -> None:
    """Shared encoding / KV-cache continuation gives each (input, candidate) pair exactly the
    log-probability the model's own loss gives it alone: -(mean token loss x tokens)."""
    tok = tiny_tokenizer(seq2seq)
    model = tiny_model(seq2seq, len(tok))
    sources = ["predict: a b", "explain: a much longer input than the first one, padded"]
    # Shared first tokens, different lengths, one candidate a prefix of another.
    candidates = ["The answer is 7.", "The answer is 17.", "The answer", "no"]
    got = candidate_logprobs(model, tok, sources, candidates, batch_size=2)
    for i, source in enumerate(sources):
        for j, target in enumerate(candidates):
            if seq2seq:
                enc = tok([source], return_tensors="pt")
                labels = tok(text_target=[target], return_tensors="pt")["input_ids"]
            else:
                prompt = tok(source + "\n")["input_ids"]
                answer = [*tok(target, add_special_tokens=False)["input_ids"], tok.eos_token_id]
                ids = torch.tensor([prompt + answer])
                enc = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
                labels = torch.tensor([[-100] * len(prompt) + answer])
            with torch.no_grad():
                loss = model(**enc, labels=labels).loss
            n_tokens = int((labels != -100).sum())
            assert got[i][j] == pytest.approx(-loss.item() * n_tokens, rel=1e-4, abs=1e-4)


def test_verdict_probs_read_the_learnt_self_evaluation(fitted_student: Fitted) -> None:
    student = fitted_student.student
    pairs = memorised_pairs()
    probs = verdict_probs(student.model, student.tokenizer, [pairs[4][0], pairs[5][0]])
    for row in probs:
        assert tuple(row) == VERDICTS
        assert sum(row.values()) == pytest.approx(1.0, abs=1e-5)
    assert probs[0]["correct"] > 0.9
    assert probs[1]["wrong"] > 0.9


def test_a_lora_student_passes_its_kv_cache_by_the_current_name() -> None:
    """peft's forward names no cache argument: the old name passed through it made
    transformers 5.x print a FutureWarning into the demo's output at every judging pass.
    The keywords the Llama model receives are read directly, so the test does not depend on
    transformers still warning about the old name."""
    tok = tiny_tokenizer(False)
    tok.padding_side = "left"
    model = add_lora(tiny_model(False, len(tok)), "causal", r=4, alpha=8, dropout=0.0)
    base = base_model(model)
    parameters = inspect.signature(base.forward).parameters
    expected = "cache" if "cache" in parameters else "past_key_values"
    received: list[set[str]] = []
    base.register_forward_pre_hook(
        lambda _module, _args, kwargs: received.append(set(kwargs)), with_kwargs=True
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        verdict_probs(model, tok, ["verdict: x y", "verdict: a"])
    continued = [names for names in received if names & {"cache", "past_key_values"}]
    assert continued, "the candidates' continuation never ran with a KV cache"
    assert all(expected in names for names in continued)
    assert [str(w.message) for w in caught if "past_key_values" in str(w.message)] == []
