"""Adaptive teaching live on the embedded teacher: fixed against adaptive, and the estimate.

Teaches the demo task (generated arithmetic word problems, ``src/mindmirror/recipes/demo.yaml``)
twice with the embedded SmolLM2-135M-Instruct teacher served by llama.cpp on loopback: once
with the fixed recipe (N CoTs per question, M evaluations per CoT) into a fresh run directory,
then with ``teacher.adaptive_cots`` and ``teacher.adaptive_evals`` (the default rule: margin 2,
first 2, step 1) into a second one that starts from a copy of the fixed run's cache. Adaptive
draws keep the fixed recipe's cache keys (sample index i of the same prompt), so the adaptive
run takes its samples from the streams the fixed run drew, in the same order, and requests
only what the cache lacks (nothing, as it never draws more than the fixed recipe): a paired
comparison at half the CPU (on a 2-core machine shared with other jobs, a sample takes
seconds). Its bill is the tokens of the samples its records use, as ``teach`` reports for
cached samples. ``--live-adaptive`` starts it from an empty cache instead (each sample is sent
with the seed of its key, so llama.cpp draws the same samples again). Printed for each run:

- CoTs, evaluation calls, prompt and completion tokens (the bill the server reports);
- majority-answer accuracy on gold, and agreement of the majority with the fixed run's
  (the full-budget) majority;
- verdict agreement with gold: per evaluation, and of each CoT's majority verdict.

Then, paired on the CoTs both runs hold (the same samples), the agreement of each CoT's
majority verdict with gold under the fixed and the adaptive evaluations: per question, the
mean over its CoTs, and the adaptive minus fixed difference with a bootstrap interval over
questions. Then ``teach --estimate`` (computed from the recipe before any request, as the CLI
does) is compared with the fixed run's real bill (target: within 15%), and the adaptive run's
bill with the estimate's adaptive range. ``--summarise`` recomputes the paired figures from the
two run directories' records (no teaching) into the ``--json`` file.

    python bench/adaptive_live.py --questions 12 --set teacher.num_cots=5 --set teacher.num_evals=5

Ends with ``RESULT estimate_error <fraction>`` (the fixed run's total tokens).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from mindmirror.cell_records import cpu_name
from mindmirror.config import Recipe, load_recipe
from mindmirror.demo import demo_recipe_path
from mindmirror.embedded import embedded_endpoint
from mindmirror.records import Record, read_records
from mindmirror.reporting.metrics import paired_difference
from mindmirror.rundir import RunDir
from mindmirror.teacher.adaptive import majority
from mindmirror.teacher.estimate import estimate
from mindmirror.teacher.teach import plan_teaching, teach

ROOT = Path(__file__).resolve().parents[1]


def recipe(run_dir: Path, questions: int, overrides: list[str], adaptive: bool) -> Recipe:
    """The demo recipe on ``questions`` train questions (validation and test left out)."""
    extra = [
        f"run_dir={run_dir}",
        f"task.limit.train={questions}",
        "teacher.splits=[train]",
        *overrides,
    ]
    if adaptive:
        extra += ["teacher.adaptive_cots={}", "teacher.adaptive_evals={}"]
    return load_recipe(demo_recipe_path(), extra)


def majority_verdict(cot: Any) -> str | None:
    """The most frequent verdict among ``cot``'s evaluations (None: no verdict stated)."""
    top = Counter(e.verdict for e in cot.evaluations if e.verdict is not None).most_common(1)
    return top[0][0] if top else None


def _agrees(verdict: str | None, correct: bool | None) -> bool:
    """Whether ``verdict`` says what gold says (no verdict never agrees)."""
    return verdict is not None and (verdict == "correct") == correct


def figures(records: list[Record], full: dict[str, Any] | None) -> dict[str, Any]:
    """Quality figures of one run's records (``full``: the fixed run's majorities by id)."""
    right = agree = cots = evals = ev_agree = ev_total = maj_agree = maj_total = 0
    for record in records:
        answers = [cot.answer for cot in record.cots]
        vote = majority(answers)
        truth = {cot.answer: cot.correct for cot in record.cots}
        right += bool(vote is not None and truth.get(vote))
        if full is not None:
            agree += vote == full[record.id]
        cots += len(record.cots)
        for cot in record.cots:
            verdicts = [ev.verdict for ev in cot.evaluations]
            evals += len(verdicts)
            for verdict in verdicts:
                if verdict is not None and cot.correct is not None:
                    ev_total += 1
                    ev_agree += _agrees(verdict, cot.correct)
            top = majority_verdict(cot)
            if top is not None and cot.correct is not None:
                maj_total += 1
                maj_agree += _agrees(top, cot.correct)
    count = len(records)
    return {
        "questions": count,
        "cots": cots,
        "evaluations": evals,
        "majority_accuracy": round(right / count, 4),
        "majority_equals_fixed": round(agree / count, 4) if full is not None else 1.0,
        "verdict_agreement": round(ev_agree / ev_total, 4) if ev_total else None,
        "majority_verdict_agreement": round(maj_agree / maj_total, 4) if maj_total else None,
    }


def _majority_verdicts(record: Record) -> dict[str, tuple[str | None, bool | None, int]]:
    """Per CoT text of ``record``: its majority verdict, gold correctness, evaluations made."""
    return {c.text: (majority_verdict(c), c.correct, len(c.evaluations)) for c in record.cots}


def paired_verdicts(fixed: list[Record], adaptive: list[Record]) -> dict[str, Any]:
    """Majority-verdict agreement with gold on the CoTs both runs hold, fixed against adaptive:
    per question the mean over its shared CoTs, paired over questions (bootstrap interval)."""
    by_id = {r.id: _majority_verdicts(r) for r in fixed}
    first: list[float] = []
    second: list[float] = []
    cots = same = evals_fixed = evals_adaptive = 0
    for record in adaptive:
        mine, theirs = _majority_verdicts(record), by_id.get(record.id, {})
        shared = [t for t in mine if t in theirs and theirs[t][1] is not None]
        if not shared:
            continue
        first.append(sum(_agrees(*theirs[t][:2]) for t in shared) / len(shared))
        second.append(sum(_agrees(*mine[t][:2]) for t in shared) / len(shared))
        cots += len(shared)
        same += sum(mine[t][0] == theirs[t][0] for t in shared)
        evals_fixed += sum(theirs[t][2] for t in shared)
        evals_adaptive += sum(mine[t][2] for t in shared)
    diff = paired_difference(first, second)
    return {
        "questions": diff["n"],
        "cots": cots,
        "evaluations_fixed": evals_fixed,
        "evaluations_adaptive": evals_adaptive,
        "same_majority_verdict": round(same / cots, 4) if cots else None,
        "agreement_fixed": round(sum(first) / len(first), 4) if first else None,
        "agreement_adaptive": round(sum(second) / len(second), 4) if second else None,
        "diff": round(diff["diff"], 4),
        "low": round(diff["low"], 4),
        "high": round(diff["high"], 4),
    }


def print_paired(paired: dict[str, Any]) -> None:
    """One paragraph of the paired comparison."""
    print(
        f"paired on {paired['cots']} CoTs of {paired['questions']} questions: evaluations "
        f"{paired['evaluations_fixed']} fixed, {paired['evaluations_adaptive']} adaptive; same "
        f"majority verdict {paired['same_majority_verdict']:.1%}; agreement with gold "
        f"{paired['agreement_fixed']:.1%} fixed, {paired['agreement_adaptive']:.1%} adaptive, "
        f"difference {paired['diff']:+.3f} [{paired['low']:+.3f}, {paired['high']:+.3f}]"
    )


def summarise(run_dir: Path, json_path: Path | None) -> None:
    """Recompute the paired figures from the two runs' records; merge them into ``json_path``."""
    runs = {name: read_records(RunDir(run_dir / name).records) for name in ("fixed", "adaptive")}
    paired = paired_verdicts(runs["fixed"], runs["adaptive"])
    print_paired(paired)
    if json_path is not None:
        out = json.loads(json_path.read_text(encoding="utf-8")) if json_path.exists() else {}
        out["paired"] = paired
        json_path.write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")


def run_once(
    base: Path, name: str, args: argparse.Namespace, adaptive: bool, cache: Path | None = None
) -> dict[str, Any]:
    """Teach one arm into a fresh run directory (starting from a copy of ``cache`` when given);
    its bill, quality figures and estimate."""
    run_dir = base / name
    shutil.rmtree(run_dir, ignore_errors=True)
    if cache is not None:
        RunDir(run_dir).teacher.mkdir(parents=True)
        shutil.copyfile(cache, RunDir(run_dir).cache)
    resolved = recipe(run_dir, args.questions, args.overrides, adaptive)
    predicted = estimate(resolved, plan_teaching(resolved, live=False))
    started = time.perf_counter()
    with embedded_endpoint(resolved, quiet=True) as live:
        summary = teach(live, RunDir(run_dir), quiet=True)
    return {
        "summary": summary,
        "records": read_records(RunDir(run_dir).records),
        "estimate": predicted,
        "wall_s": round(time.perf_counter() - started, 1),
    }


def main() -> None:
    """Teach both arms, print the comparison and the estimate check."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--questions", type=int, default=12)
    parser.add_argument("--run-dir", type=Path, default=Path("runs/adaptive_live"))
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--json", type=Path, help="write the figures here")
    parser.add_argument(
        "--live-adaptive", action="store_true", help="the adaptive run from an empty cache"
    )
    parser.add_argument(
        "--summarise", action="store_true", help="paired figures from the runs in --run-dir"
    )
    args = parser.parse_args()
    if args.summarise:
        summarise(args.run_dir, args.json)
        return
    fixed = run_once(args.run_dir, "fixed", args, adaptive=False)
    reuse = None if args.live_adaptive else RunDir(args.run_dir / "fixed").cache
    adaptive = run_once(args.run_dir, "adaptive", args, adaptive=True, cache=reuse)
    full = {r.id: majority([cot.answer for cot in r.cots]) for r in fixed["records"]}
    out: dict[str, Any] = {
        "command": " ".join(["python bench/adaptive_live.py", *sys.argv[1:]]),
        "cpu": cpu_name(),
        "load_average_at_end": round(os.getloadavg()[0], 2),
    }
    print(
        "| run | CoTs | evaluations (a call each) | prompt tokens | completion tokens "
        "| majority accuracy | = fixed majority "
        "| verdict agreement (per evaluation / per CoT majority) | wall s |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, arm in (("fixed", fixed), ("adaptive", adaptive)):
        quality = figures(arm["records"], full)
        s = arm["summary"]
        out[name] = {
            **quality,
            "tokens_in": s["tokens_in"],
            "tokens_out": s["tokens_out"],
            "requests": s["requests"],
            "wall_s": arm["wall_s"],
        }
        print(
            f"| {name} | {quality['cots']} | {quality['evaluations']} | {s['tokens_in']:,} | "
            f"{s['tokens_out']:,} | {quality['majority_accuracy']:.1%} | "
            f"{quality['majority_equals_fixed']:.1%} | {quality['verdict_agreement']} / "
            f"{quality['majority_verdict_agreement']} | {arm['wall_s']} |"
        )
    real = fixed["summary"]["tokens_in"] + fixed["summary"]["tokens_out"]
    total = fixed["estimate"]["fixed"]["total"]
    predicted = total["prompt_tokens"] + total["completion_tokens"]
    error = round(predicted / real - 1, 4)
    print(
        f"\nestimate (fixed recipe): {predicted:,} tokens ({total['requests']} requests); "
        f"real bill {real:,} tokens ({fixed['summary']['requests']} requests): {error:+.1%}"
    )
    a_real = adaptive["summary"]["tokens_in"] + adaptive["summary"]["tokens_out"]
    a_est = adaptive["estimate"]
    least = a_est["adaptive_least"]["total"]
    most = a_est["adaptive_most"]["total"]
    low = least["prompt_tokens"] + least["completion_tokens"]
    high = most["prompt_tokens"] + most["completion_tokens"]
    print(f"adaptive run: {a_real:,} tokens; estimated range {low:,} .. {high:,}")
    evals = 1 - out["adaptive"]["evaluations"] / out["fixed"]["evaluations"]
    per_cot = 1 - (out["adaptive"]["evaluations"] / out["adaptive"]["cots"]) / (
        out["fixed"]["evaluations"] / out["fixed"]["cots"]
    )
    print(f"evaluation calls saved: {evals:.1%} in all, {per_cot:.1%} per CoT")
    out["paired"] = paired_verdicts(fixed["records"], adaptive["records"])
    print_paired(out["paired"])
    out["estimate"] = {
        "fixed_tokens": predicted,
        "fixed_real": real,
        "error": error,
        "adaptive_range": [low, high],
        "adaptive_real": a_real,
    }
    if args.json:
        args.json.write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")
    print(f"RESULT estimate_error {error}")


if __name__ == "__main__":
    main()
