"""``mindmirror teach``: N CoTs per question, M self-evaluations per CoT, records and summary.

Order of work, so that a mistake costs nothing and a kill costs little:

1. Validate everything before writing anything: the task loads, the templates exist, the
   backend answers (unreachable endpoint, wrong key, missing model or import file -> one-line
   ``UserError``).
2. Write the resolved recipe, open the response cache, request the CoTs, parse and score them.
3. Request the self-evaluations of every CoT that came back (or derive them from gold).
4. Write ``teacher/records.jsonl`` (atomically) and ``teacher/summary.json``.

With ``teacher.adaptive_cots`` / ``adaptive_evals`` steps 2 and 3 draw in rounds until the
answers (verdicts) are settled; with ``teacher.budget`` the questions go through steps 2-3 in
split-interleaved waves until the budget runs out (``mindmirror.teacher.rounds``).

Every sample is committed to ``teacher/cache.sqlite`` as it arrives, so re-running after a kill
requests only the missing samples and then rewrites records and summary in full.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import time
from pathlib import Path
from typing import Any

from mindmirror.config import Recipe, TeacherConfig, dump_recipe
from mindmirror.errors import UserError
from mindmirror.files import write_json
from mindmirror.records import Cot, Evaluation, Record, TeacherInfo, write_records
from mindmirror.requests.accounting import RunBudget
from mindmirror.requests.cache import ResponseCache, cached_samples
from mindmirror.requests.engine import RequestEngine
from mindmirror.requests.types import Backend, FatalError, Prompt
from mindmirror.rundir import RunDir
from mindmirror.tasks.base import Example
from mindmirror.teacher.backends.importers import Imported, ImportResult, import_outputs
from mindmirror.teacher.batch import batch_runner
from mindmirror.teacher.estimate import budget_too_small
from mindmirror.teacher.prompts import load_template, parse_verdict
from mindmirror.teacher.rounds import Failures, draw, wave_size, waves
from mindmirror.teacher.sampling import (
    Plan,
    cot_prompts,
    eval_prompts,
    gold_evaluation,
    make_cot,
    own_samples,
    share_evaluations,
    teacher_evaluation,
)
from mindmirror.teacher.summary import summarize, usage, warn_cut_critiques

__all__ = [
    "Plan",
    "cot_prompts",
    "eval_prompts",
    "gold_evaluation",
    "make_cot",
    "own_samples",
    "teach",
    "teacher_evaluation",
]


# ---------------------------------------------------------------------------- start-up checks


def live_backend(cfg: TeacherConfig, kind: str, seed: int) -> Backend:
    """Build and check a live backend; every failure is a one-line UserError."""
    if kind == "local":
        from mindmirror.teacher.backends.local import LocalBackend

        return LocalBackend.from_config(cfg, seed)
    if kind == "embedded" and not cfg.base_url:
        raise UserError(
            "backend `embedded` is started by the CLI (`mindmirror teach`); from Python give "
            "teacher.backend=openai and the server's teacher.base_url"
        )
    from mindmirror.teacher.backends.openai_http import OpenAIBackend

    backend = OpenAIBackend.from_config(cfg)

    async def check() -> None:
        try:
            await backend.check()
        finally:
            await backend.aclose()

    try:
        asyncio.run(check())
    except FatalError as error:
        raise UserError(str(error)) from None
    return backend


def choose_shots(train: list[Example], count: int, seed: int) -> list[Example]:
    """``count`` + 1 seeded train examples with gold (one spare replaces a question's own)."""
    pool = [ex for ex in train if ex.gold is not None]
    if count == 0 or not pool:
        return []
    return random.Random(seed).sample(pool, min(len(pool), count + 1))


_NO_COTS = Imported()


def plan_teaching(recipe: Recipe, live: bool = True) -> Plan:
    """Resolve and validate the recipe without writing anything; ``live=False`` builds no
    backend (and calls none): what ``teach --estimate`` needs."""
    from mindmirror.tasks import load_task

    cfg = recipe.teacher
    task, splits = load_task(recipe.task, recipe.seed)
    examples = [ex for split in cfg.splits for ex in splits.get(split, [])]
    if not examples:
        raise UserError(f"no questions in teacher.splits {cfg.splits} (check task.limit)")
    load_template(cfg.cot_prompt)
    load_template(cfg.eval_prompt)
    needs_eval = cfg.evaluator == "teacher" and cfg.num_evals > 0
    backend: Backend | None = None
    imported: ImportResult | None = None
    if cfg.backend == "import":
        assert cfg.import_ is not None  # the config validator guarantees it
        imported = import_outputs(cfg.import_, examples, cfg.num_cots)
        if cfg.import_.drop_unmatched:
            examples = [ex for ex in examples if imported.by_id.get(ex.id, _NO_COTS).cots]
        evaluate_with = cfg.import_.evaluate_with
        if needs_eval and evaluate_with is None and not imported.has_evaluations:
            raise UserError(
                f"{cfg.import_.path} holds no evaluations: set teacher.import.evaluate_with "
                "(openai or local) to evaluate the imported CoTs, or teacher.evaluator=gold, "
                "or teacher.num_evals=0"
            )
        if needs_eval and evaluate_with is not None:
            backend = live_backend(cfg, evaluate_with, recipe.seed) if live else None
        model = f"import:{cfg.import_.format}:{os.path.basename(cfg.import_.path.rstrip('/'))}"
    else:
        backend = live_backend(cfg, cfg.backend, recipe.seed) if live else None
        model = cfg.model
    info = TeacherInfo(
        model=model,
        backend=cfg.backend,
        temperature=None if cfg.backend == "import" else cfg.temperature,
        prompt_version=None if cfg.backend == "import" else load_template(cfg.cot_prompt).version,
        eval_prompt_version=load_template(cfg.eval_prompt).version if needs_eval else None,
        evaluator=cfg.evaluator if cfg.num_evals > 0 else None,
    )
    shots = choose_shots(splits.get("train", []), cfg.few_shot, recipe.seed)
    questions = {split: sum(ex.split == split for ex in examples) for split in cfg.splits}
    return Plan(task, examples, shots, backend, imported, info, questions)


# ---------------------------------------------------------------------------- the stage


def _imported_cots(
    plan: Plan, cfg: TeacherConfig, wave: list[Example]
) -> tuple[dict[str, list[Cot]], dict[str, list[list[Evaluation]]]]:
    """CoTs from the import files, with the files' evaluations (at most M) when they have any."""
    assert plan.imported is not None
    cots: dict[str, list[Cot]] = {}
    evaluations: dict[str, list[list[Evaluation]]] = {}
    for ex in wave:
        got = plan.imported.by_id.get(ex.id)
        texts = got.cots if got else []
        from_file = got.evaluations if got and cfg.evaluator == "teacher" else None
        cots[ex.id] = [make_cot(plan.task, ex, text) for text in texts]
        evaluations[ex.id] = [
            [teacher_evaluation(t) for t in from_file[i][: cfg.num_evals]] if from_file else []
            for i in range(len(texts))
        ]
    return cots, evaluations


def _requested_cots(
    plan: Plan,
    cfg: TeacherConfig,
    engine: RequestEngine,
    wave: list[Example],
    every_prompt: list[Prompt],
) -> tuple[dict[str, list[Cot]], dict[str, list[list[Evaluation]]]]:
    """The CoTs of the questions of ``wave`` from the live teacher (their prompts among
    ``every_prompt``, the run's, built once): N each, or drawn in rounds until the answer is
    settled (``teacher.adaptive_cots``); failed samples become status ``error``."""
    examples = {ex.id: ex for ex in wave}
    prompts = [p for p in every_prompt if p.key[1] in examples]

    def vote(key: tuple[str, ...], text: str | None) -> str | None:
        cot = make_cot(plan.task, examples[key[1]], text)
        choices = examples[key[1]].choices
        return plan.task.canonical(cot.answer, choices) if cot.answer is not None else None

    failures = Failures("CoTs", cfg.max_failed_share)
    texts = draw(engine, prompts, cfg.adaptive_cots, vote, "CoTs", failures)
    cots = {ex.id: [make_cot(plan.task, ex, t) for t in texts[("cot", ex.id)]] for ex in wave}
    return cots, {ex_id: [[] for _ in items] for ex_id, items in cots.items()}


def evaluate_cots(
    plan: Plan,
    cfg: TeacherConfig,
    engine: RequestEngine | None,
    cots: dict[str, list[Cot]],
    evaluations: dict[str, list[list[Evaluation]]],
    requests: set[str],
) -> None:
    """Fill ``evaluations`` in place: from gold, or the missing ones from the live teacher
    (M per CoT, or drawn in rounds while the verdicts disagree: ``teacher.adaptive_evals``;
    identical CoTs share theirs with ``teacher.share_duplicate_evals``). ``requests`` holds
    the evaluation requests of the run's earlier waves (``own_samples``)."""
    if cfg.num_evals == 0:
        return
    if cfg.evaluator == "gold":
        for ex_id, items in cots.items():
            evaluations[ex_id] = [
                [gold_evaluation(cot)] if cot.status != "error" else [] for cot in items
            ]
        return
    if engine is None:  # imported CoTs that keep only the files' own evaluations
        return
    have = {ex_id: [len(e) for e in evaluations[ex_id]] for ex_id in cots}
    prompts = eval_prompts(plan, cfg, cots, have, requests)
    if not prompts:
        return
    replies = draw(
        engine,
        prompts,
        cfg.adaptive_evals,
        lambda _, text: parse_verdict(text) if text is not None else None,
        "evaluations",
        Failures("self-evaluations", cfg.max_failed_share),
    )
    for (_, ex_id, index), samples in replies.items():
        evaluations[ex_id][int(index)].extend(teacher_evaluation(t) for t in samples)
    if cfg.share_duplicate_evals:
        share_evaluations(cots, evaluations)


def _teach_waves(
    plan: Plan, cfg: TeacherConfig, engine: RequestEngine | None
) -> tuple[dict[str, list[Cot]], dict[str, list[list[Evaluation]]]]:
    """CoTs and evaluations of the questions taught: all of them, or with ``teacher.budget``
    those of the waves finished before it ran out (``mindmirror.teacher.rounds``)."""
    cots: dict[str, list[Cot]] = {}
    evaluations: dict[str, list[list[Evaluation]]] = {}
    size = None
    if cfg.budget is not None:
        size = wave_size(cfg.concurrency)
        if engine is not None:
            unit = "usd" if cfg.budget.usd is not None else "tokens"
            engine.budget = RunBudget(float(cfg.budget.usd or cfg.budget.tokens or 0), unit)
    # Built once for the run: each wave asks for its own, with the keys they have in a run
    # without waves (every copy of a request told apart over all of them).
    every_cot = cot_prompts(plan, cfg) if plan.imported is None else []
    requests: set[str] = set()
    for wave in waves(plan.examples, size):
        if plan.imported is not None:
            wave_cots, wave_evals = _imported_cots(plan, cfg, wave)
        else:
            assert engine is not None  # every non-import plan has a live backend
            wave_cots, wave_evals = _requested_cots(plan, cfg, engine, wave, every_cot)
        if engine is None or not engine.stats.budget_exhausted:
            evaluate_cots(plan, cfg, engine, wave_cots, wave_evals, requests)
        if engine is not None and engine.budget is not None and engine.stats.budget_exhausted:
            break
        cots.update(wave_cots)
        evaluations.update(wave_evals)
    return cots, evaluations


def _budget_line(engine: RequestEngine | None) -> dict[str, Any] | None:
    """The run budget's unit, limit and the run's whole bill in it, the one the cap was
    checked against (None without a budget). It includes the samples of the wave left out of
    the records when the budget ran out: they were paid, stay cached and a larger budget
    reuses them."""
    if engine is None or engine.budget is None:
        return None
    spent = engine.budget.spent(engine.stats)
    return {"unit": engine.budget.unit, "limit": engine.budget.limit, "spent": round(spent, 6)}


def _samples_recorded(summary: Path) -> int:
    """Teacher samples that the run's summary says its records were made of (0 without one)."""
    try:
        data = json.loads(summary.read_text(encoding="utf-8"))
        return int(data.get("samples_new", 0)) + int(data.get("cache_hits", 0))
    except (OSError, ValueError, TypeError, AttributeError):
        return 0


def refuse_paying_again(run: RunDir) -> None:
    """UserError when the run's cache holds no sample (emptied, truncated to 0 bytes, deleted)
    although its ``summary.json`` records paid ones: teaching on would request, and pay for,
    every one of them again. Checked before anything is written."""
    paid = _samples_recorded(run.summary)
    if paid and not cached_samples(run.cache):
        raise UserError(
            f"the teacher cache {run.cache} holds no samples, but {run.summary} records "
            f"{paid:,} teacher samples paid for: restore the cache (from a backup), or run "
            "`mindmirror teach --pay-again` to request and pay for them again"
        )


def teach(
    recipe: Recipe, run: RunDir, quiet: bool = False, pay_again: bool = False
) -> dict[str, Any]:
    """Generate (or import) CoTs and self-evaluations; write records and summary.

    Returns the summary written to ``teacher/summary.json``. ``pay_again`` accepts requesting
    again the samples of a run whose cache was emptied or lost (refused otherwise).

    Raises:
        UserError: a bad recipe value, a missing dataset or import file, an unreachable
            endpoint or rejected key, a run whose cache lost the samples its summary records
            (all before anything is written), a fatal backend error mid-run, or more than
            ``teacher.max_failed_share`` of the CoTs or of the self-evaluations failed
            (``mindmirror.teacher.rounds.Failures``), or a ``teacher.budget`` that ran out
            before the first wave was taught (everything finished is cached; re-running
            resumes).
    """
    started = time.perf_counter()
    cfg = recipe.teacher
    plan = plan_teaching(recipe)
    if plan.backend is not None and not pay_again:
        refuse_paying_again(run)
    run.teacher.mkdir(parents=True, exist_ok=True)
    run.recipe.write_text(dump_recipe(recipe), encoding="utf-8")

    cache: ResponseCache | None = None
    engine: RequestEngine | None = None
    if plan.backend is not None:
        cache = ResponseCache(run.cache, warn_emptied=not pay_again)
        engine = RequestEngine(plan.backend, cache, cfg, quiet=quiet)
        engine.batch = batch_runner(cfg, run.teacher / "batches.json", quiet=quiet)
    try:
        cots, evaluations = _teach_waves(plan, cfg, engine)
    finally:
        if cache is not None:
            cache.close()
    if not cots and engine is not None and engine.stats.budget_exhausted:
        raise budget_too_small(recipe, plan)

    records = [
        Record(
            id=ex.id,
            split=ex.split,  # type: ignore[arg-type]
            question=ex.question,
            gold=ex.gold,
            choices=list(ex.choices) if ex.choices else None,
            cots=[
                cot.model_copy(update={"evaluations": evaluations[ex.id][i]})
                for i, cot in enumerate(cots[ex.id])
            ],
            teacher=plan.info,
        )
        for ex in plan.examples
        if ex.id in cots
    ]
    write_records(run.records, records)
    taught = {split: sum(r.split == split for r in records) for split in plan.questions}
    summary = summarize(records, taught if cfg.budget is not None else plan.questions)
    summary.update(
        task=recipe.task.name,
        backend=cfg.backend,
        model=plan.info.model,
        evaluator=plan.info.evaluator,
        num_cots=cfg.num_cots,
        num_evals=cfg.num_evals,
        prompt_version=plan.info.prompt_version,
        eval_prompt_version=plan.info.eval_prompt_version,
        **usage(engine),
        wall_s=round(time.perf_counter() - started, 3),
        imported=plan.imported.summary() if plan.imported is not None else None,
        adaptive_cots=cfg.adaptive_cots is not None,
        adaptive_evals=cfg.adaptive_evals is not None,
        questions_planned=plan.questions,
        budget=_budget_line(engine),
    )
    write_json(run.summary, summary)
    warn_cut_critiques(summary, cfg.eval_max_tokens, quiet)
    return summary
