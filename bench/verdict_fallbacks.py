"""How many verdicts of a scored run transformers gave instead of the server, from its cache.

``eval`` counts them since 2026-12-05 (``verdict_fallbacks`` in ``metrics.json`` and the cell
records). For a run scored before, the server's replies kept in its sample cache tell: a
verdict reply (one token and its top log-probabilities) from which ``verdict_distribution``
cannot read the verdict words was judged by transformers instead. Per model in the cache (the
student's GGUF, and a separate judge's), the verdict replies and how many of them fell back.
The verdict words are read from the student's tokenizer (``--tokenizer``, default the
embedded SmolLM2's, the protocol's student).

    python bench/verdict_fallbacks.py runs/svamp_repro/cells/mind_mirror-n5-s0/eval/samples.sqlite
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
from collections import Counter
from pathlib import Path

from mindmirror.errors import UserError
from mindmirror.requests.completions import read_payload
from mindmirror.student.server import verdict_distribution


def count_fallbacks(cache: Path, words: list[str]) -> dict[str, dict[str, int]]:
    """Per model, its verdict replies (those with a top log-probability list) and how many of them
    ``verdict_distribution`` cannot read (the ones transformers judged)."""
    if not cache.is_file():
        raise UserError(f"no sample cache at {cache}")
    replies: Counter[str] = Counter()
    unread: Counter[str] = Counter()
    with sqlite3.connect(f"file:{cache}?mode=ro", uri=True) as db:
        for model, payload in db.execute("SELECT model, text FROM samples ORDER BY model"):
            top = read_payload(payload).top_logprobs
            if not top:
                continue  # a sampled CoT or answer (no top list, or an empty one), no verdict
            replies[model] += 1
            unread[model] += verdict_distribution(top, words) is None
    return {m: {"verdicts": replies[m], "judged_by_transformers": unread[m]} for m in replies}


def main() -> None:
    """Print each model's verdict replies and fallbacks."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("cache", type=Path, help="a run's eval/samples.sqlite")
    parser.add_argument("--tokenizer", default="embedded", help="the student (its tokenizer)")
    args = parser.parse_args()
    from transformers import AutoTokenizer

    from mindmirror.student.model import resolve_source
    from mindmirror.student.server import verdict_words

    found = verdict_words(AutoTokenizer.from_pretrained(resolve_source(args.tokenizer)))
    if found is None:
        raise UserError("this tokenizer splits a verdict word: transformers judged every verdict")
    for model, counts in count_fallbacks(args.cache, found[1]).items():
        share = counts["judged_by_transformers"] / counts["verdicts"]
        print(
            f"{model}: {counts['verdicts']} verdicts, {counts['judged_by_transformers']} "
            f"({share:.1%}) judged by transformers"
        )


if __name__ == "__main__":
    try:
        main()
    except UserError as error:  # a user's mistake: one line, no traceback
        sys.exit(f"error: {error}")
