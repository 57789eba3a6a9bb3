"""The teaching summary: quality, request and cost figures of a run's teacher records.

``summarize`` computes the figures written to ``teacher/summary.json``, ``usage`` adds the
engine's request, cache and money counts, ``summary_table`` renders them for the CLI, and
``warn_cut_critiques`` warns when critiques came back without a verdict.
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.table import Table

from mindmirror.records import VERDICTS, Record

if TYPE_CHECKING:
    from mindmirror.requests.engine import RequestEngine

SUMMARY_SCHEMA = "mindmirror.teach-summary/1"


def _share(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def summarize(records: list[Record], questions: dict[str, int] | None = None) -> dict[str, Any]:
    """Teacher quality figures over ``records``, overall and per split.

    - ``parse_rate``: CoTs with a parsed answer / CoTs that came back (status ok or unparsed);
    - ``teacher_accuracy``: parsed-and-correct CoTs / CoTs that came back, on questions with gold;
    - ``questions_with_correct``: questions (with gold) having at least one correct CoT;
    - ``verdict_agreement``: parsed verdicts where ``(verdict == "correct") == cot.correct``.
    """
    overall = _figures(records)
    by_split: dict[str, Any] = {}
    for split in sorted({r.split for r in records}):
        by_split[split] = _figures([r for r in records if r.split == split])
    counts = questions or {s: f["questions"] for s, f in by_split.items()}
    return {"schema": SUMMARY_SCHEMA, **overall, "questions": counts, "by_split": by_split}


def _figures(records: list[Record]) -> dict[str, Any]:
    status: Counter[str] = Counter()
    verdicts: Counter[str] = Counter()
    graded = correct = gold_questions = solved = without_cots = 0
    evaluations = failed_evals = no_verdict = agree = agree_total = 0
    for record in records:
        if not record.cots:
            without_cots += 1
        if record.gold is not None:
            gold_questions += 1
            solved += any(cot.correct for cot in record.cots)
        for cot in record.cots:
            status[cot.status] += 1
            if cot.status != "error" and cot.correct is not None:
                graded += 1
                correct += bool(cot.correct)
            for ev in cot.evaluations:
                evaluations += 1
                if ev.verdict is None:
                    verdicts["unparsed"] += 1
                    failed_evals += ev.text == "" and ev.source == "teacher"
                    no_verdict += ev.text != ""
                    continue
                verdicts[ev.verdict] += 1
                if cot.correct is not None:
                    agree_total += 1
                    agree += (ev.verdict == "correct") == cot.correct
    answered = status["ok"] + status["unparsed"]
    return {
        "questions": len(records),
        "questions_without_cots": without_cots,
        "cots": sum(status.values()),
        "cots_ok": status["ok"],
        "cots_unparsed": status["unparsed"],
        "cots_error": status["error"],
        "parse_rate": _share(status["ok"], answered),
        "teacher_accuracy": _share(correct, graded),
        "questions_with_correct": _share(solved, gold_questions),
        "evaluations": evaluations,
        "evaluations_failed": failed_evals,
        # Critiques that came back without a verdict: cut by eval_max_tokens before their
        # final line, or never stating one. Neither trains stage 1.
        "evaluations_without_verdict": no_verdict,
        "verdicts": {v: verdicts[v] for v in (*VERDICTS, "unparsed")},
        "verdict_agreement": _share(agree, agree_total),
    }


def usage(engine: RequestEngine | None) -> dict[str, Any]:
    """Request, cache and money figures of this invocation and of the whole run's samples."""
    if engine is None:
        stats: dict[str, Any] = {}
    else:
        stats = engine.stats.as_dict()
    get = stats.get
    return {
        "requests": get("requests", 0),
        "retries": get("retries", 0),
        "samples_new": get("samples_new", 0),
        "cache_hits": get("cache_hits", 0),
        "samples_failed": get("samples_failed", 0),
        "samples_skipped": get("samples_skipped", 0),
        # Tokens and cost of every sample in the records, whether paid now or on an earlier run.
        "tokens_in": get("prompt_tokens", 0) + get("cached_prompt_tokens", 0),
        "tokens_out": get("completion_tokens", 0) + get("cached_completion_tokens", 0),
        # Paid prompt tokens the provider served from its own prompt cache (where reported).
        "prompt_tokens_cached": get("prompt_tokens_cached", 0),
        "cost_usd": round(get("cost_usd", 0.0) + get("cached_cost_usd", 0.0), 6),
        "cost_usd_this_run": round(get("cost_usd", 0.0), 6),
        "budget_exhausted": bool(get("budget_exhausted", False)),
        "samples_batch": get("samples_batch", 0),
    }


def warn_cut_critiques(summary: dict[str, Any], max_tokens: int, quiet: bool) -> None:
    """One warning when more than 1% of the critiques came back without a verdict line: most
    often they were cut by ``eval_max_tokens`` before it, and stage 1 cannot use them."""
    cut, total = summary["evaluations_without_verdict"], summary["evaluations"]
    if quiet or not total or cut / total <= 0.01:
        return
    Console(stderr=True).print(
        f"[yellow]warning[/]: {cut} of {total} critiques ended without a verdict (cut at "
        f"teacher.eval_max_tokens={max_tokens}, or none stated); raise teacher.eval_max_tokens "
        "so that >= 99% finish",
        highlight=False,
        soft_wrap=True,
    )


def _fmt(value: Any, kind: str) -> str:
    if value is None:
        return "-"
    if kind == "%":
        return f"{value:.1%}"
    if kind == "$":
        return f"${value:,.4f}"
    if kind == "s":
        return f"{value:,.1f}"
    return f"{value:,}"


def summary_table(summary: dict[str, Any]) -> Table:
    """The teaching summary as a rich table (for the CLI and the demo)."""
    table = Table(title=f"teacher: {summary.get('model', '?')} ({summary.get('backend', '?')})")
    table.add_column("figure")
    table.add_column("value", justify="right")
    questions = summary.get("questions", {})
    table.add_row("questions", ", ".join(f"{s} {n}" for s, n in questions.items()))
    # (label, kind, main key, keys shown in brackets)
    rows = [
        ("CoTs (ok / unparsed / failed)", "n", "cots", ("cots_ok", "cots_unparsed", "cots_error")),
        ("parse rate", "%", "parse_rate", ()),
        ("teacher accuracy (per CoT)", "%", "teacher_accuracy", ()),
        ("questions with a correct CoT", "%", "questions_with_correct", ()),
        (
            "evaluations (without a verdict / failed)",
            "n",
            "evaluations",
            ("evaluations_without_verdict", "evaluations_failed"),
        ),
        ("verdict agreement with gold", "%", "verdict_agreement", ()),
        ("requests (new samples / cache hits)", "n", "requests", ("samples_new", "cache_hits")),
        ("tokens in / out", "n", "tokens_in", ("tokens_out",)),
        ("cost (this run)", "$", "cost_usd", ("cost_usd_this_run",)),
        ("wall time s", "s", "wall_s", ()),
    ]
    for label, kind, key, extra in rows:
        value = _fmt(summary.get(key), kind)
        if extra:
            value += " (" + " / ".join(_fmt(summary.get(k), kind) for k in extra) + ")"
        table.add_row(label, value)
    if summary.get("questions_without_cots"):
        table.add_row("questions without any CoT", _fmt(summary["questions_without_cots"], "n"))
    verdicts = summary.get("verdicts", {})
    table.add_row("verdicts", ", ".join(f"{v} {n}" for v, n in verdicts.items()))
    if summary.get("evaluator") == "gold":
        table.add_row("evaluator", "gold (NOT the paper's self-evaluation)")
    if summary.get("budget_exhausted"):
        planned = sum((summary.get("questions_planned") or {}).values())
        taught = sum(questions.values())
        scope = f": {taught:,} of {planned:,} questions taught" if planned else ""
        table.add_row("budget", f"[bold red]stopped: budget reached{scope}[/]")
    imported = summary.get("imported")
    if imported:
        table.add_row(
            "imported entries (matched / unmatched)",
            f"{imported['entries_read']:,} ({imported['entries_matched']:,} / "
            f"{imported['entries_unmatched']:,})",
        )
        if "examples" in imported:  # summaries written before the count was added lack it
            table.add_row(
                "questions with imported CoTs",
                f"{imported['examples_matched']:,} of {imported['examples']:,}",
            )
    return table
