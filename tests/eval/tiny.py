"""Tiny randomly initialised students (T5 and Llama shapes) with a byte-level BPE tokenizer
trained here in milliseconds, so tests need no download and run in seconds."""

from __future__ import annotations

from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import (
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedModel,
    PreTrainedTokenizerFast,
    T5Config,
    T5ForConditionalGeneration,
)

CORPUS = [
    "predict: explain: verdict: critique: Question: Answer:",
    "the given answer is correct wrong uncertain",
    "Tom has 3 apples and buys 4 more. How many apples does he have? The answer is (3 + 4).",
    "A box holds 12 pens. 4 are red. How many are not red? The answer is (12 - 4).",
]


def tiny_tokenizer(
    seq2seq: bool, vocab_size: int = 400, bos: bool = False
) -> PreTrainedTokenizerFast:
    """A byte-level BPE tokenizer (lossless for any text) with pad/eos/unk tokens.

    Seq2seq tokenizers append ``</s>`` like T5's; causal ones add nothing (like SmolLM2's), or
    with ``bos`` start every text with ``<s>`` (like Llama's).
    """
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=["<pad>", "</s>", "<unk>", *(["<s>"] if bos else [])],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(CORPUS, trainer)
    if seq2seq:
        tok.post_processor = processors.TemplateProcessing(
            single="$A </s>", special_tokens=[("</s>", tok.token_to_id("</s>"))]
        )
    if bos:
        tok.post_processor = processors.TemplateProcessing(
            single="<s> $A", special_tokens=[("<s>", tok.token_to_id("<s>"))]
        )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token="<pad>",
        eos_token="</s>",
        unk_token="<unk>",
        bos_token="<s>" if bos else None,
    )


def tiny_model(seq2seq: bool, vocab_size: int, seed: int = 0) -> PreTrainedModel:
    """A 2-layer, 32-wide model of the given kind, randomly initialised with ``seed``."""
    torch.manual_seed(seed)
    if seq2seq:
        config = T5Config(
            vocab_size=vocab_size,
            d_model=32,
            d_kv=8,
            d_ff=64,
            num_layers=2,
            num_heads=4,
            decoder_start_token_id=0,
            pad_token_id=0,
            eos_token_id=1,
        )
        return T5ForConditionalGeneration(config).eval()
    config = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        pad_token_id=0,
        eos_token_id=1,
        bos_token_id=1,
    )
    return LlamaForCausalLM(config).eval()


def save_tiny_student(path: Path, seq2seq: bool) -> Path:
    """Save a tiny student the way training does (``save_student``) and return its folder."""
    from mindmirror.student.model import save_student

    tok = tiny_tokenizer(seq2seq)
    model = tiny_model(seq2seq, len(tok))
    return save_student(model, tok, path, kind="seq2seq" if seq2seq else "causal")


def fit_tiny(
    model: PreTrainedModel,
    tok: PreTrainedTokenizerFast,
    pairs: list[tuple[str, str]],
    steps: int = 150,
    lr: float = 3e-3,
) -> PreTrainedModel:
    """Memorise (input, target) pairs with plain full-batch Adam, so outputs mean something.

    Uses the same formats as inference (``causal_prompt`` + target + EOS for causal models,
    prompt masked out of the loss), which makes it a check of those formats too.
    """
    from mindmirror.student.formats import causal_prompt

    torch.manual_seed(0)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    if model.config.is_encoder_decoder:
        enc = tok([i for i, _ in pairs], return_tensors="pt", padding=True)
        labels = tok(text_target=[t for _, t in pairs], return_tensors="pt", padding=True)
        batch = {
            "input_ids": enc["input_ids"],
            "attention_mask": enc["attention_mask"],
            "labels": labels["input_ids"].masked_fill(
                labels["input_ids"] == tok.pad_token_id, -100
            ),
        }
    else:
        rows = []
        for source, target in pairs:
            prompt = tok(causal_prompt(source))["input_ids"]
            answer = [*tok(target, add_special_tokens=False)["input_ids"], tok.eos_token_id]
            rows.append((prompt + answer, [-100] * len(prompt) + answer))
        width = max(len(ids) for ids, _ in rows)
        batch = {
            "input_ids": torch.tensor([ids + [0] * (width - len(ids)) for ids, _ in rows]),
            "attention_mask": torch.tensor(
                [[1] * len(ids) + [0] * (width - len(ids)) for ids, _ in rows]
            ),
            "labels": torch.tensor([lab + [-100] * (width - len(lab)) for _, lab in rows]),
        }
    model.train()
    for _ in range(steps):
        optimizer.zero_grad()
        model(**batch).loss.backward()
        optimizer.step()
    return model.eval()
