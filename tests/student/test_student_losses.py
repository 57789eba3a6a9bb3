"""Loss and encoding: masking, per-row normalisation, weights, agreement with the model's loss."""

from __future__ import annotations

import torch
from transformers import AutoModelForCausalLM, AutoModelForSeq2SeqLM, AutoTokenizer

from mindmirror.student.encoding import WeightedCollator, encode_row, prompt_ids
from mindmirror.student.formats import causal_prompt
from mindmirror.student.losses import IGNORE, row_mean_losses, student_loss, weighted_batch_loss
from mindmirror.student.rows import Row

ROW = Row(
    "predict", "predict: Tom has 3 apples and buys 5 more.", "The answer is (3 + 5).", 0.5, "q"
)
LONG = Row(
    "explain",
    "explain: Tom has 3 apples and buys 5 more.",
    "Tom starts with 3 apples and buys 5, so 3 + 5 = 8. The answer is (3 + 5).",
    0.5,
    "q",
)


def test_masked_positions_do_not_count() -> None:
    torch.manual_seed(0)
    logits = torch.randn(2, 5, 11)
    labels = torch.tensor([[1, 2, IGNORE, IGNORE, IGNORE], [3, 4, 5, 6, IGNORE]])
    base = row_mean_losses(logits, labels, causal=False)
    changed = logits.clone()
    changed[0, 2:] += 100.0
    changed[1, 4] -= 100.0
    assert torch.allclose(base, row_mean_losses(changed, labels, causal=False))


def test_row_loss_is_a_mean_over_its_own_tokens() -> None:
    torch.manual_seed(0)
    logits = torch.randn(1, 3, 7)
    labels = torch.tensor([[1, 2, 3]])
    per_token = torch.nn.functional.cross_entropy(logits[0], labels[0], reduction="none")
    assert torch.allclose(row_mean_losses(logits, labels, causal=False), per_token.mean())
    # Padding the same row further changes nothing.
    padded = torch.cat([logits, torch.randn(1, 4, 7)], dim=1)
    padded_labels = torch.tensor([[1, 2, 3, IGNORE, IGNORE, IGNORE, IGNORE]])
    assert torch.allclose(row_mean_losses(padded, padded_labels, causal=False), per_token.mean())


def test_weights_scale_rows_and_the_batch_mean_is_over_rows() -> None:
    losses = torch.tensor([2.0, 4.0])
    assert weighted_batch_loss(losses, torch.tensor([1.0, 0.0])) == 1.0
    assert weighted_batch_loss(losses, torch.tensor([0.5, 0.25])) == 1.0
    # Normalised by the row count, not the weights: a merged row of weight 2w contributes
    # what its two copies of weight w contribute to a batch of the same size.
    merged = weighted_batch_loss(torch.tensor([3.0, 5.0]), torch.tensor([1.0, 0.0]))
    copies = weighted_batch_loss(torch.tensor([3.0, 3.0]), torch.tensor([0.5, 0.5]))
    assert merged == copies


def test_causal_encoding_masks_the_prompt_and_ends_in_eos(tiny_llama) -> None:
    tokenizer = AutoTokenizer.from_pretrained(tiny_llama)
    feature = encode_row(tokenizer, "causal", ROW, max_input_tokens=256, max_target_tokens=64)
    prompt = tokenizer(causal_prompt(ROW.input))["input_ids"]
    n = len(prompt)
    assert feature["input_ids"][:n] == prompt
    assert feature["labels"][:n] == [IGNORE] * n
    assert feature["labels"][n:] == feature["input_ids"][n:]
    assert feature["labels"][-1] == tokenizer.eos_token_id
    assert tokenizer.decode(feature["labels"][n:], skip_special_tokens=True) == ROW.target
    # Truncated targets get no EOS: the model must not learn to stop mid-sentence.
    short = encode_row(tokenizer, "causal", LONG, max_input_tokens=256, max_target_tokens=5)
    assert len(short["labels"]) - short["labels"].count(IGNORE) == 5
    assert tokenizer.eos_token_id not in short["labels"]


def test_seq2seq_encoding_and_collator(tiny_t5) -> None:
    tokenizer = AutoTokenizer.from_pretrained(tiny_t5)
    features = [
        encode_row(tokenizer, "seq2seq", row, max_input_tokens=256, max_target_tokens=64)
        for row in (ROW, LONG)
    ]
    assert features[0]["input_ids"] == prompt_ids(tokenizer, "seq2seq", ROW.input, 256)
    assert features[0]["labels"][-1] == tokenizer.eos_token_id
    batch = WeightedCollator(tokenizer.pad_token_id, "seq2seq", decoder_start_token_id=0)(features)
    short_len = len(features[0]["labels"])
    assert batch["labels"].shape[1] == len(features[1]["labels"])
    assert (batch["labels"][0, short_len:] == IGNORE).all()
    assert batch["attention_mask"][0].sum() == len(features[0]["input_ids"])
    assert batch["decoder_input_ids"][0, 0] == 0
    assert batch["decoder_input_ids"][0, 1:short_len].tolist() == features[0]["labels"][:-1]
    assert batch["weight"].tolist() == [0.5, 0.5]


def test_our_loss_matches_the_models_own_for_one_row(tiny_llama, tiny_t5) -> None:
    for folder, kind, auto in (
        (tiny_llama, "causal", AutoModelForCausalLM),
        (tiny_t5, "seq2seq", AutoModelForSeq2SeqLM),
    ):
        tokenizer = AutoTokenizer.from_pretrained(folder)
        model = auto.from_pretrained(folder)
        feature = encode_row(tokenizer, kind, LONG, max_input_tokens=256, max_target_tokens=64)
        batch = WeightedCollator(tokenizer.pad_token_id, kind, decoder_start_token_id=0)([feature])
        labels, weights = batch.pop("labels"), batch.pop("weight")
        ours = student_loss(model(**batch).logits, labels, weights * 2, causal=kind == "causal")
        reference = model(**batch, labels=labels).loss
        assert torch.allclose(ours, reference * 2 * 0.5, atol=1e-5), kind


def test_left_padded_causal_batch_with_trimmed_logits_gives_each_rows_own_loss(
    tiny_llama,
) -> None:
    from mindmirror.student.trainer import accepts_logits_to_keep

    tokenizer = AutoTokenizer.from_pretrained(tiny_llama)
    model = AutoModelForCausalLM.from_pretrained(tiny_llama)
    assert accepts_logits_to_keep(model)
    features = [
        encode_row(tokenizer, "causal", row, max_input_tokens=256, max_target_tokens=64)
        for row in (ROW, LONG)
    ]
    collate = WeightedCollator(tokenizer.pad_token_id, "causal")
    alone = []
    for feature in features:
        batch = collate([feature])
        labels, _ = batch.pop("labels"), batch.pop("weight")
        alone.append(row_mean_losses(model(**batch).logits, labels, causal=True))
    batch = collate(features)
    assert batch["input_ids"][0, 0] == tokenizer.pad_token_id  # left padding
    labels, _ = batch.pop("labels"), batch.pop("weight")
    keep = int(labels.ne(IGNORE).sum(dim=1).max()) + 1
    trimmed = model(**batch, logits_to_keep=keep).logits
    assert trimmed.shape[1] == keep < labels.shape[1]
    together = row_mean_losses(trimmed, labels[:, -keep:], causal=True)
    assert torch.allclose(together, torch.cat(alone), atol=1e-5)
