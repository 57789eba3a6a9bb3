"""The published recipe's trainer (Distilling Step-by-Step / Mind's Mirror), the baseline arm of
``train_throughput.py``: one item per (question, CoT) pair, a pandas collator splitting it into
a predict and an explain group, two forward passes per step."""

from __future__ import annotations

from typing import Any

import torch
from transformers import Trainer

from mindmirror.student.encoding import encode_row
from mindmirror.student.rows import Row


def published_items(
    rows: list[Row], tokenizer: Any, kind: str, cfg: dict[str, Any]
) -> list[dict[str, Any]]:
    """One item per (question, CoT) pair: its predict and explain features side by side."""
    lengths = {"max_input_tokens": cfg["max_input"], "max_target_tokens": cfg["max_target"]}
    predict = [r for r in rows if r.prefix == "predict"]
    explain = [r for r in rows if r.prefix == "explain"]
    assert len(predict) == len(explain), "unmerged rows pair up one predict per explain"
    items = []
    for p, e in zip(predict, explain, strict=True):
        pf, ef = (
            encode_row(tokenizer, kind, p, **lengths),
            encode_row(tokenizer, kind, e, **lengths),
        )
        items.append(
            {
                "pred_input_ids": pf["input_ids"],
                "pred_labels": pf["labels"],
                "expl_input_ids": ef["input_ids"],
                "expl_labels": ef["labels"],
            }
        )
    return items


class PublishedCollator:
    """The published TaskPrefixDataCollator: a pandas DataFrame split into two padded groups."""

    def __init__(self, pad: Any) -> None:
        self.pad = pad

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, Any]:
        import pandas as pd

        frame = pd.DataFrame(features)
        groups = {}
        for name in ("pred", "expl"):
            part = frame[[f"{name}_input_ids", f"{name}_labels"]]
            part = part.rename(
                columns={f"{name}_input_ids": "input_ids", f"{name}_labels": "labels"}
            )
            extra = {"weight": 1.0, "count": 1.0, "short": name == "pred"}
            batch = self.pad([{**r, **extra} for r in part.to_dict("records")])
            for key in extra:
                batch.pop(key)
            groups[name] = batch
        return groups


class PublishedTrainer(Trainer):
    """The published trainer: every step is two forward passes, predict then explain."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.model_accepts_loss_kwargs = False

    def compute_loss(
        self,
        model: torch.nn.Module,
        inputs: dict[str, Any],
        return_outputs: bool = False,
        num_items_in_batch: torch.Tensor | int | None = None,
    ) -> Any:
        """``alpha * loss(predict pass) + (1 - alpha) * loss(explain pass)``, alpha = 0.5."""
        pred = model(**inputs["pred"])
        expl = model(**inputs["expl"])
        loss = 0.5 * pred.loss + 0.5 * expl.loss
        return (loss, {"pred": pred, "expl": expl}) if return_outputs else loss
