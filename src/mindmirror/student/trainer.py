"""The Trainer subclass: the multi-task loss, example-keeping batches, validation by generation.

Everything else (gradient accumulation, bf16 autocast, checkpoints and resuming, best-model
tracking, ``accelerate launch`` multi-process) is the stock ``transformers.Trainer``.
"""

from __future__ import annotations

import inspect
import json
import math
import time
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from rich.console import Console
from transformers import Trainer, TrainerCallback

from mindmirror.errors import UserError
from mindmirror.files import write_atomic
from mindmirror.progress import ProgressReport, log_console
from mindmirror.student.batching import ExampleSampler
from mindmirror.student.compiled import eager
from mindmirror.student.losses import IGNORE, combine_rows, row_token_sums
from mindmirror.student.model import StudentKind, base_model
from mindmirror.student.rows import Stage
from mindmirror.student.validate import (
    ValItem,
    VerdictMetric,
    balanced_agreement,
    greedy_generate,
    greedy_judge,
    judge_rankings,
    metric_name,
    parse_verdict,
    score,
)
from mindmirror.tasks.base import Task


def accepts_logits_to_keep(model: torch.nn.Module) -> bool:
    """Whether a (possibly LoRA-wrapped) causal LM can return logits for the last k positions."""
    return "logits_to_keep" in inspect.signature(base_model(model).forward).parameters


#: Split a micro-batch into two forward passes when that feeds at most this share of the
#: tokens one padded pass would (the second pass has a fixed cost of its own).
SPLIT_WHEN = 0.75


def length_buckets(lengths: torch.Tensor) -> list[torch.Tensor]:
    """Row indices of one or two forward passes over a padded batch.

    Sorted by length, the rows are cut where ``k * len[k-1] + (B - k) * len[B-1]`` (the padded
    tokens of two passes) is smallest; the cut is taken when that is at most ``SPLIT_WHEN`` of
    ``B * len[B-1]`` (one pass).
    """
    order = torch.argsort(lengths)
    ranked = lengths[order].tolist()
    size, longest = len(ranked), ranked[-1] if ranked else 0
    best, cut = size * longest, 0
    for k in range(1, size):
        cost = k * ranked[k - 1] + (size - k) * longest
        if cost < best:
            best, cut = cost, k
    if cut == 0 or best > SPLIT_WHEN * size * longest:
        return [order]
    return [order[:cut], order[cut:]]


def trim_padding(
    batch: dict[str, torch.Tensor], labels: torch.Tensor, kind: StudentKind
) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Drop the padding columns no row of ``batch`` needs: leading ones of left-padded causal
    rows, trailing encoder and decoder ones of right-padded seq2seq rows."""
    width = int(batch["attention_mask"].sum(dim=1).max())
    if kind == "causal":
        return {k: v[:, -width:] for k, v in batch.items()}, labels[:, -width:]
    target = max(int(labels.ne(IGNORE).sum(dim=1).max()), 1)
    trimmed = {
        k: v[:, :target] if k == "decoder_input_ids" else v[:, :width] for k, v in batch.items()
    }
    return trimmed, labels[:, :target]


def not_finite(loss: torch.Tensor) -> bool:
    """Whether ``loss`` (a scalar) is NaN or infinite in this process or, under several
    processes, in any of them: all stop together rather than leave the others waiting."""
    bad = (~torch.isfinite(loss.detach())).float()
    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(bad, op=dist.ReduceOp.MAX)
    return bool(bad)


class StudentTrainer(Trainer):
    """``Trainer`` with the weighted multi-task loss and generation-based validation.

    Args (besides Trainer's): ``kind`` (seq2seq/causal), ``stage``, ``task`` (the scorer),
    ``lengths`` (one per training feature, for length grouping), ``examples`` (the example of
    each training feature: its rows share a step, see batching.py), ``eval_max_new_tokens``,
    ``eval_max_input_tokens``, ``loss_norm`` (see losses.py), ``verdict_metric`` (what the
    self-evaluation stage chooses its checkpoint on). ``eval_dataset`` is the list of
    ``ValItem`` to validate on.
    """

    def __init__(
        self,
        *args: Any,
        kind: StudentKind,
        stage: Stage,
        task: Task,
        lengths: list[int],
        examples: list[str],
        eval_max_new_tokens: int = 32,
        eval_max_input_tokens: int = 512,
        loss_norm: str = "task_token_mean",
        verdict_metric: VerdictMetric = "agreement",
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.kind = kind
        self.stage = stage
        self.task = task
        self.lengths = lengths
        self.examples = examples
        self.eval_max_new_tokens = eval_max_new_tokens
        self.eval_max_input_tokens = eval_max_input_tokens
        self.loss_norm = loss_norm
        self.verdict_metric = verdict_metric
        self._cot_tokens: list[int] | None = None
        # Our loss is normalised per micro-batch (losses.py): Trainer must not pass it a token
        # count, and must divide it by the accumulation steps itself.
        self.model_accepts_loss_kwargs = False
        self.loss_is_scaled_for_ga = False
        self.keeps_logits = accepts_logits_to_keep(self.model)

    def _get_train_sampler(self, train_dataset: Any = None) -> torch.utils.data.Sampler | None:
        # Our own lengths: Trainer's default measures only input_ids, blind to seq2seq targets.
        return ExampleSampler(
            self.examples,
            self.lengths,
            self.args.train_batch_size,
            by_length=self.args.train_sampling_strategy == "group_by_length",
        )

    def compute_loss(
        self,
        model: torch.nn.Module,
        inputs: dict[str, torch.Tensor],
        return_outputs: bool = False,
        num_items_in_batch: torch.Tensor | int | None = None,
    ) -> torch.Tensor | tuple[torch.Tensor, Any]:
        """The weighted loss of ``loss_norm`` (``num_items_in_batch`` is unused, see losses.py).

        A batch whose rows differ much in length (a short ``predict:`` row padded to a CoT's
        length) runs as two forward passes, short rows and long rows, each cut to its own
        longest row; the rows' token sums then make one loss, exactly as one pass would.
        ``outputs`` (with ``return_outputs``) are those of the last pass.
        """
        weights, counts, short = inputs.pop("weight"), inputs.pop("count"), inputs.pop("short")
        labels = inputs.pop("labels")
        sums = torch.zeros(labels.shape[0], device=labels.device)
        tokens = torch.zeros_like(sums)
        outputs: Any = None
        for rows in length_buckets(self._lengths(inputs, labels)):
            part, part_labels = trim_padding(
                {k: v[rows] for k, v in inputs.items()}, labels[rows], self.kind
            )
            if self.kind == "causal" and self.keeps_logits:
                # Left-padded rows end in their targets: only the last `keep` positions (the
                # longest target, plus the position predicting its first token) need logits.
                # This skips the vocabulary projection and softmax over every prompt token.
                keep = min(int(part_labels.ne(IGNORE).sum(dim=1).max()) + 1, part_labels.shape[1])
                outputs = model(**part, logits_to_keep=keep)
                part_labels = part_labels[:, -keep:]
            else:
                outputs = model(**part)
            part_sums, part_tokens = row_token_sums(
                outputs.logits, part_labels, causal=self.kind == "causal"
            )
            sums, tokens = (
                sums.index_put((rows,), part_sums),
                tokens.index_put((rows,), part_tokens),
            )
        loss = combine_rows(sums, tokens, weights, norm=self.loss_norm, counts=counts, short=short)
        if model.training and not_finite(loss):
            # Trainer would go on (it even logs the mean of earlier losses in its place) and
            # every later step would train a broken student for nothing.
            raise UserError(
                f"the training loss is not finite at step {self.state.global_step + 1} "
                f"({'bf16' if self.args.bf16 else 'fp32'} on {self.args.device}): stopped; "
                "lower train.learning_rate or try train.precision=fp32"
            )
        return (loss, outputs) if return_outputs else loss

    def _judge_metrics(
        self, items: list[ValItem], outputs: list[str], probs: list[dict[str, float]]
    ) -> dict[str, float | None]:
        """Balanced agreement of the greedy verdicts, and the AUROC of the student's P(correct)
        beside the CoT-length-only AUROC, over every process's items (``outputs`` and
        ``probs`` are this process's share's)."""
        if self._cot_tokens is None:
            # The same validation CoTs at every evaluation: count their tokens once.
            self._cot_tokens = [
                len(self.processing_class(item.cot or "", add_special_tokens=False)["input_ids"])
                for item in items
            ]
        local = ([parse_verdict(t) for t in outputs], [p["correct"] for p in probs])
        world = self.args.world_size
        if world > 1 and dist.is_initialized():
            shards: list[Any] = [None] * world
            dist.all_gather_object(shards, local)
            # Item i went to process i % world, as its ``i``-th // world item.
            verdicts = [shards[i % world][0][i // world] for i in range(len(items))]
            p_correct = [shards[i % world][1][i // world] for i in range(len(items))]
        else:
            verdicts, p_correct = local
        references = [item.reference for item in items]
        return {
            "verdict_balanced_agreement": balanced_agreement(verdicts, references),
            **judge_rankings(items, p_correct, self._cot_tokens),
        }

    def _lengths(self, inputs: dict[str, torch.Tensor], labels: torch.Tensor) -> torch.Tensor:
        """Real (unpadded) length of each row: the sequence, plus the decoder's for seq2seq."""
        lengths = inputs["attention_mask"].sum(dim=1)
        if self.kind == "seq2seq":
            lengths = lengths + labels.ne(IGNORE).sum(dim=1)
        return lengths

    def evaluate(
        self,
        eval_dataset: Any = None,
        ignore_keys: list[str] | None = None,
        metric_key_prefix: str = "eval",
    ) -> dict[str, float]:
        """Validate by greedy generation; each process scores its share of the items."""
        items: list[ValItem] = list(eval_dataset if eval_dataset is not None else self.eval_dataset)
        rank, world = self.args.process_index, self.args.world_size
        mine = items[rank::world]
        start = time.perf_counter()
        options = {
            "max_new_tokens": self.eval_max_new_tokens,
            "max_input_tokens": self.eval_max_input_tokens,
            "batch_size": self.args.per_device_eval_batch_size,
        }
        # Compiled blocks (train.compile_layers) generate eagerly: see student/compiled.py.
        with eager():
            inputs = [item.input for item in mine]
            tok = self.processing_class
            probs: list[dict[str, float]] = []
            if self.stage == "evaluation":
                outputs, probs = greedy_judge(self.model, tok, self.kind, inputs, **options)
            else:
                outputs = greedy_generate(self.model, tok, self.kind, inputs, **options)
            counts = torch.tensor(score(self.stage, self.task, mine, outputs), dtype=torch.float64)
            if world > 1 and dist.is_initialized():
                dist.all_reduce(counts)
            hits, parsed, total = counts.tolist()
            metrics = {
                f"{metric_key_prefix}_{metric_name(self.stage)}": hits / max(total, 1),
                f"{metric_key_prefix}_parse_rate": parsed / max(total, 1),
                f"{metric_key_prefix}_items": total,
            }
            if self.stage == "evaluation":
                judged = self._judge_metrics(items, outputs, probs)
                metrics |= {f"{metric_key_prefix}_{k}": v for k, v in judged.items()}
        metrics[f"{metric_key_prefix}_runtime"] = time.perf_counter() - start
        self.log(metrics)
        self.control = self.callback_handler.on_evaluate(
            self.args, self.state, self.control, metrics
        )
        return metrics


def evaluation_steps(total_steps: int, count: int) -> list[int]:
    """``count`` evenly spaced steps of ``total_steps``, the last one at the end (fewer when
    the stage has fewer steps)."""
    return sorted({math.ceil(total_steps * i / count) for i in range(1, count + 1)} - {0})


class EvenEvaluations(TrainerCallback):
    """Validate and checkpoint at ``count`` evenly spaced steps of the stage
    (``train.evaluations``): the same choice of checkpoints for a 3-epoch and a 0.3-epoch
    stage. The steps follow from ``max_steps``, so a resumed stage keeps them."""

    def __init__(self, count: int) -> None:
        self.count = count
        self.steps: set[int] = set()

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        """Fix the steps once the stage's length is known."""
        self.steps = set(evaluation_steps(state.max_steps, self.count))

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        """Ask Trainer for a validation and a checkpoint at each chosen step."""
        if state.global_step in self.steps:
            control.should_evaluate = True
            control.should_save = True


SECONDS_FILE = "mindmirror_seconds.json"


def checkpoint_seconds(checkpoint: str | Path | None) -> float | None:
    """The training seconds behind ``checkpoint`` (written by :class:`ElapsedSeconds`): 0.0
    for no checkpoint, None for one saved before it existed or killed before it was written."""
    if checkpoint is None:
        return 0.0
    try:
        return float(json.loads((Path(checkpoint) / SECONDS_FILE).read_text())["train_seconds"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


class ElapsedSeconds(TrainerCallback):
    """Keep each checkpoint's training seconds in it, so that a stage resumed across sessions
    reports the seconds of all its runs, not only the last one's (the time between the last
    checkpoint and a kill is paid but not counted: it did not make the model)."""

    def __init__(self, before: float) -> None:
        self.before = before
        self.started = time.perf_counter()

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        """Count from here (model loading and row building are not training)."""
        self.started = time.perf_counter()

    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        """Write the seconds so far beside the checkpoint Trainer has just saved."""
        folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
        if state.is_world_process_zero and folder.is_dir():
            seconds = self.before + time.perf_counter() - self.started
            write_atomic(folder / SECONDS_FILE, json.dumps({"train_seconds": seconds}))


class RichProgress(TrainerCallback):
    """Training progress on the main process (``progress.ProgressReport``: a rich bar on a
    terminal, plain lines elsewhere): steps, rate, ETA, last loss and validation metric."""

    def __init__(self, description: str, console: Console | None = None) -> None:
        self.description = description
        self.console = console or log_console()
        self.report: ProgressReport | None = None
        self.status = ""

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        """Start reporting (resumed runs start at the checkpoint's step)."""
        if not state.is_world_process_zero:
            return
        self.report = ProgressReport(
            self.description,
            state.max_steps,
            completed=state.global_step,
            unit="step",
            console=self.console,
        ).start()

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        """Advance to the current step."""
        if self.report is not None:
            self.report.update(completed=state.global_step, status=self.status)

    def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kwargs: Any) -> None:
        """Show the latest loss and validation metric next to the count."""
        if self.report is None or not logs:
            return
        parts = [self.status] if self.status else []
        if "loss" in logs:
            parts = [f"loss {logs['loss']:.3f}"]
        for key in ("eval_accuracy", "eval_verdict_agreement"):
            if key in logs:
                parts.append(f"val {key.removeprefix('eval_')} {logs[key]:.3f}")
        self.status = "  ".join(parts)
        self.report.update(status=self.status)

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        """Stop reporting (the final line in plain mode)."""
        if self.report is not None:
            self.report.stop()
            self.report = None
