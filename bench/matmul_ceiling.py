"""Matmul ceiling: how fast a student's own training GEMMs run, against the 2048 x 2048 peak.

``bench/train_throughput.py`` reports ``RESULT train_mfu``: useful training FLOPs per second over
the same run's matmul peak, measured on 2048 x 2048 x 2048 products. A small student never
multiplies matrices that large: SmolLM2-135M's hidden size is 576, so its projections are
576 x 192 to 576 x 1536 per token, and only the vocabulary projection (576 x 49152) is wide.
This bench times exactly the GEMMs one training step runs for the student's ``nn.Linear``
layers (per layer: the forward ``X W^T``, and the backward's ``dY W`` and ``dY^T X``) at a
given number of tokens per step, in the precision training uses, and divides their FLOPs by
their time: the fastest a step's matmuls could go on this machine if nothing else cost
anything. Its ratio to the 2048 peak (``RESULT matmul_shape_ceiling``) bounds the MFU that
``train_mfu`` can reach before any cast, norm, attention or optimizer step is counted.

Each repeat measures the peak and the ceiling back to back (interleaved, ``--repeats``, median
and spread): the peak of this machine moves a lot between runs, so only the ratio measured in
one run is compared. Run it alone (``--threads`` defaults to every core).

    python bench/matmul_ceiling.py                          # the embedded SmolLM2-135M student
    python bench/matmul_ceiling.py --tokens 1024 --logit-tokens 512
"""

from __future__ import annotations

import argparse
import os
import statistics
from collections import Counter

import torch
from train_throughput import gemm_seconds, matmul_peak  # bench/ is on sys.path when run as a script

from mindmirror.progress import quiet_libraries
from mindmirror.student.model import load_student
from mindmirror.student.precision import resolve_precision

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


def linear_shapes(model: torch.nn.Module) -> Counter[tuple[int, int, bool]]:
    """``(in_features, out_features, is_head)`` of every ``nn.Linear`` with how many times it
    occurs (the decoder's projections once per layer; the output head once)."""
    head = model.get_output_embeddings()
    shapes: Counter[tuple[int, int, bool]] = Counter()
    for module in model.modules():
        if isinstance(module, torch.nn.Linear):
            shapes[(module.in_features, module.out_features, module is head)] += 1
    return shapes


def step_gemms(in_f: int, out_f: int, tokens: int) -> list[tuple[int, int, int]]:
    """The three products ``(m, k, n)`` of one linear layer's training step over ``tokens``
    rows: forward ``[T, in] @ [in, out]``, input gradient ``[T, out] @ [out, in]``, weight
    gradient ``[out, T] @ [T, in]``."""
    return [(tokens, in_f, out_f), (tokens, out_f, in_f), (out_f, tokens, in_f)]


def shape_ceiling(
    shapes: Counter[tuple[int, int, bool]],
    tokens: int,
    logit_tokens: int,
    dtype: torch.dtype,
    seconds: float,
) -> tuple[float, list[tuple[str, float, float]]]:
    """FLOP/s of one step's linear-layer GEMMs (all their FLOPs over all their time), and per
    distinct product ``(name, GFLOP/s, share of the step's GEMM time)``."""
    timed = []
    for (in_f, out_f, is_head), count in sorted(shapes.items()):
        rows = logit_tokens if is_head else tokens
        for kind, (m, k, n) in zip(("fwd", "dX", "dW"), step_gemms(in_f, out_f, rows), strict=True):
            took = gemm_seconds(m, k, n, dtype, seconds)
            name = f"{'head ' if is_head else ''}{in_f}x{out_f} {kind} ({m}x{k}x{n}) x{count}"
            timed.append((name, 2 * m * k * n, took, count))
    total_flops = sum(flops * count for _, flops, _, count in timed)
    total_time = sum(took * count for _, _, took, count in timed)
    rows_out = [
        (name, flops / took / 1e9, took * count / total_time) for name, flops, took, count in timed
    ]
    return total_flops / total_time, rows_out


def main() -> None:
    """Time the peak and the student's training GEMMs ``--repeats`` times; print both and the
    ratio."""
    quiet_libraries()
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--student", default="embedded")
    parser.add_argument("--tokens", type=int, default=2048, help="token rows per step")
    parser.add_argument(
        "--logit-tokens", type=int, default=1024,
        help="positions whose logits are computed (the engine: target positions only)",
    )  # fmt: skip
    parser.add_argument("--precision", choices=["auto", "fp32", "bf16"], default="auto")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--seconds", type=float, default=0.5, help="timing per product")
    args = parser.parse_args()
    precision = resolve_precision(args.precision)
    dtype = DTYPES[precision]
    model, _, _ = load_student(args.student)
    shapes = linear_shapes(model)
    del model
    torch.set_num_threads(args.threads)
    peaks, ceilings = [], []
    for repeat in range(args.repeats):
        peaks.append(matmul_peak(args.threads, dtype))
        ceiling, per_gemm = shape_ceiling(
            shapes, args.tokens, args.logit_tokens, dtype, args.seconds
        )
        ceilings.append(ceiling)
        print(
            f"repeat {repeat + 1}: peak {peaks[-1] / 1e9:.1f} GFLOP/s, "
            f"training GEMMs {ceiling / 1e9:.1f} GFLOP/s",
            flush=True,
        )
    print(
        f"student {args.student}, {args.tokens} tokens per step ({args.logit_tokens} with "
        f"logits), {precision}, {args.threads} threads, {args.repeats} repeats, "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    print(f"{'product (m x k x n) x count':58} {'GFLOP/s':>8} {'of GEMM time':>12}")
    for name, gflops, share in per_gemm:
        print(f"{name:58} {gflops:>8.1f} {share:>12.1%}")
    ratios = sorted(c / p for c, p in zip(ceilings, peaks, strict=True))

    def spread(values: list[float]) -> str:
        values = sorted(v / 1e9 for v in values)
        return f"{statistics.median(values):.1f} ({values[0]:.1f}-{values[-1]:.1f})"

    print(f"matmul peak (2048 x 2048), GFLOP/s, median (min-max): {spread(peaks)}")
    print(f"the student's training GEMMs, GFLOP/s: {spread(ceilings)}")
    print(f"ratio per repeat: {', '.join(f'{r:.2f}' for r in ratios)}")
    print(f"RESULT matmul_shape_ceiling {statistics.median(ratios):.3f}")


if __name__ == "__main__":
    main()
