"""Loss and encoding: masking, per-row normalisation, weights, agreement with the model's loss."""

from __future__ import annotations

import pytest
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


def test_task_token_mean_is_the_published_loss() -> None:
    """alpha * (token mean over the short task's rows) + (1 - alpha) * (same for the long
    task), as TaskPrefixTrainer computes it from two forward passes."""
    from mindmirror.student.losses import token_losses

    torch.manual_seed(0)
    alpha = 0.3
    logits = torch.randn(4, 6, 13)
    labels = torch.tensor(
        [
            [1, 2, IGNORE, IGNORE, IGNORE, IGNORE],
            [3, IGNORE, IGNORE, IGNORE, IGNORE, IGNORE],
            [4, 5, 6, 7, 8, IGNORE],
            [9, 10, 11, 12, 1, 2],
        ]
    )
    short = torch.tensor([True, True, False, False])
    weights = torch.tensor([alpha, alpha, 1 - alpha, 1 - alpha])
    loss = student_loss(
        logits, labels, weights, causal=False, norm="task_token_mean",
        counts=torch.ones(4), short=short,
    )  # fmt: skip
    losses, mask = token_losses(logits, labels)
    short_mean = losses[:2].sum() / mask[:2].sum()
    long_mean = losses[2:].sum() / mask[2:].sum()
    assert torch.allclose(loss, alpha * short_mean + (1 - alpha) * long_mean)
    # Different from the per-row mean: the long rows' lengths differ.
    assert not torch.allclose(loss, student_loss(logits, labels, weights, causal=False))


def test_task_token_mean_counts_a_merged_row_as_its_copies() -> None:
    torch.manual_seed(1)
    logits = torch.randn(3, 4, 9)
    labels = torch.tensor([[1, 2, IGNORE, IGNORE], [1, 2, IGNORE, IGNORE], [3, 4, 5, 6]])
    logits[1] = logits[0]
    short = torch.tensor([True, True, False])
    copies = student_loss(
        logits, labels, torch.tensor([0.5, 0.5, 0.5]), causal=False, norm="task_token_mean",
        counts=torch.ones(3), short=short,
    )  # fmt: skip
    merged = student_loss(
        logits[[0, 2]], labels[[0, 2]], torch.tensor([1.0, 0.5]), causal=False,
        norm="task_token_mean", counts=torch.tensor([2.0, 1.0]), short=short[[0, 2]],
    )  # fmt: skip
    assert torch.allclose(copies, merged)


def test_long_inputs_keep_their_prefix_and_their_end() -> None:
    from mindmirror.student.encoding import HEAD_TOKENS, fit_ids

    ids = list(range(100))
    cut = fit_ids(ids, 40)
    assert len(cut) == 40
    assert (
        cut[:HEAD_TOKENS] == ids[:HEAD_TOKENS] and cut[HEAD_TOKENS:] == ids[-(40 - HEAD_TOKENS) :]
    )
    assert fit_ids(ids[:30], 40) == ids[:30]


def test_training_and_generation_cut_long_inputs_the_same_way(tiny_llama) -> None:
    from mindmirror.student.encoding import prompt_batch

    tokenizer = AutoTokenizer.from_pretrained(tiny_llama)
    long_input = (
        "verdict: Question: " + "apples and pears " * 80 + "\nAnswer: The answer is (3 + 5)."
    )
    trained = encode_row(
        tokenizer, "causal", Row("verdict", long_input, "the given answer is correct", 0.5, "q"),
        max_input_tokens=32, max_target_tokens=16,
    )  # fmt: skip
    ids, mask = prompt_batch(tokenizer, "causal", [long_input, "predict: short"], 32)
    assert ids[0].tolist() == trained["input_ids"][:32]
    assert mask[1].sum() < 32 and mask[1, -1] == 1  # left padding for the short prompt
    assert tokenizer.decode(ids[0][-12:]).strip().endswith("(3 + 5).")


def test_length_buckets_split_only_when_padding_dominates() -> None:
    from mindmirror.student.trainer import length_buckets

    (one,) = length_buckets(torch.tensor([50, 52, 49, 51]))
    assert sorted(one.tolist()) == [0, 1, 2, 3]
    short, long = length_buckets(torch.tensor([200, 20, 210, 25]))
    assert sorted(short.tolist()) == [1, 3] and sorted(long.tolist()) == [0, 2]


@pytest.mark.parametrize("kind", ["causal", "seq2seq"])
@pytest.mark.parametrize("norm", ["task_token_mean", "row_mean"])
def test_two_passes_give_the_loss_and_gradients_of_one(
    kind: str, norm: str, tiny_llama, tiny_t5, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Short and long rows run as two passes make exactly the one-pass loss and gradients."""
    import mindmirror.student.trainer as trainer_module
    from mindmirror.student.model import load_student
    from mindmirror.student.trainer import StudentTrainer, accepts_logits_to_keep

    model, tokenizer, loaded = load_student(tiny_llama if kind == "causal" else tiny_t5)
    rows = [ROW, LONG, Row("predict", "predict: 2 + 2?", "The answer is (2 + 2).", 0.5, "r"), LONG]
    features = [
        encode_row(tokenizer, loaded, r, max_input_tokens=64, max_target_tokens=64) for r in rows
    ]
    collate = WeightedCollator(
        tokenizer.pad_token_id, loaded, getattr(model.config, "decoder_start_token_id", None)
    )
    trainer = StudentTrainer.__new__(StudentTrainer)
    trainer.kind, trainer.loss_norm = loaded, norm
    trainer.keeps_logits = accepts_logits_to_keep(model)

    def loss_and_grads(split_when: float) -> tuple[torch.Tensor, list[torch.Tensor]]:
        monkeypatch.setattr(trainer_module, "SPLIT_WHEN", split_when)
        model.zero_grad()
        loss = trainer.compute_loss(model, collate(features))
        loss.backward()
        return loss.detach(), [p.grad.clone() for p in model.parameters() if p.grad is not None]

    batch = collate(features)
    monkeypatch.setattr(trainer_module, "SPLIT_WHEN", 1.0)
    lengths = trainer._lengths(batch, batch["labels"])
    assert len(trainer_module.length_buckets(lengths)) == 2  # the case under test
    one_loss, one_grads = loss_and_grads(0.0)  # never split
    two_loss, two_grads = loss_and_grads(1.0)  # split whenever it saves tokens
    assert torch.allclose(one_loss, two_loss, atol=1e-5)
    assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(one_grads, two_grads, strict=True))
