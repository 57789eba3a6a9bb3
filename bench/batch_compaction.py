"""Moving sequences down into the gaps that finished ones leave: the batched decoder with and
without it, on the same requests.

``BatchDecoder`` decodes every running sequence in one ``llama_decode`` per step, and llama.cpp
splits a step wherever the slot ids are not consecutive (``bench/batch_slot_order.py``). Samples
end at different lengths, so without a remedy the running slots soon have gaps, and each gap is
one more pass over the weights. ``BatchDecoder._compact`` moves the sequence in the highest slot
down into the lowest gap (its KV stream copied). This bench runs the same sampling requests
through the decoder as it is (``compacted``) and through one whose ``_compact`` does nothing
(``gaps``, the decoder before the change), in one process, interleaved (the arms take turns
going first).

The requests are ``bench/student_sampling.py``'s: ``--questions`` generated arithmetic
questions in the ``explain:`` format, K = ``--samples`` samples each (one request per sample,
as the request engine sends them), temperature 0.7, up to ``--max-new-tokens`` tokens, the
demo's student (the embedded SmolLM2-135M, never trained on the format) as an f16 GGUF,
``--parallel`` slots, 2 threads. Each repeat draws with its own seeds, the same for both arms.
Prints tokens/s per arm (median and range of ``--repeats``) and last
``RESULT batch_compaction <compacted / gaps tokens per second>``.

    python bench/batch_compaction.py
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from batch_slot_order import student_gguf  # bench/ is on sys.path when run as a script
from student_sampling import sampling_inputs

from mindmirror.progress import quiet_libraries
from mindmirror.student.formats import causal_prompt
from mindmirror.student.llama_batch import BatchDecoder, Request, _Sequence


class WithGaps(BatchDecoder):
    """The decoder before ``_compact``: finished sequences leave their slots' gaps."""

    def _compact(self, running: list[_Sequence], free: list[int]) -> None:
        return None


def tokens_per_second(
    decoder: BatchDecoder, prompts: list[list[int]], args: argparse.Namespace, seed: int
) -> float:
    """Generated tokens per second of K samples of every prompt, submitted at once."""
    start = time.perf_counter()
    futures = [
        decoder.submit(
            Request(p, max_tokens=args.max_new_tokens, temperature=0.7, seed=seed + 100 * i + k)
        )
        for i, p in enumerate(prompts)
        for k in range(args.samples)
    ]
    tokens = sum(len(choice.tokens) for f in futures for choice in f.result())
    return tokens / (time.perf_counter() - start)


def main() -> None:
    """Parse arguments, run both decoders in turn, print the result."""
    quiet_libraries()
    parser = argparse.ArgumentParser(description="Batched decoding with and without compaction.")
    parser.add_argument("--questions", type=int, default=4)
    parser.add_argument("--samples", type=int, default=5, help="K per question")
    parser.add_argument("--max-new-tokens", type=int, default=256)
    parser.add_argument("--parallel", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    texts = [causal_prompt(text) for text in sampling_inputs(args.questions)]
    with tempfile.TemporaryDirectory() as folder:
        path = student_gguf(Path(folder))
        settings = {"parallel": args.parallel, "n_ctx": 640, "threads": args.threads}
        decoders = {"compacted": BatchDecoder(path, **settings), "gaps": WithGaps(path, **settings)}
        threads = [decoder.start() for decoder in decoders.values()]
        prompts = [decoders["compacted"].tokenize(text) for text in texts]
        rates: dict[str, list[float]] = {name: [] for name in decoders}
        for repeat in range(args.repeats):
            order = list(decoders.items())
            for name, decoder in order if repeat % 2 == 0 else order[::-1]:
                rate = tokens_per_second(decoder, prompts, args, 1000 * (repeat + 1))
                rates[name].append(rate)
                print(f"repeat {repeat + 1} {name}: {rate:.1f} tokens/s", flush=True)
        for decoder, thread in zip(decoders.values(), threads, strict=True):
            decoder.stop()
            thread.join()
    for name, values in rates.items():
        low, high = min(values), max(values)
        print(f"{name}: {statistics.median(values):.1f} ({low:.1f}-{high:.1f}) tokens/s")
    print(f"moves: {decoders['compacted'].moves} (compacted), {decoders['gaps'].moves} (gaps)")
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(
        f"{args.questions} questions x K = {args.samples}, up to {args.max_new_tokens} tokens, "
        f"{args.parallel} slots, {args.threads} threads; load average {load} (1, 5, 15 min)"
    )
    ratio = statistics.median(rates["compacted"]) / statistics.median(rates["gaps"])
    print(f"RESULT batch_compaction {ratio:.2f}")


if __name__ == "__main__":
    main()
