"""Real teacher data at CPU scale: ``step_by_step`` vs ``multi_cot`` on the same SVAMP questions.

Teacher CoTs come from the public files in ``../shared/data/svamp`` through the project's own
``import`` backend: gpt-3.5-turbo (MCC-KD, 10 CoTs per question) and PaLM-540B (Distilling
Step-by-Step, 1 CoT per question). The MCC-KD (700/150/150) and DSS (800/200) splits differ,
so questions are matched by normalized text (case and whitespace folded):

- train: the first ``--questions`` MCC-KD train questions that also have a PaLM CoT (so every
  cell trains on exactly the same questions, in MCC-KD's wording; only the CoTs differ);
- validation (checkpoint choice): MCC-KD dev questions not among the training questions;
- test: DSS test questions that are neither training nor validation questions.

Cells (student: the embedded SmolLM2-135M-Instruct, LoRA, the same epochs and seed):
``step_by_step`` with the PaLM CoT, ``step_by_step`` with the first gpt-3.5 CoT, and
``multi_cot`` with ``--num-cots`` gpt-3.5 CoTs. Scored in the paper's answer mode
(``predict:``, greedy) with the task's scorer; test is scored once, on the checkpoint chosen on
validation. Results go to ``--out`` (JSON) and a table on stdout.

    python bench/real_svamp.py --questions 48 --epochs 2 --seed 0
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from mindmirror.config import recipe_from_dict
from mindmirror.progress import quiet_libraries
from mindmirror.records import Record, read_records, write_records
from mindmirror.rundir import RunDir
from mindmirror.student.formats import PREDICT, reasoning_input
from mindmirror.student.model import load_student
from mindmirror.student.train import train
from mindmirror.student.validate import greedy_generate
from mindmirror.tasks import EquationTask, question_key
from mindmirror.teacher.teach import teach

ROOT = Path(__file__).resolve().parents[1]
SVAMP = ROOT.parent / "shared" / "data" / "svamp"


def imported(folder: Path, source: str, num_cots: int) -> list[Record]:
    """Records of one public teacher through the ``import`` backend (gold verdicts, no calls)."""
    path = SVAMP / source
    recipe = recipe_from_dict(
        {
            "run_dir": str(folder),
            "task": {"name": "svamp", "path": str(path)},
            "teacher": {
                "backend": "import",
                "import": {"format": source, "path": str(path)},
                "num_cots": num_cots,
                "num_evals": 1,
                "evaluator": "gold",
                "splits": ["train", "validation", "test"],
            },
        }
    )
    run = RunDir(folder)
    teach(recipe, run, quiet=True)
    return read_records(run.records)


def has_cot(record: Record) -> bool:
    """At least one CoT with a parsed answer."""
    return any(c.parsed for c in record.cots)


def select(
    mcc: list[Record], dss: list[Record], questions: int, val: int, test: int
) -> dict[str, Any]:
    """Train / validation / test records with no question shared across them."""
    palm = {question_key(r.question): r for r in dss if r.split != "test" and has_cot(r)}
    train_gpt = [
        r for r in mcc if r.split == "train" and has_cot(r) and question_key(r.question) in palm
    ][:questions]
    train_keys = {question_key(r.question) for r in train_gpt}
    train_palm = [
        palm[question_key(r.question)].model_copy(
            update={"id": r.id, "split": "train", "question": r.question}
        )
        for r in train_gpt
    ]
    validation = [
        r.model_copy(update={"cots": []})
        for r in mcc
        if r.split == "validation" and question_key(r.question) not in train_keys
    ][:val]
    used = train_keys | {question_key(r.question) for r in validation}
    tests = [
        r.model_copy(update={"cots": []})
        for r in dss
        if r.split == "test" and question_key(r.question) not in used
    ][:test]
    everything = [question_key(r.question) for r in train_gpt + validation + tests]
    assert len(everything) == len(set(everything)), "a question appears in two splits"
    return {"gpt": train_gpt, "palm": train_palm, "validation": validation, "test": tests}


def test_accuracy(student: Path, tests: list[Record], batch: int) -> tuple[float, float]:
    """Answer-mode accuracy and parse rate of a trained student on the test records."""
    model, tokenizer, kind = load_student(student)
    task = EquationTask("svamp")
    inputs = [reasoning_input(PREDICT, r.question) for r in tests]
    outputs = greedy_generate(model, tokenizer, kind, inputs, max_new_tokens=32, batch_size=batch)
    answers = [task.parse_answer(text) for text in outputs]
    hits = sum(bool(task.is_correct(a, r.gold)) for a, r in zip(answers, tests, strict=True))
    parsed = sum(a is not None for a in answers)
    return hits / len(tests), parsed / len(tests)


def run_cell(
    name: str,
    method: str,
    train_records: list[Record],
    split: dict[str, Any],
    args: Any,
    root: Path,
) -> dict[str, Any]:
    """Train one cell in its own run directory and score its chosen checkpoint on test."""
    run = RunDir(root / name)
    write_records(run.records, [*train_records, *split["validation"]])
    recipe = recipe_from_dict(
        {
            "run_dir": str(run.root),
            "seed": args.seed,
            "task": {"name": "svamp"},
            "train": {
                "method": method,
                "student": "embedded",
                "num_cots": args.num_cots,
                "epochs": args.epochs,
                "batch_size": args.batch,
                "lora": True,
                "learning_rate": args.lr,
                "precision": args.precision,
                "max_input_tokens": 256,
                "max_target_tokens": 192,
                "val_limit": None,
                "eval_batch_size": args.batch * 2,
                "logging_steps": 5,
            },
        }
    )
    started = time.perf_counter()
    summary = train(recipe, run, quiet=args.quiet)
    stage = summary["stages"]["reasoning"]
    accuracy, parse_rate = test_accuracy(run.root / summary["final"], split["test"], args.batch)
    return {
        "cell": name,
        "method": method,
        "rows": stage["rows"]["rows"],
        "steps": stage["steps"],
        "validation_accuracy": stage["best_metric"]["eval_accuracy"],
        "test_accuracy": accuracy,
        "test_parse_rate": parse_rate,
        "minutes": (time.perf_counter() - started) / 60,
    }


def main() -> None:
    """Import, select, train the three cells, print and save the table."""
    quiet_libraries()  # no library bars in the logs (transformers' Loading weights)
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--questions", type=int, default=48)
    parser.add_argument("--val", type=int, default=48)
    parser.add_argument("--test", type=int, default=100)
    parser.add_argument("--num-cots", type=int, default=5)
    parser.add_argument("--epochs", type=float, default=2.0)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument("--precision", choices=["fp32", "bf16"], default="bf16")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cells", default="palm_1cot,gpt_1cot,gpt_ncot")
    parser.add_argument("--workdir", type=Path, default=None, help="keep run dirs here")
    parser.add_argument("--out", type=Path, default=Path("bench/real_svamp.json"))
    parser.add_argument("--threads", type=int, default=None, help="torch threads per process")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args()
    if args.threads:
        # On a shared, busy machine one thread per process beats threads spinning on each other.
        torch.set_num_threads(args.threads)
    root = args.workdir or Path(tempfile.mkdtemp(prefix="mm-real-svamp-"))
    mcc = imported(root / "import-mcc_kd", "mcc_kd", 10)
    dss = imported(root / "import-dss", "dss", 1)
    split = select(mcc, dss, args.questions, args.val, args.test)
    print(
        f"train {len(split['gpt'])} questions, validation {len(split['validation'])}, "
        f"test {len(split['test'])}; seed {args.seed}; torch threads "
        f"{torch.get_num_threads()}; load average {os.getloadavg()[0]:.1f}"
    )
    cells = {
        "palm_1cot": ("step_by_step", split["palm"]),
        "gpt_1cot": ("step_by_step", split["gpt"]),
        "gpt_ncot": ("multi_cot", split["gpt"]),
    }
    results = []
    for name in args.cells.split(","):
        method, records = cells[name]
        results.append(run_cell(name, method, records, split, args, root))
        print(json.dumps(results[-1]), flush=True)
    args.out.write_text(
        json.dumps(
            {"args": {k: str(v) for k, v in vars(args).items()}, "results": results}, indent=2
        )
        + "\n"
    )
    print(f"{'cell':10} {'method':13} {'rows':>5} {'steps':>5} {'val acc':>8} {'test acc':>8}")
    for r in results:
        print(
            f"{r['cell']:10} {r['method']:13} {r['rows']:>5} {r['steps']:>5} "
            f"{r['validation_accuracy']:>8.3f} {r['test_accuracy']:>8.3f}"
        )


if __name__ == "__main__":
    main()
