"""Checkpoint selection on the validation split: greedy generation, then the task's scorer.

Reasoning stages are scored by answer accuracy of ``predict:`` (the paper's answer mode);
the self-evaluation stage by verdict agreement: the student's greedy verdict on a validation
CoT against the teacher's majority verdict for it. Because verdict classes are unbalanced
(about 70% "correct" on real teacher CoTs) and wrong CoTs are longer, the judge is also
measured by balanced agreement (mean recall over the verdicts present) and by how its
P(correct) ranks the CoTs (AUROC), beside the AUROC that CoT length alone reaches; the stage
chooses its checkpoint on ``train.verdict_metric``. Test records are never read here.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch
from transformers import PreTrainedTokenizerBase

from mindmirror.records import VERDICTS, Record
from mindmirror.reporting.metrics import auroc
from mindmirror.student.encoding import prompt_batch
from mindmirror.student.formats import (
    PREDICT,
    VERDICT,
    evaluation_input,
    reasoning_input,
    verdict_target,
)
from mindmirror.student.generate import (
    continuation_logprobs,
    last_prompt_logits,
    target_continuations,
    verdict_probs,
    verdict_softmax,
)
from mindmirror.student.model import StudentKind
from mindmirror.student.rows import Stage, judged_cots
from mindmirror.tasks.base import Task

_VERDICT = re.compile(r"\b(correct|wrong|uncertain)\b", re.IGNORECASE)


@dataclass(frozen=True)
class ValItem:
    """One validation prompt and what a good student answers to it (``question``: the
    question a reasoning item asks, which answer reading uses)."""

    input: str
    reference: str
    choices: tuple[str, ...] | None = None
    question: str | None = None
    cot: str | None = None


def parse_verdict(text: str) -> str | None:
    """The last verdict word (correct, wrong, uncertain) in a generated evaluation."""
    found = _VERDICT.findall(text)
    return found[-1].lower() if found else None


def majority_verdict(verdicts: Iterable[str | None]) -> str | None:
    """The most frequent parsed verdict (ties -> the first seen), None when there is none."""
    counts = Counter(v for v in verdicts if v in VERDICTS)
    if not counts:
        return None
    best = max(counts.values())
    return next(v for v in counts if counts[v] == best)


def validation_items(
    records: Iterable[Record], stage: Stage, *, limit: int | None
) -> list[ValItem]:
    """Validation prompts of a stage: questions with gold, or (question, CoT) with a verdict
    (every judged CoT, as the self-evaluation stage trains on every CoT)."""
    questions = [r for r in records if r.split == "validation"]
    questions = questions[:limit] if limit else questions
    if stage != "evaluation":
        return [
            ValItem(
                reasoning_input(PREDICT, r.question),
                r.gold,
                tuple(r.choices or ()) or None,
                r.question,
            )
            for r in questions
            if r.gold is not None
        ]
    items = []
    for record in questions:
        for cot in judged_cots(record):
            verdict = majority_verdict(e.verdict for e in cot.evaluations if e.parsed)
            if verdict is not None:
                text_in = evaluation_input(VERDICT, record.question, cot.text)
                items.append(ValItem(text_in, verdict, cot=cot.text))
    return items


@torch.no_grad()
def greedy_generate(
    model: Any,
    tokenizer: PreTrainedTokenizerBase,
    kind: StudentKind,
    inputs: list[str],
    *,
    max_new_tokens: int,
    max_input_tokens: int = 512,
    batch_size: int = 16,
) -> list[str]:
    """Greedy continuations of ``inputs`` (batched, left-padded for causal students)."""
    outputs: list[str] = []
    batches = _greedy_batches(model, tokenizer, kind, inputs, batch_size, max_input_tokens,
                              max_new_tokens=max_new_tokens)  # fmt: skip
    for input_ids, _, generated in batches:
        if kind == "causal":
            generated = generated[:, input_ids.shape[1] :]
        outputs += tokenizer.batch_decode(generated, skip_special_tokens=True)
    return [text.strip() for text in outputs]


def _greedy_batches(
    model: Any,
    tokenizer: PreTrainedTokenizerBase,
    kind: StudentKind,
    inputs: list[str],
    batch_size: int,
    max_input_tokens: int,
    **options: Any,
) -> Iterator[tuple[torch.Tensor, torch.Tensor, Any]]:
    """Per batch of ``inputs``: its prompts' ids and mask (on the model's device) and what
    greedy ``model.generate`` (with ``options``) made of them; the model stays in eval mode
    until the last batch, then goes back to its mode."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    try:
        for start in range(0, len(inputs), batch_size):
            chunk = inputs[start : start + batch_size]
            input_ids, mask = prompt_batch(tokenizer, kind, chunk, max_input_tokens)
            input_ids, mask = input_ids.to(device), mask.to(device)
            out = model.generate(
                input_ids=input_ids,
                attention_mask=mask,
                do_sample=False,
                pad_token_id=tokenizer.pad_token_id,
                **options,
            )
            yield input_ids, mask, out
    finally:
        model.train(was_training)


@torch.no_grad()
def greedy_judge(
    model: Any,
    tokenizer: PreTrainedTokenizerBase,
    kind: StudentKind,
    inputs: list[str],
    *,
    max_new_tokens: int,
    max_input_tokens: int = 512,
    batch_size: int = 16,
) -> tuple[list[str], list[dict[str, float]]]:
    """Greedy continuations of ``verdict:`` inputs and the student's verdict distribution for
    each (``verdict_probs``).

    A causal student reads each prompt once for both: the KV cache its greedy generation built
    is cut back to the prompt (its last token fed again for its logits) and continued with the
    three verdicts, which halves the work of validating a judge (the prompts, a question and a
    CoT, are long; what is generated is a few tokens). Seq2seq students run the two passes.
    """
    if kind != "causal":
        texts = greedy_generate(
            model,
            tokenizer,
            kind,
            inputs,
            max_new_tokens=max_new_tokens,
            max_input_tokens=max_input_tokens,
            batch_size=batch_size,
        )
        probs = verdict_probs(
            model, tokenizer, inputs, batch_size=batch_size, max_input_tokens=max_input_tokens
        )
        return texts, probs
    continuations = target_continuations(tokenizer, [verdict_target(v) for v in VERDICTS])
    texts: list[str] = []
    scores: list[list[float]] = []
    batches = _greedy_batches(
        model, tokenizer, kind, inputs, batch_size, max_input_tokens,
        max_new_tokens=max_new_tokens, num_beams=1, use_cache=True, return_dict_in_generate=True,
    )  # fmt: skip
    for input_ids, mask, out in batches:
        width = input_ids.shape[1]
        texts += tokenizer.batch_decode(out.sequences[:, width:], skip_special_tokens=True)
        # transformers 5.x names the returned KV cache `cache`, earlier `past_key_values`.
        cache = getattr(out, "cache", None) or out.past_key_values
        # Back to all but the prompt's last token, which is fed again for its logits (no
        # step's logits are kept during generation: batch x vocabulary floats each).
        cache.crop(width - 1 - cache.get_seq_length())
        last = last_prompt_logits(model, cache, input_ids, mask)
        scores += continuation_logprobs(model, cache, last, mask, continuations).tolist()
    return [text.strip() for text in texts], verdict_softmax(scores)


def score(
    stage: Stage, task: Task, items: list[ValItem], outputs: list[str]
) -> tuple[int, int, int]:
    """``(hits, parsed, total)``: correct answers (or agreeing verdicts), parsed outputs, items."""
    hits = parsed = 0
    for item, text in zip(items, outputs, strict=True):
        if stage == "evaluation":
            verdict = parse_verdict(text)
            parsed += verdict is not None
            hits += verdict == item.reference
        else:
            answer = task.parse_answer(text, item.choices, item.question)
            parsed += answer is not None
            hits += bool(task.is_correct(answer, item.reference, item.choices))
    return hits, parsed, len(items)


VerdictMetric = Literal["agreement", "balanced_agreement", "auroc"]


def metric_name(stage: Stage, verdict_metric: VerdictMetric = "agreement") -> str:
    """The validation metric that picks a stage's best checkpoint."""
    return f"verdict_{verdict_metric}" if stage == "evaluation" else "accuracy"


def balanced_agreement(verdicts: Sequence[str | None], references: Sequence[str]) -> float:
    """Mean over the reference verdicts present of the share of their items the student
    matched (always answering "correct" scores 1 / classes, not the majority's share)."""
    recalls = []
    for label in sorted(set(references)):
        mine = [v for v, r in zip(verdicts, references, strict=True) if r == label]
        recalls.append(sum(v == label for v in mine) / len(mine))
    return sum(recalls) / len(recalls) if recalls else 0.0


def judge_rankings(
    items: Sequence[ValItem], p_correct: Sequence[float], cot_tokens: Sequence[int]
) -> dict[str, float | None]:
    """AUROC of the student's P(correct) against "the reference says correct", and of the
    length-only baseline (shorter CoTs ranked as more likely correct)."""
    labels = [item.reference == "correct" for item in items]
    return {
        "verdict_auroc": auroc(list(p_correct), labels),
        "length_auroc": auroc([-float(n) for n in cot_tokens], labels),
    }
