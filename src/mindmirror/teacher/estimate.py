"""``teach --estimate``: what a recipe's teaching will cost, before any request.

Everything comes from the prompts themselves: every CoT prompt of the run is rendered exactly as
``teach`` sends it and counted with the teacher's tokenizer where one fits
(``mindmirror.teacher.tokens``: the GGUF's own for the embedded teacher, else characters / 4).
What the teacher will write is not known yet, so:

- a CoT is expected to be as long as the worked solutions of the prompt's few-shot turns (their
  mean, at most ``max_tokens``; ``max_tokens`` without shots);
- an evaluation prompt is the rendered prompt with an empty CoT plus an expected CoT;
- a critique is expected to be as long as the worked evaluations of the ``eval_v2`` shots
  (at most ``eval_max_tokens``; ``eval_max_tokens`` for a zero-shot template).

Requests: with ``use_n`` against a server that honours ``n`` one request asks for all samples of
a prompt and bills its prompt once; the embedded llama.cpp server ignores ``n`` (as does any
backend with ``use_n: false``), so each sample is a request that bills the prompt again.

Adaptive settings give a range: the least (every question settled by the first round of CoTs,
every CoT by the first round of verdicts) and the most (every question and CoT drawn to the
full count, with the prompt sent again each round).

With ``teacher.budget``, ``questions_within_budget`` counts whole waves only
(``mindmirror.teacher.rounds``): ``teach`` keeps no question of the wave it ran out in.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from rich.table import Table

from mindmirror.config import Recipe, TeacherConfig
from mindmirror.config.teacher import AdaptiveConfig
from mindmirror.errors import UserError
from mindmirror.requests.accounting import price
from mindmirror.requests.types import Usage
from mindmirror.rundir import RunDir
from mindmirror.teacher.prompts import format_cot_messages, format_eval_messages
from mindmirror.teacher.rounds import WAVE_MIN, wave_size
from mindmirror.teacher.sampling import Plan, shots_for
from mindmirror.teacher.tokens import TokenCounter, token_counter

ESTIMATE_SCHEMA = "mindmirror.teach-estimate/1"


@dataclass
class Bill:
    """Requests and tokens of one stage (CoTs or evaluations) under one scenario."""

    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0

    def add(self, requests: int, prompt_tokens: int, completion_tokens: int) -> None:
        """Count ``requests`` more, with their tokens."""
        self.requests += requests
        self.prompt_tokens += prompt_tokens
        self.completion_tokens += completion_tokens

    def row(self, cfg: TeacherConfig) -> dict[str, Any]:
        """The JSON row: requests, tokens and dollars at the recipe's prices."""
        usd = price(Usage(self.prompt_tokens, self.completion_tokens), cfg)
        return {
            "requests": self.requests,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "usd": round(usd, 6),
        }


def _assistant_tokens(messages: Any, counter: TokenCounter, cap: int) -> int | None:
    """Mean completion tokens of the assistant turns of ``messages`` (at most ``cap``)."""
    turns = [m["content"] for m in messages if m["role"] == "assistant"]
    if not turns:
        return None
    return min(cap, round(sum(counter.completion(t) for t in turns) / len(turns)))


def _draws(limit: int, rule: AdaptiveConfig | None) -> dict[str, tuple[int, int]]:
    """(samples, rounds) of one prompt per scenario: all ``limit`` in one round when fixed;
    adaptive at least ``first`` in one round, at most ``limit`` in every round it takes."""
    if rule is None:
        return {name: (limit, 1) for name in ("fixed", "adaptive_least", "adaptive_most")}
    most = 1 + math.ceil(max(0, limit - rule.first) / rule.step)
    return {"fixed": (limit, 1), "adaptive_least": (rule.first, 1), "adaptive_most": (limit, most)}


def estimate(recipe: Recipe, plan: Plan) -> dict[str, Any]:
    """The expected requests, tokens and dollars of teaching ``plan`` (see the module
    docstring); scenarios ``fixed`` (the recipe as published), and with adaptive settings
    ``adaptive_least`` and ``adaptive_most``."""
    cfg = recipe.teacher
    counter = token_counter(cfg.backend, cfg.model)
    per_sample = not cfg.use_n or cfg.backend in ("embedded", "local")
    adaptive = cfg.adaptive_cots is not None or cfg.adaptive_evals is not None
    scenarios = ["fixed", "adaptive_least", "adaptive_most"] if adaptive else ["fixed"]
    cots = {name: Bill() for name in scenarios}
    evals = {name: Bill() for name in scenarios}
    # (samples, rounds) per prompt in each scenario.
    draws_cot = _draws(cfg.num_cots, cfg.adaptive_cots)
    draws_eval = _draws(cfg.num_evals, cfg.adaptive_evals)
    needs_eval = cfg.evaluator == "teacher" and cfg.num_evals > 0
    cot_lengths: list[int] = []
    critique_lengths: list[int] = []
    for ex in plan.examples:
        shots = shots_for(plan, ex, cfg.few_shot)
        imported = plan.imported.by_id.get(ex.id) if plan.imported is not None else None
        expected = cfg.max_tokens
        if imported is None:
            messages = format_cot_messages(plan.task, ex, shots, cfg.cot_prompt)
            expected = _assistant_tokens(messages, counter, cfg.max_tokens) or cfg.max_tokens
            cot_lengths.append(expected)
            prompt = counter.prompt(messages)
            lengths = [expected] * cfg.num_cots
        else:
            lengths = [counter.completion(text) for text in imported.cots]
        evaluate = needs_eval and not (imported is not None and imported.evaluations)
        if evaluate:
            empty = format_eval_messages(plan.task, ex, "", cfg.eval_prompt, shots)
            critique = _assistant_tokens(empty, counter, cfg.eval_max_tokens)
            critique = critique or cfg.eval_max_tokens
            critique_lengths.append(critique)
            base = counter.prompt(empty)
        for name in scenarios:
            drawn = len(lengths)
            if imported is None:
                drawn, rounds = draws_cot[name]
                requests = drawn if per_sample else rounds
                cots[name].add(requests, prompt * requests, expected * drawn)
            if not evaluate:
                continue
            count, rounds = draws_eval[name]
            requests = count if per_sample else rounds
            for length in lengths[:drawn]:
                evals[name].add(requests, (base + length) * requests, critique * count)
    result: dict[str, Any] = {
        "schema": ESTIMATE_SCHEMA,
        "questions": len(plan.examples),
        "tokenizer": counter.name,
        "requests_per_sample": per_sample,
        "expected_cot_tokens": round(sum(cot_lengths) / len(cot_lengths), 1)
        if cot_lengths
        else None,
        "expected_critique_tokens": (
            round(sum(critique_lengths) / len(critique_lengths), 1) if critique_lengths else None
        ),
    }
    for name in scenarios:
        total = Bill()
        for bill in (cots[name], evals[name]):
            total.add(bill.requests, bill.prompt_tokens, bill.completion_tokens)
        result[name] = {
            "cots": cots[name].row(cfg),
            "evaluations": evals[name].row(cfg),
            "total": total.row(cfg),
        }
    result["questions_within_budget"] = within_budget(cfg, result)
    return result


def per_question(cfg: TeacherConfig, result: dict[str, Any]) -> float:
    """The fixed recipe's expected bill of one question in the run budget's unit (dollars
    with ``budget.usd``, else tokens)."""
    total = result["fixed"]["total"]
    if cfg.budget is not None and cfg.budget.usd is not None:
        return float(total["usd"]) / result["questions"]
    return (total["prompt_tokens"] + total["completion_tokens"]) / result["questions"]


def within_budget(cfg: TeacherConfig, result: dict[str, Any]) -> int | None:
    """How many questions the run budget pays for at the fixed recipe's expected bill: all of
    them, or whole waves only (``wave_size``), since ``teach`` keeps no question of the wave
    in which the budget ran out."""
    if cfg.budget is None or not result["questions"]:
        return None
    questions = result["questions"]
    cost = per_question(cfg, result)
    limit = float(cfg.budget.usd if cfg.budget.usd is not None else cfg.budget.tokens or 0)
    if cost == 0 or limit >= cost * questions:
        return int(questions)
    size = wave_size(cfg.concurrency)
    return math.floor(limit / cost) // size * size


def budget_too_small(recipe: Recipe, plan: Plan) -> UserError:
    """The one-line error of a run budget that ran out before the first wave was taught,
    with what ``teach --estimate`` expects that wave to cost."""
    cfg = recipe.teacher
    assert cfg.budget is not None  # only budget runs are taught in waves
    wave = min(wave_size(cfg.concurrency), len(plan.examples))
    expected = per_question(cfg, estimate(recipe, plan)) * wave
    if cfg.budget.usd is not None:
        limit, cost = f"${cfg.budget.usd:g}", f"${expected:.4f}"
    else:
        limit, cost = f"{cfg.budget.tokens:,} tokens", f"{expected:,.0f} tokens"
    return UserError(
        f"teacher.budget ({limit}) ran out before the first wave of {wave} questions was "
        f"taught: nothing taught, no records written (teach keeps whole waves of WAVE_MIN="
        f"{WAVE_MIN} questions, or 2 x teacher.concurrency if more, and `mindmirror teach "
        f"--estimate` expects about {cost} for this one): raise teacher.budget and re-run, which "
        "pays nothing twice"
    )


def estimate_table(result: dict[str, Any]) -> Table:
    """The estimate as a rich table (one row per scenario and stage)."""
    table = Table(
        title=f"teach --estimate: {result['questions']:,} questions "
        f"(tokens: {result['tokenizer']}; "
        f"{'a request per sample' if result['requests_per_sample'] else 'n samples a request'})"
    )
    for column in ("scenario", "stage", "requests", "prompt tokens", "completion tokens", "USD"):
        table.add_column(column, justify="left" if column in ("scenario", "stage") else "right")
    for name in ("fixed", "adaptive_least", "adaptive_most"):
        if name not in result:
            continue
        for stage in ("cots", "evaluations", "total"):
            row = result[name][stage]
            table.add_row(
                name.replace("_", " "),
                stage,
                f"{row['requests']:,}",
                f"{row['prompt_tokens']:,}",
                f"{row['completion_tokens']:,}",
                f"${row['usd']:,.4f}",
            )
    if result.get("questions_within_budget") is not None:
        table.add_row("budget", "questions it pays for", f"{result['questions_within_budget']:,}")
    return table


def write_estimate(recipe: Recipe, run: RunDir) -> Table:
    """Estimate the recipe's teaching without any request, write ``teacher/estimate.json``
    in the run directory, and return the table to print."""
    from mindmirror.teacher.teach import plan_teaching

    result = estimate(recipe, plan_teaching(recipe, live=False))
    run.teacher.mkdir(parents=True, exist_ok=True)
    path = run.teacher / "estimate.json"
    path.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return estimate_table(result)
