"""The own-CoT judge bench's summary (issue 25), from its cell records alone.

``bench/own_judge.py`` trains and measures; this module turns its records into the published
figures: per signal AUROC (per question and per CoT), AURC, ECE, Brier and selective accuracy
at 50% and 80% coverage, means over seeds; per pair of signals a paired bootstrap interval over
questions; judge-weighted against plain majority voting; the greedy ``answer`` ranked by each
signal of it; each answer-choosing mode ranking its own answers, against ``vote``; the seconds
per cell of the extra sampling and training. ``markdown`` prints the tables.
"""

from __future__ import annotations

import itertools
import statistics
from collections.abc import Sequence
from typing import Any, NamedTuple

from mindmirror.errors import UserError
from mindmirror.reporting.calibration import (
    Metric,
    aurc_of,
    brier,
    ece,
    paired_metric,
    selective_at,
)
from mindmirror.reporting.metrics import (
    COVERAGES,
    auroc,
    mean_interval,
    paired_difference,
    risk_coverage,
    selective_accuracy,
)
from mindmirror.signals import PROBABILITY_SIGNALS


def _mean(values: list[float | None]) -> float | None:
    kept = [v for v in values if v is not None]
    return statistics.fmean(kept) if kept else None


def _unit(record: dict[str, Any], unit: str) -> tuple[dict[str, list[float]], list[bool]]:
    """A record's per-question signals and outcomes of one unit: ``questions`` (the answer
    ``mirror`` chose with the own-CoT judge) or ``answers`` (the greedy ``answer``)."""
    if unit == "answers":
        return record["answers"], record["accuracy"]["answer"]
    return record["questions"], record["question_correct"]


def _figures(conf: Sequence[float], right: Sequence[bool], probability: bool) -> dict[str, Any]:
    """AUROC, AURC and selective accuracies of one confidence (ECE and Brier if a probability)."""
    curve = risk_coverage(conf, right)
    figures = {
        "auroc": auroc(conf, right),
        "aurc": aurc_of(conf, right),
        **{f"selective_{c:g}": selective_accuracy(curve, c) for c in COVERAGES},
    }
    if probability:
        figures.update(ece=ece(conf, right), brier=brier(conf, right))
    return figures


def _means(per_seed: list[dict[str, Any]]) -> dict[str, Any]:
    keys = [k for k in per_seed[0] if k != "seed"]
    return {**{k: _mean([f[k] for f in per_seed]) for k in keys}, "per_seed": per_seed}


def signal_figures(
    records: list[dict[str, Any]], name: str, unit: str = "questions"
) -> dict[str, Any]:
    """One signal's figures per seed and their means over seeds (``unit``: see ``_unit``)."""
    per_seed = []
    for r in records:
        signals, right = _unit(r, unit)
        figures = {"seed": r["seed"], **_figures(signals[name], right, name in PROBABILITY_SIGNALS)}
        # The sampled CoTs are ranked on their own only where the unit is mirror's answer.
        if unit == "questions":
            figures["auroc_cots"] = auroc(r["cots"][name], r["cot_correct"])
        per_seed.append(figures)
    return _means(per_seed)


def vote_confidence(record: dict[str, Any]) -> list[float]:
    """Per question, the confidence ``vote`` reports for its own answer: the majority's share
    of the K CoTs, the largest vote share of any of the question's CoTs (unparsed CoTs have
    0 and count in the denominator, as in ``majority``)."""
    best = [0.0] * record["n_test"]
    for question, share in zip(record["cot_question"], record["cots"]["vote_share"], strict=True):
        best[question] = max(best[question], share)
    return best


class ModeOutcome(NamedTuple):
    """One mode's answers to a seed's test questions: the confidence it reports (its name and
    per-question values) and whether each answer is right."""

    signal: str
    confidence: list[float]
    correct: list[bool]


def mode_outcomes(record: dict[str, Any]) -> dict[str, ModeOutcome]:
    """Per answer-choosing mode, as deployed: the confidence it reports and ranks its own
    answers by. ``mirror`` is the own-CoT judge's weighted vote with the combined confidence
    (what ``predict`` returns with a fitted model); where none was fitted, its weighted vote
    share (the summed P(correct) of the CoTs behind its answer over K: their mean P(correct)
    times their share)."""
    questions = record["questions"]
    if "combined" in questions:
        mirror = ModeOutcome("combined", questions["combined"], record["question_correct"])
    else:
        shares = zip(questions["judge_own"], questions["vote_share"], strict=True)
        weighted = [judge * share for judge, share in shares]
        mirror = ModeOutcome("weighted_vote", weighted, record["question_correct"])
    modes = {
        "vote": ModeOutcome("vote_share", vote_confidence(record), record["accuracy"]["vote"]),
        "mirror": mirror,
    }
    if "answers" in record:
        modes["answer"] = ModeOutcome(
            "answer_prob", record["answers"]["answer_prob"], record["accuracy"]["answer"]
        )
    return modes


def _paired_metrics() -> dict[str, Metric]:
    metrics: dict[str, Metric] = {"auroc": auroc, "aurc": aurc_of}
    return metrics | {f"selective_{c:g}": selective_at(c) for c in COVERAGES}


def mode_figures(
    records: list[dict[str, Any]], resamples: int
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Each mode ranking its own answers (the issue's ``mirror`` against ``vote``): accuracy,
    AUROC, AURC, selective accuracy; and each mode against ``vote``, paired over questions
    (each side scored on its own answers)."""
    outcomes = [mode_outcomes(r) for r in records]
    names = [m for m in outcomes[0] if all(m in o for o in outcomes)]
    figures = {}
    for name in names:
        per_seed = [
            {
                "seed": r["seed"],
                "accuracy": statistics.fmean(o[name].correct),
                **_figures(o[name].confidence, o[name].correct, probability=True),
            }
            for r, o in zip(records, outcomes, strict=True)
        ]
        # Seeds with and without a fitted model would mix two confidences: both are named.
        confidence = ", ".join(sorted({o[name].signal for o in outcomes}))
        figures[name] = {"confidence": confidence, **_means(per_seed)}
    vote = [o["vote"] for o in outcomes]
    pairs = {
        f"{name} - vote": {
            label: paired_metric(
                metric,
                [v.confidence for v in vote],
                [o[name].confidence for o in outcomes],
                [v.correct for v in vote],
                second_correct=[o[name].correct for o in outcomes],
                resamples=resamples,
            )
            for label, metric in _paired_metrics().items()
        }
        for name in names
        if name != "vote"
    }
    return figures, pairs


def summarise(records: list[dict[str, Any]], resamples: int, command: str) -> dict[str, Any]:
    """The published summary, from cell records alone.

    Raises:
        UserError: records of other settings or numbers of test questions.
    """
    keys = sorted({str(r.get("settings_key")) for r in records})
    sizes = sorted({r["n_test"] for r in records})
    if len(keys) > 1 or len(sizes) > 1:
        raise UserError(
            f"cell records of {len(keys)} settings ({', '.join(keys)}) and n_test "
            f"{', '.join(map(str, sizes))} cannot be summarised together: pick one with --key"
        )
    records = sorted(records, key=lambda r: r["seed"])
    names = [n for n in records[0]["questions"] if all(n in r["questions"] for r in records)]
    out: dict[str, Any] = {
        "command": command,
        "seeds": [r["seed"] for r in records],
        "n_test": records[0]["n_test"],
        "settings_key": records[0].get("settings_key"),
        "settings": records[0].get("settings"),
        "answer_choice": "mirror weighted by the own-CoT judge (the deployed answer)",
        "label_sources": records[0]["label_sources"],
        "signals": {n: signal_figures(records, n) for n in names},
        "pairs": {},
    }
    q_correct = [r["question_correct"] for r in records]
    for a, b in itertools.combinations(names, 2):
        first, second = [r["questions"][a] for r in records], [r["questions"][b] for r in records]
        out["pairs"][f"{b} - {a}"] = {
            "auroc": paired_metric(auroc, first, second, q_correct, resamples=resamples),
            "aurc": paired_metric(aurc_of, first, second, q_correct, resamples=resamples),
            "auroc_cots": paired_metric(
                auroc,
                [r["cots"][a] for r in records],
                [r["cots"][b] for r in records],
                [r["cot_correct"] for r in records],
                [r["cot_question"] for r in records],
                resamples=resamples,
            ),
        }
    rules = list(records[0]["accuracy"])
    by_rule = {
        rule: [
            statistics.fmean(r["accuracy"][rule][i] for r in records) for i in range(out["n_test"])
        ]
        for rule in rules
    }
    out["accuracy"] = {
        rule: mean_interval(v, resamples=resamples)[0] for rule, v in by_rule.items()
    }
    out["voting"] = {
        f"{rule} - vote": paired_difference(by_rule["vote"], by_rule[rule], resamples=resamples)
        for rule in rules
        if rule.startswith("mirror")
    }
    out["answer_unchanged"] = (
        "the own-CoT judge is a separate checkpoint; the answering student's weights are the "
        "reasoning stage's, so `answer` accuracy is the same with and without it (difference 0)"
    )
    if all("answers" in r for r in records):
        out["answer_signals"], out["answer_pairs"] = answer_figures(records, resamples)
    out["modes"], out["mode_pairs"] = mode_figures(records, resamples)
    costs = [r["cost_seconds"] for r in records]
    out["cost_seconds"] = {k: _mean([c[k] for c in costs]) for k in costs[0]}
    out["cost_seconds_per_seed"] = costs
    return out


def answer_figures(
    records: list[dict[str, Any]], resamples: int
) -> tuple[dict[str, Any], dict[str, Any]]:
    """How each signal ranks the greedy answers (what a user of ``answer`` mode gets), and
    each signal against the answer's own token probability (the free baseline), paired over
    questions: AUROC, AURC and selective accuracy at each coverage."""
    names = [n for n in records[0]["answers"] if all(n in r["answers"] for r in records)]
    figures = {n: signal_figures(records, n, "answers") for n in names}
    right = [r["accuracy"]["answer"] for r in records]
    base = [r["answers"]["answer_prob"] for r in records]
    metrics = _paired_metrics()
    pairs = {
        f"{n} - answer_prob": {
            label: paired_metric(
                metric, base, [r["answers"][n] for r in records], right, resamples=resamples
            )
            for label, metric in metrics.items()
        }
        for n in names
        if n != "answer_prob"
    }
    return figures, pairs


def _f(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _interval(pair: dict[str, Any]) -> str:
    if pair["diff"] is None:
        return "-"
    return f"{pair['diff']:+.3f} [{pair['low']:+.3f}, {pair['high']:+.3f}]"


def markdown(summary: dict[str, Any]) -> str:
    """The summary's tables (means over its seeds; intervals: paired bootstrap, 95%)."""
    seeds = ", ".join(map(str, summary["seeds"]))
    lines = [
        f"Seeds {seeds}, {summary['n_test']} test questions, settings {summary['settings_key']}.",
        "",
        "Confidence of the answer `mirror` chose with the own-CoT judge:",
        "",
        "| signal | AUROC | AUROC, own CoTs | AURC | at 50% | at 80% | ECE | Brier |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, f in summary["signals"].items():
        cells = [f.get(k) for k in ("auroc", "auroc_cots", "aurc", "selective_0.5")]
        cells += [f.get(k) for k in ("selective_0.8", "ece", "brier")]
        lines.append(f"| {name} | " + " | ".join(map(_f, cells)) + " |")
    lines += ["", "| difference | AUROC | AUROC, own CoTs | AURC |", "|---|---|---|---|"]
    for name, pair in summary["pairs"].items():
        if any(s in name for s in ("judge_own", "combined")):
            cells = [_interval(pair[k]) for k in ("auroc", "auroc_cots", "aurc")]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += ["", "| answer rule | accuracy | against vote |", "|---|---|---|"]
    for rule, accuracy in summary["accuracy"].items():
        voting = summary["voting"].get(f"{rule} - vote")
        lines.append(f"| {rule} | {accuracy:.3f} | {_interval(voting) if voting else '-'} |")
    lines += [
        "",
        "Each mode ranking its own answers by the confidence it reports (against `vote`):",
        "",
        "| mode | confidence | accuracy | AUROC | AURC | at 50% | at 80% | ECE "
        "| AURC diff | at 50% diff |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, f in summary["modes"].items():
        cells = [_f(f.get(k)) for k in ("accuracy", "auroc", "aurc", "selective_0.5")]
        cells += [_f(f.get(k)) for k in ("selective_0.8", "ece")]
        pair = summary["mode_pairs"].get(f"{name} - vote")
        cells += [_interval(pair[k]) for k in ("aurc", "selective_0.5")] if pair else ["-"] * 2
        lines.append(f"| {name} | {f['confidence']} | " + " | ".join(cells) + " |")
    if "answer_signals" in summary:
        lines += [
            "",
            "Confidence of the greedy `answer` (against its own token probability, answer_prob):",
            "",
            "| signal | AUROC | AURC | at 50% | at 80% | AUROC diff | at 50% diff |",
            "|---|---|---|---|---|---|---|",
        ]
        for name, f in summary["answer_signals"].items():
            cells = [_f(f.get(k)) for k in ("auroc", "aurc", "selective_0.5", "selective_0.8")]
            pair = summary["answer_pairs"].get(f"{name} - answer_prob")
            cells += [_interval(pair[k]) for k in ("auroc", "selective_0.5")] if pair else ["-"] * 2
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
