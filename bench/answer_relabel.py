"""How many teacher labels change when answers are read with this checkout's parser instead of
an earlier commit's (issue 23: the conclusion reading against the last-number guess).

Both versions run the real `teach` command on the same recipe (an import recipe: no teacher is
called), each in its own process with its own ``src/`` on PYTHONPATH, into two scratch run
directories; the records are then compared CoT by CoT: the CoT's parsed answer, its
correctness against gold and its gold verdict (``teacher.evaluator: gold``). Thirty changed
CoTs, drawn with a fixed seed, are printed in full for a check by hand.

    python bench/answer_relabel.py --before 00ff2e5                  # the SVAMP protocol
    python bench/answer_relabel.py --before 00ff2e5 --recipe recipes/svamp_mcckd_cpu.yaml

Ends with ``RESULT labels_changed <count>``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tarfile
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def extract_src(rev: str, into: Path) -> Path:
    """``src/`` of commit ``rev`` unpacked under ``into``; its path."""
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", "--format=tar", rev, "src"],
        check=True,
        capture_output=True,
    ).stdout
    tar_path = into / "src.tar"
    tar_path.write_bytes(archive)
    with tarfile.open(tar_path) as tar:
        tar.extractall(into, filter="data")
    return into / "src"


def teach_records(src: Path, recipe: Path, run_dir: Path) -> list[dict[str, Any]]:
    """The records `mindmirror teach` writes for ``recipe`` with the package under ``src``."""
    env = {**os.environ, "PYTHONPATH": str(src)}
    command = [sys.executable, "-m", "mindmirror", "teach", str(recipe), "-q"]
    command += ["--set", f"run_dir={run_dir}"]
    subprocess.run(command, check=True, env=env, cwd=ROOT, stdout=subprocess.DEVNULL)
    lines = (run_dir / "teacher" / "records.jsonl").read_text().split("\n")
    return [json.loads(line) for line in lines if line.strip()]


def cot_labels(records: list[dict[str, Any]]) -> dict[tuple[str, int], dict[str, Any]]:
    """Each CoT's reading, keyed by (record id, CoT index)."""
    labels = {}
    for record in records:
        for index, cot in enumerate(record["cots"]):
            verdicts = [e.get("verdict") for e in cot.get("evaluations", [])]
            labels[(record["id"], index)] = {
                "split": record["split"],
                "question": record["question"],
                "gold": record.get("gold"),
                "text": cot["text"],
                "answer": cot.get("answer"),
                "correct": cot.get("correct"),
                "verdict": verdicts[0] if verdicts else None,
            }
    return labels


def compare(
    before: dict[tuple[str, int], dict[str, Any]], now: dict[tuple[str, int], dict[str, Any]]
) -> dict[str, Any]:
    """Counts of changed answers and verdicts, overall and by direction and split."""
    if before.keys() != now.keys():
        raise SystemExit("the two runs hold different CoTs: compare the same recipe and data")
    answers = sum(before[k]["answer"] != now[k]["answer"] for k in now)
    verdicts = Counter(
        f"{before[k]['verdict']} -> {now[k]['verdict']}"
        for k in now
        if before[k]["verdict"] != now[k]["verdict"]
    )
    by_split = Counter(now[k]["split"] for k in now if before[k]["verdict"] != now[k]["verdict"])
    wrong_before = sum(v["verdict"] == "wrong" for v in before.values())
    wrong_now = sum(v["verdict"] == "wrong" for v in now.values())
    return {
        "cots": len(now),
        "answers_changed": answers,
        "verdicts_changed": sum(verdicts.values()),
        "verdict_changes": dict(verdicts),
        "verdicts_changed_by_split": dict(by_split),
        "wrong_before": wrong_before,
        "wrong_now": wrong_now,
        "correct_share_before": 1 - wrong_before / len(now),
        "correct_share_now": 1 - wrong_now / len(now),
    }


def show_sample(
    before: dict[tuple[str, int], dict[str, Any]],
    now: dict[tuple[str, int], dict[str, Any]],
    count: int,
    seed: int,
) -> None:
    """Print ``count`` changed CoTs (question, gold, the CoT's end, both readings)."""
    changed = sorted(k for k in now if before[k]["verdict"] != now[k]["verdict"])
    for key in random.Random(seed).sample(changed, min(count, len(changed))):
        old, new = before[key], now[key]
        print(f"\n== {key[0]} cot {key[1]} | gold {new['gold']}")
        print(f"   question: {' '.join(new['question'].split())}")
        print(f"   CoT end: {' '.join(new['text'][-300:].split())}")
        print(f"   before: {old['answer']!r} ({old['verdict']})  now: {new['answer']!r} "
              f"({new['verdict']})")  # fmt: skip


def main() -> None:
    """Teach with both parsers, compare the records, print the counts and a sample."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", required=True, help="the commit whose parser is compared")
    parser.add_argument("--recipe", type=Path, default=ROOT / "recipes" / "svamp_repro_cpu.yaml")
    parser.add_argument("--sample", type=int, default=30, help="changed CoTs printed in full")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        scratch = Path(tmp)
        old_src = extract_src(args.before, scratch)
        before = cot_labels(teach_records(old_src, args.recipe.resolve(), scratch / "before"))
        now = cot_labels(teach_records(ROOT / "src", args.recipe.resolve(), scratch / "now"))
    summary = compare(before, now)
    show_sample(before, now, args.sample, args.seed)
    print(
        "\n" + json.dumps({"before": args.before, "recipe": str(args.recipe), **summary}, indent=2)
    )
    print(f"RESULT labels_changed {summary['verdicts_changed']}")


if __name__ == "__main__":
    main()
