"""The teacher's self-evaluation of CoTs it did not write (``train.own_judge.labels: teacher``).

The paper's teacher judges its own CoTs; the own-CoT judge (issue 25) learns on the student's.
With ``labels: teacher`` the teacher judges those with the same prompt (``teacher.eval_prompt``
and its few-shot examples), ``teacher.num_evals`` times each (drawn in rounds with
``teacher.adaptive_evals``, shared by identical CoTs with ``teacher.share_duplicate_evals``),
exactly as ``teach`` judges its own: the paper's self-evaluation, on the distribution where it
is used. The requests go online (``teacher.batch`` does not apply) under
``teacher.budget_usd``; when it runs out nothing is trained on part of the labels. The CoTs
come and go as records (``mindmirror.records``), the contract between the two sides: the
student side never imports the teacher, it is handed :func:`cot_judge`'s function. Every
request is kept in ``teacher/own_cots_cache.sqlite``, so a killed run asks again only what
had not been answered.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mindmirror.config import Recipe
from mindmirror.errors import UserError
from mindmirror.records import CotJudge, Record, TeacherInfo
from mindmirror.requests.cache import ResponseCache
from mindmirror.requests.engine import RequestEngine
from mindmirror.rundir import RunDir
from mindmirror.tasks.base import Example
from mindmirror.teacher.prompts import load_template
from mindmirror.teacher.sampling import Plan
from mindmirror.teacher.summary import usage
from mindmirror.teacher.teach import choose_shots, evaluate_cots, live_backend

#: The request cache of the teacher's judgements of student CoTs, under ``teacher/``.
CACHE = "own_cots_cache.sqlite"


def judge_cots(
    recipe: Recipe, records: list[Record], cache_path: Path, quiet: bool = False
) -> tuple[list[Record], dict[str, Any]]:
    """Ask the recipe's live teacher to evaluate every CoT of ``records`` (``teacher.num_evals``
    times, the evaluations already in a CoT counted); return the records with the
    evaluations added and the requests' usage.

    Raises:
        UserError: no live teacher to ask (an import without ``evaluate_with``, an embedded
            teacher without its server: use :func:`cot_judge`), an unreachable one, or too
            many failed requests.
    """
    cfg = recipe.teacher.model_copy(update={"evaluator": "teacher"})
    if cfg.backend == "import":
        kind = cfg.import_.evaluate_with if cfg.import_ is not None else None
    else:
        kind = cfg.backend
    if kind is None:
        raise UserError(
            "train.own_judge.labels teacher asks a live teacher to judge the student's CoTs: "
            "set teacher.import.evaluate_with (openai or local), or own_judge.labels gold"
        )
    from mindmirror.tasks import build_task, load_task

    backend = live_backend(cfg, kind, recipe.seed)
    task = build_task(recipe.task)
    examples = [
        Example(r.id, r.split, r.question, r.gold, tuple(r.choices) if r.choices else None)
        for r in records
    ]
    info = TeacherInfo(
        model=cfg.model,
        backend=kind,
        temperature=cfg.eval_temperature,
        eval_prompt_version=load_template(cfg.eval_prompt).version,
        evaluator="teacher",
    )
    # The few-shot examples come from the task's train split, as `teach` chooses them.
    train = load_task(recipe.task, recipe.seed)[1].get("train", []) if cfg.few_shot else []
    shots = choose_shots(train, cfg.few_shot, recipe.seed)
    plan = Plan(task, examples, shots, backend, None, info)
    cots = {r.id: list(r.cots) for r in records}
    evaluations = {r.id: [list(c.evaluations) for c in r.cots] for r in records}
    cache_path.parent.mkdir(parents=True, exist_ok=True)
    cache = ResponseCache(cache_path)
    engine = RequestEngine(backend, cache, cfg, quiet=quiet)
    try:
        evaluate_cots(plan, cfg, engine, cots, evaluations, set())
    finally:
        cache.close()
    spent = usage(engine)
    if spent["budget_exhausted"]:
        # A judge trained on some of the labels would be kept as if it had them all.
        raise UserError(
            "the teacher's budget (teacher.budget_usd) ran out while it judged the student's "
            f"CoTs ({spent['samples_new'] + spent['cache_hits']} evaluations answered, kept "
            f"in {cache_path}): raise it and run again, which asks only for the rest"
        )
    judged = [
        r.model_copy(
            update={
                "cots": [
                    c.model_copy(update={"evaluations": evaluations[r.id][i]})
                    for i, c in enumerate(r.cots)
                ],
                "teacher": info,
            }
        )
        for r in records
    ]
    return judged, spent


def cot_judge(recipe: Recipe, run: RunDir, quiet: bool = False) -> CotJudge | None:
    """The function that has the recipe's teacher judge CoTs (``judge_cots``, its cache in
    ``run``'s teacher folder), serving the embedded teacher only while it judges; None
    unless ``train.own_judge.labels`` is ``teacher``."""
    own = recipe.train.own_judge
    if own is None or own.labels != "teacher":
        return None

    def judge(records: list[Record]) -> tuple[list[Record], dict[str, Any]]:
        from mindmirror.embedded import embedded_endpoint

        with embedded_endpoint(recipe, quiet) as live:
            return judge_cots(live, records, run.teacher / CACHE, quiet)

    return judge
