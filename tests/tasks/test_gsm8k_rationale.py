"""GSM8K's worked solutions become example rationales (few-shot CoT and evaluation shots)."""

from __future__ import annotations

import json
from pathlib import Path

from mindmirror.config import TaskConfig
from mindmirror.tasks import NumberTask, load_task
from mindmirror.tasks.loaders import gsm8k_rationale

# The first GSM8K train row, as the dataset writes it.
NATALIA = (
    "Natalia sold 48/2 = <<48/2=24>>24 clips in May.\n"
    "Natalia sold 48+24 = <<48+24=72>>72 clips altogether in April and May.\n#### 72"
)


def test_gsm8k_rationale_drops_calculator_marks_and_states_the_answer() -> None:
    rationale = gsm8k_rationale(NATALIA)
    assert rationale == (
        "Natalia sold 48/2 = 24 clips in May.\n"
        "Natalia sold 48+24 = 72 clips altogether in April and May.\nThe answer is 72."
    )
    task = NumberTask("gsm8k")
    assert task.is_correct(task.parse_answer(rationale), "72")
    assert gsm8k_rationale("#### 12,000") is None


def test_gsm8k_examples_carry_their_rationale(tmp_path: Path) -> None:
    rows = [
        {"question": "Natalia sold 48 clips in April and half as many in May. In all?",
         "answer": NATALIA},
        {"question": "Weng earns $12 an hour. How much for 1,000 hours?", "answer": "#### 12,000"},
    ]  # fmt: skip
    (tmp_path / "train.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    _, splits = load_task(TaskConfig(name="gsm8k", path=str(tmp_path), val_fraction=0.0), 0)
    assert [e.rationale for e in splits["train"]] == [gsm8k_rationale(NATALIA), None]
