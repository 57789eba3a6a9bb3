"""Why the batched server puts sequences into each batch in slot order: llama.cpp step times.

With a KV-cache stream per sequence (``kv_unified`` off, as ``BatchDecoder`` runs), llama.cpp
splits a batch wherever the sequence ids are not consecutive, and each part is another pass
over the weights. This times one decoding step of ``--sequences`` sequences, each already
holding ``--context`` tokens, with the batch in four arrangements:

- ``in order``: slots 0, 1, 2, ... (what ``BatchDecoder`` does);
- ``two gaps``: the same without two slots (what finished samples would leave until refilled,
  without ``BatchDecoder._compact``);
- ``shuffled``: the slots in random order (what appending to a list of running sequences
  becomes after a while);
- ``one stream``: in order, with one KV-cache stream shared by every sequence (attention then
  reads every sequence's keys).

Each arrangement runs ``--steps`` steps, ``--repeats`` times interleaved; prints the median and
range of milliseconds per step and last ``RESULT batch_slot_order <shuffled / in order>``.

    python bench/batch_slot_order.py                 # the student GGUF of the demo, f16
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import tempfile
import time
from pathlib import Path


def student_gguf(folder: Path) -> Path:
    """The demo's student (the embedded SmolLM2-135M) exported to an f16 GGUF in ``folder``."""
    from mindmirror.deployment.export_gguf import write_gguf
    from mindmirror.student.model import load_student

    model, tokenizer, _ = load_student("embedded")
    return write_gguf(model, tokenizer, folder / "student-f16.gguf", "f16")


class Stepper:
    """A llama.cpp context of ``sequences`` sequences, each with ``context`` tokens decoded."""

    def __init__(self, path: Path, sequences: int, context: int, threads: int, unified: bool):
        import llama_cpp
        from llama_cpp._logger import set_verbose

        set_verbose(False)  # llama.cpp's errors only, not a line per tensor loaded
        self.llama = llama_cpp
        llama_cpp.llama_backend_init()
        model = llama_cpp.llama_model_load_from_file(
            str(path).encode(), llama_cpp.llama_model_default_params()
        )
        params = llama_cpp.llama_context_default_params()
        params.n_ctx = (context + 256) * sequences
        params.n_batch = params.n_ctx
        params.n_ubatch = 512
        params.n_seq_max = sequences
        params.n_threads = params.n_threads_batch = threads
        params.kv_unified = unified
        params.flash_attn_type = llama_cpp.LLAMA_FLASH_ATTN_TYPE_DISABLED
        self.ctx = llama_cpp.llama_init_from_model(model, params)
        self.batch = llama_cpp.llama_batch_init(params.n_batch, 0, 1)
        self.positions = [0] * sequences  # llama.cpp wants each sequence's positions in a row
        self.step(list(range(sequences)), context)

    def step(self, order: list[int], tokens: int = 1) -> None:
        """Decode ``tokens`` tokens of each sequence in ``order``."""
        batch = self.batch
        batch.n_tokens = 0
        for slot in order:
            for j in range(tokens):
                i = batch.n_tokens
                batch.token[i] = 100 + j
                batch.pos[i] = self.positions[slot] + j
                batch.n_seq_id[i] = 1
                batch.seq_id[i][0] = slot
                batch.logits[i] = j == tokens - 1
                batch.n_tokens += 1
        if self.llama.llama_decode(self.ctx, batch) != 0:
            raise RuntimeError("llama_decode failed")
        for slot in order:
            self.positions[slot] += tokens


def main() -> None:
    """Time each arrangement, print the table and the result line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sequences", type=int, default=16)
    parser.add_argument("--context", type=int, default=300)
    parser.add_argument("--steps", type=int, default=15)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    n = args.sequences
    in_order = list(range(n))
    arrangements = {
        "in order": (False, in_order),
        "two gaps": (False, [s for s in in_order if s not in (n // 4, n // 2)]),
        "shuffled": (False, random.Random(0).sample(in_order, n)),
        "one stream": (True, in_order),
    }
    times: dict[str, list[float]] = {name: [] for name in arrangements}
    with tempfile.TemporaryDirectory() as folder:
        path = student_gguf(Path(folder))
        steppers = {
            unified: Stepper(path, n, args.context, args.threads, unified)
            for unified in (False, True)
        }
        for _ in range(args.repeats):
            for name, (unified, order) in arrangements.items():
                stepper = steppers[unified]
                start = time.perf_counter()
                for _ in range(args.steps):
                    stepper.step(order)
                times[name].append((time.perf_counter() - start) / args.steps * 1000)
    print(f"| batch of {n} sequences at {args.context}+ tokens | ms per step, median (range) |")
    print("|---|---|")
    for name, values in times.items():
        print(f"| {name} | {statistics.median(values):.0f} ({min(values):.0f}-{max(values):.0f}) |")
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"{args.threads} thread(s), {args.repeats} repeats; load average {load}")
    ratio = statistics.median(times["shuffled"]) / statistics.median(times["in order"])
    print(f"RESULT batch_slot_order {ratio:.2f}")


if __name__ == "__main__":
    main()
