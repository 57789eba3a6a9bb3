"""GGUF export: how often the llama.cpp server's greedy answers equal the PyTorch student's.

The demo-sized student (SmolLM2-135M-Instruct, the embedded model) is trained briefly on the
``predict:`` answer format (``--rows`` generated arithmetic problems, ``--steps`` full-batch
Adam steps), exported by ``mindmirror.deployment.export`` at each GGUF type, served by the llama.cpp
server, and asked ``--questions`` unseen questions greedily (16 new tokens); the baseline is
the same student in PyTorch (fp32) in the same run. Prints one line per type and
``RESULT gguf_agreement_<type> <share>``.

Run from the repository root: ``python bench/export_agreement.py`` (a few minutes on 2 cores).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mindmirror.deployment.export_gguf import write_gguf
from mindmirror.embedded import llama_server
from mindmirror.student.formats import PREDICT, reasoning_input
from mindmirror.student.model import load_student
from mindmirror.tasks.arith_problems import generate_problems
from tests.eval.tiny import fit_tiny
from tests.gguf_agreement import agreement, llama_greedy, torch_greedy

TYPES = ("f16", "q8_0", "q5_k_m", "q4_k_m", "q4_0")


def main() -> None:
    """Train, export at each type, serve, compare; print the table and RESULT lines."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=16, help="training problems")
    parser.add_argument("--steps", type=int, default=6, help="full-batch Adam steps")
    parser.add_argument("--questions", type=int, default=60, help="unseen questions asked")
    parser.add_argument("--types", nargs="+", default=list(TYPES), help="GGUF types")
    args = parser.parse_args()

    model, tokenizer, _ = load_student("embedded")
    problems = generate_problems(args.rows + args.questions, seed=7)
    rows = [
        (reasoning_input(PREDICT, p.question), f"The answer is {p.equation}.") for p in problems
    ]
    started = time.perf_counter()
    model = fit_tiny(model, tokenizer, rows[: args.rows], steps=args.steps, lr=1e-4)
    print(f"trained on {args.rows} rows in {time.perf_counter() - started:.0f}s")
    inputs = [source for source, _ in rows[args.rows :]]
    expected = torch_greedy(model, tokenizer, inputs, max_tokens=16)
    learnt = sum(text.startswith("The answer is") for text in expected)
    print(f"PyTorch student: {learnt}/{len(inputs)} answers in the trained format")
    with tempfile.TemporaryDirectory() as tmp:
        for kind in args.types:
            path = write_gguf(model, tokenizer, Path(tmp) / f"student-{kind}.gguf", kind)
            size_mb = path.stat().st_size / 1e6
            with llama_server(path, log_path=Path(tmp) / "server.log", n_ctx=512) as url:
                got = llama_greedy(url, inputs, max_tokens=16)
            share = agreement(expected, got)
            same = round(share * len(inputs))
            print(f"{kind:>7}: {size_mb:6.1f} MB, {same}/{len(inputs)} answers equal ({share:.1%})")
            print(f"RESULT gguf_agreement_{kind} {share:.3f}")
            path.unlink()


if __name__ == "__main__":
    main()
