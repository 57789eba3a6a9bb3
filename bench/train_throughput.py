"""Training throughput: mindmirror's trainer against the published recipe's way, same model.

Workload: the ``multi_cot`` objective over the first Q SVAMP training questions of MCC-KD with
N gpt-3.5 CoTs each (imported through the project's own ``import`` backend), for one epoch.
Three arms, each run ``--repeats`` times (interleaved), median and spread reported:

- ``published``: what Distilling Step-by-Step / Mind's Mirror do. One dataset item per
  (question, CoT) pair holding a ``predict:`` and an ``explain:`` example; the collator builds
  a pandas DataFrame and splits it into the two groups, each padded to its own longest row;
  every step runs two forward passes (predict, then explain) and adds
  ``alpha * loss_predict + (1 - alpha) * loss_explain`` (each a token mean). Random batches.
- ``engine``: ``mindmirror.student`` with the *same rows and objective*: no merging, random
  batches, the published loss normalisation (``task_token_mean``). What differs is only
  engineering: one forward pass over a mixed batch, causal logits kept for target positions
  only, padding per batch. Its ratio isolates the engine.
- ``ours``: the engine plus the options that change the optimisation: identical rows merged
  (``dedupe``) and length-grouped batches.
- ``compiled`` (with ``--compile``): the engine arm with ``train.compile_layers`` (each decoder
  layer compiled by ``torch.compile``). It trains two epochs and is timed on the second (the
  first pays the compile, reported apart), so its figures are those of a long stage.

Same student, precision and sequences per optimizer step (published: B pairs = 2B sequences in
two passes; engine/ours: 2B rows in one), each run in its own subprocess (clean peak memory).
Reported per arm: rows and the non-padding tokens of the rows it trains, epoch time, tokens/s
of the published objective (the work every arm accomplishes), tokens fed (padding included),
peak RSS, and FLOP/s over this machine's measured matmul peak. Last lines:
``RESULT train_mfu <fraction>`` (the engine arm's model FLOPs utilisation: useful FLOPs per second
over the same run's matmul peak at the precision it trains in), then
``RESULT train_throughput_engine <ratio>`` and ``RESULT train_throughput <ratio>`` (published
median epoch time / the arm's); with ``--compile`` also ``RESULT train_mfu_compiled``.

    python bench/train_throughput.py --quick                 # SmolLM2-135M (causal)
    python bench/train_throughput.py --quick --student t5    # a T5-v1.1-small-shaped seq2seq
    python bench/train_throughput.py --quick --compile       # also the compiled engine arm
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from published_trainer import PublishedCollator, PublishedTrainer, published_items
from transformers import PrinterCallback, Trainer, TrainerCallback, TrainingArguments

from mindmirror.progress import quiet_libraries
from mindmirror.records import read_records
from mindmirror.student.compiled import compile_blocks
from mindmirror.student.encoding import WeightedCollator, encode_row, feature_length
from mindmirror.student.model import load_student
from mindmirror.student.rows import RowSpec, build_rows
from mindmirror.student.trainer import StudentTrainer
from mindmirror.tasks import EquationTask

ROOT = Path(__file__).resolve().parents[1]
MCC_KD = ROOT.parent / "shared" / "data" / "svamp" / "mcc_kd"


# ---------------------------------------------------------------------------- records


def import_records(folder: Path, num_cots: int) -> Path:
    """Teacher records from the MCC-KD files via the project's ``import`` backend."""
    from mindmirror.config import recipe_from_dict
    from mindmirror.rundir import RunDir
    from mindmirror.teacher.teach import teach

    recipe = recipe_from_dict(
        {
            "run_dir": str(folder),
            "task": {"name": "svamp", "path": str(MCC_KD)},
            "teacher": {
                "backend": "import",
                "import": {"format": "mcc_kd", "path": str(MCC_KD)},
                "num_cots": num_cots,
                "num_evals": 1,
                "evaluator": "gold",
                "splits": ["train"],
            },
        }
    )
    run = RunDir(folder)
    teach(recipe, run, quiet=True)
    return run.records


# ---------------------------------------------------------------------------- the workers


def run_worker(cfg: dict[str, Any]) -> dict[str, Any]:
    """Train one epoch in this process the published way or ours; return the measurements."""
    torch.set_num_threads(cfg["threads"])
    torch.manual_seed(0)
    task = EquationTask("svamp")
    records = [r for r in read_records(Path(cfg["records"])) if r.split == "train"]
    records = records[: cfg["questions"]]
    arm = cfg["method"]
    ours = arm != "published"
    # The same rows in every arm (explain target: the whole CoT), merged only in `ours`.
    spec = RowSpec(
        method="multi_cot",
        num_cots=cfg["num_cots"],
        alpha=0.5,
        dedupe=arm == "ours",
        explain_target="cot",
    )
    rows, stats = build_rows(records, task, spec, "reasoning")
    model, tokenizer, kind = load_student(cfg["student"])
    compiled = arm == "compiled"
    if compiled:
        compile_blocks(model)
    pad = WeightedCollator(
        tokenizer.pad_token_id, kind, getattr(model.config, "decoder_start_token_id", None)
    )
    args = TrainingArguments(
        output_dir=cfg["out"],
        num_train_epochs=2 if compiled else 1,
        learning_rate=1e-5,
        report_to="none",
        per_device_train_batch_size=cfg["batch"] * (2 if ours else 1),
        save_strategy="no",
        eval_strategy="no",
        logging_strategy="no",
        bf16=cfg["precision"] == "bf16",
        use_cpu=not torch.cuda.is_available(),
        remove_unused_columns=False,
        seed=0,
        train_sampling_strategy="group_by_length" if arm == "ours" else "random",
        disable_tqdm=True,
    )
    lengths = {"max_input_tokens": cfg["max_input"], "max_target_tokens": cfg["max_target"]}
    if ours:
        features = [encode_row(tokenizer, kind, r, **lengths) for r in rows]
        trainer: Trainer = StudentTrainer(
            model=model,
            args=args,
            train_dataset=features,
            data_collator=pad,
            processing_class=tokenizer,
            kind=kind,
            stage="reasoning",
            task=task,
            lengths=[feature_length(f) for f in features],
            examples=[r.example for r in rows],
            loss_norm="task_token_mean",
        )
        fed, logits = _fed_tokens(trainer, ours=True)
    else:
        features = published_items(rows, tokenizer, kind, cfg)
        trainer = PublishedTrainer(
            model=model,
            args=args,
            train_dataset=features,
            data_collator=PublishedCollator(pad),
            processing_class=tokenizer,
        )
        fed, logits = _fed_tokens(trainer, ours=False)
    trainer.remove_callback(PrinterCallback)
    epochs = EpochTimes()
    trainer.add_callback(epochs)
    output = trainer.train()
    return {
        "method": arm,
        "rows": stats.rows,
        "row_tokens": sum(_real_tokens(f, kind == "seq2seq") for f in features),
        "sequences": len(features) * (1 if ours else 2),
        "steps": output.global_step // len(epochs.seconds),
        "seconds": epochs.seconds[-1],
        "first_epoch_seconds": epochs.seconds[0],
        "tokens_fed": fed,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "logit_positions": logits,
        "body_params": body_params(model),
        "head_params": model.get_output_embeddings().weight.numel(),
    }


class EpochTimes(TrainerCallback):
    """Wall-clock seconds of each training epoch."""

    def __init__(self) -> None:
        self.seconds: list[float] = []
        self.started = 0.0

    def on_epoch_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        """Start the epoch's clock."""
        self.started = time.perf_counter()

    def on_epoch_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        """Stop it."""
        self.seconds.append(time.perf_counter() - self.started)


def _fed_tokens(trainer: Any, ours: bool) -> tuple[int, int]:
    """Tokens one epoch feeds through the model (padding included, same sampler and seed), and
    the positions whose logits are computed (ours trims causal logits to the targets)."""
    tokens = logits = 0
    for batch in trainer.get_train_dataloader():
        for group in [batch] if ours else [batch["pred"], batch["expl"]]:
            tokens += group["input_ids"].numel()
            if "decoder_input_ids" in group:
                tokens += group["decoder_input_ids"].numel()
                logits += group["decoder_input_ids"].numel()
            elif ours and getattr(trainer, "keeps_logits", False):
                keep = int(group["labels"].ne(-100).sum(dim=1).max()) + 1
                logits += group["labels"].shape[0] * min(keep, group["labels"].shape[1])
            else:
                logits += group["input_ids"].numel()
    return tokens, logits


def _real_tokens(feature: dict[str, Any], seq2seq: bool) -> int:
    """Non-padding tokens of one training feature (both halves of a published pair); a
    seq2seq feature's labels are its decoder tokens, a causal one's repeat its input."""
    names = ("",) if "input_ids" in feature else ("pred_", "expl_")
    return sum(
        len(feature[f"{n}input_ids"]) + (len(feature[f"{n}labels"]) if seq2seq else 0)
        for n in names
    )


def step_flops(result: dict[str, Any], useful: bool = False) -> float:
    """Approximate FLOPs of the epoch: 6 x (matmul parameters) per token, with the vocabulary
    projection counted only at the positions whose logits were computed. ``useful``: only the
    rows' real tokens count (padding is work done, not work accomplished; the MFU uses this)."""
    body, head = result["body_params"], result["head_params"]
    tokens = result["row_tokens"] if useful else result["tokens_fed"]
    return 6 * body * tokens + 6 * head * result["logit_positions"]


def body_params(model: torch.nn.Module) -> int:
    """Parameters used in matmuls at every position: all but the embedding tables and head."""
    skip = {id(model.get_input_embeddings().weight), id(model.get_output_embeddings().weight)}
    return sum(p.numel() for p in model.parameters() if id(p) not in skip)


# ---------------------------------------------------------------------------- the driver


def model_flops_utilisation(results: list[dict[str, Any]], median: float, peak: float) -> float:
    """Useful FLOPs per second of the run nearest the median epoch time, over ``peak``."""
    run = min(results, key=lambda x: abs(x["seconds"] - median))
    return step_flops(run, useful=True) / run["seconds"] / peak


def gemm_seconds(m: int, k: int, n: int, dtype: torch.dtype, seconds: float) -> float:
    """Seconds one ``[m, k] @ [k, n]`` product takes (the mean over ``seconds`` of repeats,
    after one untimed warm-up)."""
    a = torch.randn(m, k, dtype=dtype)
    b = torch.randn(k, n, dtype=dtype)
    torch.mm(a, b)
    count, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        torch.mm(a, b)
        count += 1
    return (time.perf_counter() - started) / count


def matmul_peak(threads: int, dtype: torch.dtype, seconds: float = 3.0) -> float:
    """This machine's measured dense matmul FLOP/s (2048 x 2048, ``threads`` threads)."""
    torch.set_num_threads(threads)
    return 2 * 2048**3 / gemm_seconds(2048, 2048, 2048, dtype, seconds)


def objective_tokens(records_path: Path, cfg: dict[str, Any]) -> int:
    """Non-padding tokens of the published objective's rows (the work both runs accomplish)."""
    records = [r for r in read_records(records_path) if r.split == "train"][: cfg["questions"]]
    spec = RowSpec(method="multi_cot", num_cots=cfg["num_cots"], explain_target="cot")
    rows, _ = build_rows(records, EquationTask("svamp"), spec, "reasoning")
    _, tokenizer, kind = load_student(cfg["student"])
    lengths = {"max_input_tokens": cfg["max_input"], "max_target_tokens": cfg["max_target"]}
    total = 0
    for row in rows:
        feature = encode_row(tokenizer, kind, row, **lengths)
        total += len(feature["input_ids"]) + (len(feature["labels"]) if kind == "seq2seq" else 0)
    return total


def t5_student(folder: Path) -> str:
    """A randomly initialised seq2seq student shaped like T5-v1.1-small (no download: the
    tokenizer is the embedded SmolLM2's), saved as an ordinary Hugging Face folder."""
    from transformers import T5Config, T5ForConditionalGeneration

    from mindmirror.student.model import save_student

    _, tokenizer, _ = load_student("embedded")
    config = T5Config(
        vocab_size=len(tokenizer),
        d_model=512,
        d_kv=64,
        d_ff=1024,
        num_layers=8,
        num_heads=6,
        feed_forward_proj="gated-gelu",
        tie_word_embeddings=False,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        decoder_start_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(0)
    save_student(T5ForConditionalGeneration(config), tokenizer, folder, kind="seq2seq")
    return str(folder)


ARMS = ("published", "engine", "ours")


def worker_result(script: str, worker: dict[str, Any], name: str) -> dict[str, Any]:
    """Run ``script --worker JSON`` in a fresh process (its own clean peak memory); return the
    JSON it prints last, or exit with the worker's error."""
    done = subprocess.run(
        [sys.executable, script, "--worker", json.dumps(worker)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        sys.exit(f"{name} worker failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    """Run every arm ``--repeats`` times in subprocesses and print the comparison."""
    from mindmirror.student.precision import resolve_precision

    quiet_libraries()
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="8 questions")
    parser.add_argument("--questions", type=int, default=None, help="training questions Q")
    parser.add_argument("--num-cots", type=int, default=5, help="CoTs per question N")
    parser.add_argument("--batch", type=int, default=4, help="published batch: B pairs")
    parser.add_argument("--student", default="embedded", help="embedded, t5, or a model path")
    parser.add_argument(
        "--precision", choices=["auto", "fp32", "bf16"], default="auto",
        help="auto: bf16 where the hardware runs it natively, else fp32",
    )  # fmt: skip
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--max-input", type=int, default=256)
    parser.add_argument("--max-target", type=int, default=256)
    parser.add_argument(
        "--compile", action="store_true", help="also the compiled engine arm (train.compile_layers)"
    )
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(run_worker(json.loads(args.worker))))
        return
    if not MCC_KD.is_dir():
        sys.exit(f"needs the public SVAMP data at {MCC_KD}")
    questions = args.questions or (8 if args.quick else 32)
    precision = resolve_precision(args.precision)
    with tempfile.TemporaryDirectory(prefix="mm-bench-") as tmp:
        records = import_records(Path(tmp) / "run", args.num_cots)
        student = t5_student(Path(tmp) / "t5") if args.student == "t5" else args.student
        cfg = {
            "records": str(records),
            "questions": questions,
            "num_cots": args.num_cots,
            "batch": args.batch,
            "student": student,
            "precision": precision,
            "threads": args.threads,
            "max_input": args.max_input,
            "max_target": args.max_target,
        }
        arms = (*ARMS, "compiled") if args.compile else ARMS
        runs: dict[str, list[dict[str, Any]]] = {arm: [] for arm in arms}
        for repeat in range(args.repeats):
            for arm in arms:
                worker = {**cfg, "method": arm, "out": str(Path(tmp) / f"{arm}{repeat}")}
                runs[arm].append(worker_result(__file__, worker, arm))
                print(f"repeat {repeat + 1} {arm}: {runs[arm][-1]['seconds']:.1f} s", flush=True)
        tokens = objective_tokens(records, cfg)
    peaks = {"fp32": matmul_peak(args.threads, torch.float32)}
    if resolve_precision("auto") == "bf16":
        peaks["bf16"] = matmul_peak(args.threads, torch.bfloat16)
    peak = peaks[precision]
    print(
        f"student {args.student}, {questions} questions x {args.num_cots} CoTs, "
        f"batch {args.batch} pairs = {2 * args.batch} sequences/step, {precision}, "
        f"{args.threads} threads, {args.repeats} repeats, load average {os.getloadavg()[0]:.1f}"
    )
    print(
        f"objective tokens per epoch: {tokens}; matmul peak (2048 x 2048) "
        + ", ".join(f"{name} {flops / 1e9:.1f} GFLOP/s" for name, flops in peaks.items())
    )
    header = f"{'':10} {'rows':>5} {'row tok':>7} {'steps':>5} {'time s (min-max)':>20} "
    print(header + f"{'tok/s':>7} {'fed tok/s':>9} {'peak RSS MB':>11} {'of peak':>7}")
    median = {}
    for arm, results in runs.items():
        times = sorted(r["seconds"] for r in results)
        mid = statistics.median(times)
        median[arm] = mid
        r = min(results, key=lambda x: abs(x["seconds"] - mid))
        flops = step_flops(r) / r["seconds"]
        spread = f"{mid:.1f} ({times[0]:.1f}-{times[-1]:.1f})"
        print(
            f"{arm:10} {r['sequences']:>5} {r['row_tokens']:>7} {r['steps']:>5} {spread:>20} "
            f"{tokens / mid:>7.1f} {r['tokens_fed'] / r['seconds']:>9.1f} "
            f"{max(x['peak_rss_mb'] for x in results):>11.0f} {flops / peak:>7.1%}"
        )
    mfu = {arm: model_flops_utilisation(runs[arm], median[arm], peak) for arm in runs}
    print(
        f"model FLOPs utilisation of the engine arm: {mfu['engine']:.1%} of the {precision} "
        "matmul peak (6 x matmul parameters x real tokens, padding not counted)"
    )
    if "compiled" in runs:
        first = statistics.median(r["first_epoch_seconds"] for r in runs["compiled"])
        print(
            f"compiled arm: {mfu['compiled']:.1%} of the peak in its second epoch; its first "
            f"epoch (with the compile) took {first:.1f} s, {first - median['compiled']:.1f} s more"
        )
    print(f"RESULT train_mfu {mfu['engine']:.3f}")
    if "compiled" in runs:
        print(f"RESULT train_mfu_compiled {mfu['compiled']:.3f}")
    print(f"RESULT train_throughput_engine {median['published'] / median['engine']:.2f}")
    print(f"RESULT train_throughput {median['published'] / median['ours']:.2f}")


if __name__ == "__main__":
    main()
