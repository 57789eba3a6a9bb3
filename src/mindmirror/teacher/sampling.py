"""The teacher's requests and what its samples become: the prompts of the CoTs and of the
self-evaluations (each identical request given cache keys of its own), and the CoT and
evaluation records made from the texts that come back."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, replace

from mindmirror.config import TeacherConfig
from mindmirror.records import Cot, Evaluation, TeacherInfo
from mindmirror.requests.types import Backend, Prompt, Sampling
from mindmirror.tasks.base import Example, Task
from mindmirror.teacher.backends.importers import ImportResult
from mindmirror.teacher.prompts import (
    format_cot_messages,
    format_eval_messages,
    load_template,
    parse_verdict,
)


@dataclass
class Plan:
    """What a validated recipe resolves to: the task, the questions, and the sources."""

    task: Task
    examples: list[Example]
    shots: list[Example]
    backend: Backend | None
    imported: ImportResult | None
    info: TeacherInfo
    questions: dict[str, int] = field(default_factory=dict)


def shots_for(plan: Plan, example: Example, count: int) -> list[Example]:
    return [shot for shot in plan.shots if shot.id != example.id][:count]


def own_samples(prompts: list[Prompt], seen: set[str] | None = None) -> list[Prompt]:
    """``prompts``, each one that repeats the request of an earlier one (the same messages,
    sampling and template: two identical CoTs of a question, two questions with the same CoT
    under a template without the question) given cache keys of its own through
    ``Prompt.instance`` (its handle, e.g. ``eval/<id>/2`` for CoT 2), so that each copy is
    sampled separately, as the published code does, and no paid sample lands on the key of
    another.

    ``seen`` holds (the digests of) the requests of the run's earlier calls and is updated in
    place: a budget run builds its evaluation prompts wave by wave, and a repeat of an earlier
    wave's request must get its own keys too. The first of them keeps the plain key: every
    sample in a cache written before copies were told apart is still found.
    """
    seen = set() if seen is None else seen
    distinct = []
    for prompt in prompts:
        request = hashlib.sha256(
            json.dumps(
                [prompt.messages, asdict(prompt.sampling), prompt.prompt_version], sort_keys=True
            ).encode()
        ).hexdigest()
        if request in seen:
            prompt = replace(prompt, instance="/".join(prompt.key))
        seen.add(request)
        distinct.append(prompt)
    return distinct


def cot_prompts(plan: Plan, cfg: TeacherConfig) -> list[Prompt]:
    """One prompt per question asking for ``num_cots`` samples."""
    sampling = Sampling(cfg.temperature, cfg.top_p, cfg.max_tokens)
    version = load_template(cfg.cot_prompt).version
    return own_samples(
        [
            Prompt(
                key=("cot", ex.id),
                messages=format_cot_messages(
                    plan.task, ex, shots_for(plan, ex, cfg.few_shot), cfg.cot_prompt
                ),
                n=cfg.num_cots,
                sampling=sampling,
                prompt_version=version,
            )
            for ex in plan.examples
        ]
    )


def make_cot(task: Task, example: Example, text: str | None) -> Cot:
    """A CoT record from one sample: parsed, scored against gold; None text = failed request."""
    if text is None:
        return Cot(text="", answer=None, parsed=False, correct=None, status="error")
    answer = task.parse_answer(text, example.choices, example.question)
    return Cot(
        text=text,
        answer=answer,
        parsed=answer is not None,
        correct=task.is_correct(answer, example.gold, example.choices),
        status="ok" if answer is not None else "unparsed",
    )


def gold_evaluation(cot: Cot) -> Evaluation:
    """The `gold` evaluator (not the paper's): correct/wrong from gold, no critique, no calls.

    A CoT without a parsed answer is wrong; without gold there is no verdict.
    """
    if cot.correct is None and cot.parsed:
        return Evaluation(text="", verdict=None, parsed=False, source="gold")
    return Evaluation(
        text="", verdict="correct" if cot.correct else "wrong", parsed=True, source="gold"
    )


def teacher_evaluation(text: str | None) -> Evaluation:
    """An evaluation record from one sample; None text = failed request (kept, unparsed)."""
    if text is None:
        return Evaluation(text="", verdict=None, parsed=False)
    verdict = parse_verdict(text)
    return Evaluation(text=text, verdict=verdict, parsed=verdict is not None)


def eval_prompts(
    plan: Plan,
    cfg: TeacherConfig,
    cots: dict[str, list[Cot]],
    have: dict[str, list[int]],
    requests: set[str] | None = None,
) -> list[Prompt]:
    """Prompts for the evaluations still missing of the questions in ``cots``: M per CoT minus
    those imported; identical CoTs of a question are evaluated separately (``own_samples``,
    which reads and extends ``requests``, the run's earlier requests), or only the first of
    them with ``share_duplicate_evals`` (``share_evaluations`` then gives the others its
    evaluations)."""
    sampling = Sampling(cfg.eval_temperature, cfg.top_p, cfg.eval_max_tokens)
    version = load_template(cfg.eval_prompt).version
    prompts = []
    for ex in plan.examples:
        if ex.id not in cots:
            continue
        seen: set[str] = set()
        for index, cot in enumerate(cots[ex.id]):
            wanted = cfg.num_evals - have[ex.id][index]
            duplicate = cfg.share_duplicate_evals and cot.text in seen
            seen.add(cot.text)
            if cot.status == "error" or wanted <= 0 or duplicate:
                continue
            prompts.append(
                Prompt(
                    key=("eval", ex.id, str(index)),
                    messages=format_eval_messages(
                        plan.task, ex, cot.text, cfg.eval_prompt, shots_for(plan, ex, cfg.few_shot)
                    ),
                    n=wanted,
                    sampling=sampling,
                    prompt_version=version,
                )
            )
    return own_samples(prompts, requests)


def share_evaluations(
    cots: dict[str, list[Cot]], evaluations: dict[str, list[list[Evaluation]]]
) -> None:
    """Give each CoT that repeats an earlier CoT of its question (the same text) the
    evaluations of that first one, in place (``teacher.share_duplicate_evals``)."""
    for ex_id, items in cots.items():
        first: dict[str, int] = {}
        for index, cot in enumerate(items):
            if cot.status == "error":
                continue
            origin = first.setdefault(cot.text, index)
            if origin != index:
                evaluations[ex_id][index] = list(evaluations[ex_id][origin])
