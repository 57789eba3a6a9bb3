"""The own-CoT judge (``train.own_judge``, issue 25): a judge trained on the student's own CoTs.

The paper's judge learns verdicts on the *teacher's* CoTs (long, mostly right) and is then
asked about the student's (shorter, mostly wrong, other mistakes). After the last stage this
module:

1. samples K CoTs per train and validation question from the final student (the inference
   engine of ``eval.engine``, ``eval``'s sampling settings unless ``own_judge`` sets its own;
   kept in ``student/own_cots/samples.jsonl`` with their labels, so a rerun, or a judge of the
   other ``mix``, samples nothing twice; a retrained final student samples again);
2. labels each with the task's scorer against gold (the answer read by the task's parser),
   or (``labels: teacher``) has the teacher evaluate each train CoT with its self-evaluation
   prompt, through the ``CotJudge`` the caller hands in (``teacher.judge_cots``: this side
   never imports the teacher);
3. builds ``verdict:`` rows in the self-evaluation stage's format (with teacher labels, its
   ``verdict:`` and ``critique:`` rows of each evaluation; ``mix: own+teacher`` adds that
   stage's rows on the teacher's CoTs) and fine-tunes a copy of the self-evaluation
   stage's best student into ``student/own_judge/best/`` (``joint``'s for the one-stage
   method), chosen by ``train.verdict_metric`` on the own CoTs of half the validation
   questions (``own_judge.split_validation``; ``mindmirror.student.own_confidence``); the
   answering student is never touched, so ``eval.judge: auto`` judges with the new judge and
   ``answer`` accuracy cannot move;
4. fits the combined confidence (``mindmirror.student.confidence``) on the other half's
   ``mirror`` answers and saves it as ``best/confidence.json`` with K.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path
from typing import Any

from mindmirror.config import EvalConfig, Recipe
from mindmirror.errors import UserError
from mindmirror.records import Cot, CotJudge, Record, read_records, write_records
from mindmirror.rundir import RunDir
from mindmirror.student.formats import (
    VERDICT,
    evaluation_input,
    verdict_target,
)
from mindmirror.student.infer import Student, sample_cots
from mindmirror.student.loading import OWN_JUDGE_STAGE
from mindmirror.student.own_confidence import confidence_fit, split_validation
from mindmirror.student.processes import main_process_first
from mindmirror.student.rows import Row, RowStats, build_rows, short_or_long_weight
from mindmirror.student.train import StageData, row_spec, train_stage
from mindmirror.student.validate import ValItem
from mindmirror.tasks.base import Task

#: The folder of the sampled, labelled CoTs (shared by judges of either ``mix``).
OWN_COTS = "own_cots"
SPLITS = ("train", "validation")
#: The teacher settings that decide its verdicts on the student's CoTs (``labels: teacher``).
#: (Not base_url: the same model behind another address judges the same.)
TEACHER_LABELS = {
    "backend",
    "import_",
    "model",
    "eval_prompt",
    "few_shot",
    "num_evals",
    "eval_temperature",
    "top_p",
    "eval_max_tokens",
    "send_seed",
    "adaptive_evals",
    "share_duplicate_evals",
}
#: The own train CoTs with the teacher's evaluations (records), beside the samples.
JUDGED = "judged.jsonl"


NO_TEACHER = (
    "train.own_judge.labels teacher needs the teacher to judge the student's CoTs: train "
    "with `mindmirror train` (or run, experiment), or from Python pass "
    "judge_cots=mindmirror.teacher.judge_cots.cot_judge(recipe, run)"
)


def own_sampling(recipe: Recipe) -> EvalConfig:
    """How the own CoTs are sampled: ``eval``'s settings (those ``mirror`` samples with at
    deploy time) with ``own_judge``'s K, temperature, top_p and max_new_tokens where set."""
    cfg = recipe.train.own_judge
    assert cfg is not None
    update = {
        "num_samples": cfg.samples,
        "temperature": cfg.temperature,
        "top_p": cfg.top_p,
        "max_new_tokens": cfg.max_new_tokens,
    }
    return recipe.eval.model_copy(update={k: v for k, v in update.items() if v is not None})


def sampling_settings(recipe: Recipe, final: Path, trained: dict[str, Any]) -> dict[str, Any]:
    """What decides the sampled CoTs: the student (its path and ``trained``, the final stage's
    result, so that a student trained again in place samples again), the seed and the
    sampling settings."""
    cfg = recipe.train.own_judge
    assert cfg is not None
    sampling = own_sampling(recipe)
    return {
        "student": str(final),
        "student_train_seconds": trained.get("train_seconds"),
        "seed": recipe.seed,
        "samples": sampling.num_samples,
        "temperature": sampling.temperature,
        "top_p": sampling.top_p,
        "max_new_tokens": sampling.max_new_tokens,
        "max_input_tokens": sampling.max_input_tokens,
    }


def sample_own_cots(
    student: Student,
    records: list[Record],
    task: Task,
    recipe: Recipe,
    folder: Path,
    settings: dict[str, Any],
    quiet: bool,
) -> tuple[list[dict[str, Any]], float]:
    """K sampled CoTs per train and validation question with gold, each labelled against gold,
    and the seconds sampling took; read back from ``samples.jsonl`` when it holds the samples
    of the same ``settings`` (``sampling_settings``)."""
    from mindmirror.student.engines import generation_engine

    cfg = own_sampling(recipe)
    meta_path, path = folder / "samples.json", folder / "samples.jsonl"
    if meta_path.is_file() and path.is_file():
        meta = json.loads(meta_path.read_text())
        if meta["settings"] == settings:
            rows = [json.loads(line) for line in path.read_text().splitlines() if line]
            return rows, meta["seconds"]
    questions = [r for r in records if r.split in SPLITS and r.gold is not None]
    started = time.perf_counter()
    folder.mkdir(parents=True, exist_ok=True)
    with generation_engine(student, cfg, cache=folder / "samples.sqlite", quiet=quiet) as served:
        outputs = sample_cots(
            served.generator,
            [r.question for r in questions],
            cfg,
            logprobs=True,
            progress=None if quiet else f"sampling {cfg.num_samples} own CoTs",
            seed=recipe.seed,
        )
    seconds = time.perf_counter() - started
    rows = []
    for record, samples in zip(questions, outputs, strict=True):
        choices = tuple(record.choices) if record.choices else None
        for k, sample in enumerate(samples):
            answer = task.parse_answer(sample.text, choices, record.question)
            rows.append(
                {
                    "id": record.id,
                    "split": record.split,
                    "sample": k,
                    "text": sample.text,
                    "logprob": sample.logprob,
                    "answer": answer,
                    "correct": bool(task.is_correct(answer, record.gold, choices)),
                }
            )
    path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))
    meta_path.write_text(json.dumps({"settings": settings, "seconds": seconds}, indent=2) + "\n")
    return rows, seconds


def own_rows(
    samples: list[dict[str, Any]], questions: dict[str, str], alpha: float
) -> tuple[list[Row], RowStats]:
    """``verdict:`` rows of the train questions' own CoTs (empty CoTs are not judged)."""
    stats = RowStats()
    rows = []
    weight = short_or_long_weight(VERDICT, alpha)
    for s in samples:
        if s["split"] != "train" or not s["text"].strip():
            continue
        verdict = verdict_target("correct" if s["correct"] else "wrong")
        text_in = evaluation_input(VERDICT, questions[s["id"]], s["text"])
        example = f"{s['id']}#own{s['sample']}"
        rows.append(Row(VERDICT, text_in, verdict, weight, s["id"], example=example))
    stats.questions = len({s["id"] for s in samples if s["split"] == "train"})
    stats.evals_used = len(rows)
    return rows, stats


def own_records(samples: list[dict[str, Any]], records: list[Record]) -> list[Record]:
    """The train questions' own CoTs as records (the teacher records' ids and questions), for
    the teacher to judge; empty CoTs are left out, as they are not judged."""
    by_id = {r.id: r for r in records}
    grouped: dict[str, list[dict[str, Any]]] = {}
    for s in samples:
        if s["split"] == "train" and s["text"].strip():
            grouped.setdefault(s["id"], []).append(s)
    return [
        by_id[qid].model_copy(
            update={
                "cots": [
                    Cot(
                        text=s["text"],
                        answer=s["answer"],
                        parsed=s["answer"] is not None,
                        correct=s["correct"],
                        status="ok" if s["answer"] is not None else "unparsed",
                    )
                    for s in group
                ]
            }
        )
        for qid, group in grouped.items()
    ]


def teacher_settings(recipe: Recipe) -> dict[str, Any]:
    """The teacher settings that decide its verdicts on the student's CoTs."""
    return recipe.teacher.model_dump(mode="json", include=TEACHER_LABELS)


def teacher_labelled(
    judge_cots: CotJudge,
    samples: list[dict[str, Any]],
    records: list[Record],
    folder: Path,
    settings: dict[str, Any],
) -> tuple[list[Record], dict[str, Any]]:
    """The own train CoTs with the teacher's evaluations, and what asking for them cost (its
    usage and seconds); read back from ``judged.jsonl`` when it holds the same samples judged
    with the same teacher ``settings``, so a finished judge never calls the teacher again."""
    path, meta_path = folder / JUDGED, folder / "judged.json"
    if meta_path.is_file() and path.is_file():
        meta = json.loads(meta_path.read_text())
        if meta["settings"] == settings:
            return read_records(path), meta["usage"]
    started = time.perf_counter()
    judged, spent = judge_cots(own_records(samples, records))
    spent = {**spent, "seconds": time.perf_counter() - started}
    write_records(path, judged)
    meta_path.write_text(json.dumps({"settings": settings, "usage": spent}, indent=2) + "\n")
    return judged, spent


def teacher_label_counts(judged: list[Record]) -> dict[str, Any]:
    """How the teacher's verdicts on the student's CoTs compare with gold: CoTs judged,
    evaluations with a verdict, and the share of CoTs whose majority verdict (``correct``
    against ``wrong`` or ``uncertain``; ties count as not correct) agrees with gold."""
    cots = [cot for record in judged for cot in record.cots]
    verdicts = [[e.verdict for e in cot.evaluations if e.parsed] for cot in cots]
    agree = [
        (v.count("correct") > len(v) / 2) == bool(cot.correct)
        for cot, v in zip(cots, verdicts, strict=True)
        if v
    ]
    evaluations = sum(len(cot.evaluations) for cot in cots)
    return {
        "cots": len(cots),
        "evaluations": evaluations,
        "parsed_share": sum(map(len, verdicts)) / evaluations if evaluations else None,
        "agreement_with_gold": sum(agree) / len(agree) if agree else None,
    }


def own_items(
    samples: list[dict[str, Any]], questions: dict[str, str], ids: list[str], limit: int | None
) -> list[ValItem]:
    """Validation items: the own CoTs of the first ``limit`` of the validation questions
    ``ids`` (those the judge is chosen on), gold-labelled."""
    kept = set(ids[:limit] if limit else ids)
    return [
        ValItem(
            evaluation_input(VERDICT, questions[s["id"]], s["text"]),
            "correct" if s["correct"] else "wrong",
            cot=s["text"],
        )
        for s in samples
        if s["split"] == "validation" and s["id"] in kept and s["text"].strip()
    ]


def stage_data(
    samples: list[dict[str, Any]],
    records: list[Record],
    task: Task,
    recipe: Recipe,
    judge_ids: list[str],
    sampling: dict[str, Any],
    judged: list[Record] | None = None,
) -> StageData:
    """The judge's rows (own, or own + the teacher-CoT rows) and validation items (the own
    CoTs of the validation questions ``judge_ids``, gold-labelled; ``sampling``: the samples'
    settings). ``judged``: the own CoTs with the teacher's evaluations (``labels: teacher``),
    whose rows are built as the self-evaluation stage's (ids marked, so that no own example
    shares a name with a teacher-CoT one)."""
    cfg = recipe.train.own_judge
    assert cfg is not None
    questions = {r.id: r.question for r in records}
    if judged is None:
        rows, stats = own_rows(samples, questions, recipe.train.alpha)
    else:
        marked = [r.model_copy(update={"id": f"{r.id}#own"}) for r in judged]
        rows, stats = build_rows(marked, task, row_spec(recipe.train), "evaluation")
    if cfg.mix == "own+teacher":
        teacher, teacher_stats = build_rows(records, task, row_spec(recipe.train), "evaluation")
        rows += teacher
        stats.evals_used += teacher_stats.evals_used
    stats.rows_before_dedupe = stats.rows = len(rows)
    stats.by_prefix = dict(Counter(row.prefix for row in rows))
    items = own_items(samples, questions, judge_ids, recipe.train.val_limit)
    settings: dict[str, Any] = {
        "mix": cfg.mix,
        "labels": cfg.labels,
        "samples": sampling,
        "split_validation": cfg.split_validation,
    }
    if judged is not None:
        # What decides the teacher's verdicts: another teacher or prompt trains again.
        settings["teacher"] = teacher_settings(recipe)
    return StageData(rows, stats, items, settings)


def stage_recipe(recipe: Recipe) -> Recipe:
    """The recipe the judge stage trains with: the own-CoT judge's epochs and learning rate."""
    cfg = recipe.train.own_judge
    assert cfg is not None
    train = recipe.train.model_copy(
        update={
            "epochs": cfg.epochs,
            "stage1_epochs": None,
            "learning_rate": cfg.learning_rate or recipe.train.learning_rate,
        }
    )
    return recipe.model_copy(update={"train": train})


def judge_init(run: RunDir, results: dict[str, Any]) -> Path:
    """The judge the own-CoT judge starts from: the self-evaluation stage's best student, or
    the joint stage's (the one-stage method judges with its final student)."""
    stage = results.get("evaluation") or results["joint"]
    return run.root / stage["best"]


def label_counts(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """Per split: sampled CoTs, questions and the share of right CoTs."""
    counts: dict[str, Any] = {}
    for split in SPLITS:
        mine = [s for s in samples if s["split"] == split]
        counts[split] = {
            "cots": len(mine),
            "questions": len({s["id"] for s in mine}),
            "correct_share": sum(s["correct"] for s in mine) / len(mine) if mine else None,
        }
    return counts


def train_own_judge(
    recipe: Recipe,
    run: RunDir,
    records: list[Record],
    task: Task,
    results: dict[str, Any],
    quiet: bool = False,
    name: str = OWN_JUDGE_STAGE,
    judge_cots: CotJudge | None = None,
) -> dict[str, Any]:
    """Sample, label, train the own-CoT judge and fit the combined confidence; return the
    stage's result with the sampling cost and label counts (``best`` is the new judge).
    ``name`` is the judge's folder under ``student/`` (``eval.judge: auto`` uses
    ``own_judge``'s; a benchmark may train the other ``mix`` beside it); ``judge_cots``: the
    teacher that labels the train CoTs with ``labels: teacher``."""
    from mindmirror.student.model import load_student

    cfg = recipe.train.own_judge
    assert cfg is not None
    trained = results[list(results)[-1]]
    final_path = run.root / trained["best"]
    model, tok, kind = load_student(final_path)
    final = Student(model, tok, kind)
    sampling = sampling_settings(recipe, final_path, trained)
    # Under several processes the main one samples (and asks the teacher) alone; the others
    # then read its files, which hold the same settings: nothing is sampled or paid twice.
    with main_process_first():
        samples, sampling_seconds = sample_own_cots(
            final, records, task, recipe, run.stage(OWN_COTS), sampling, quiet
        )
    if not any(s["split"] == "validation" for s in samples):
        raise UserError(
            f"{run.records}: no validation questions with gold to choose the own-CoT judge on; "
            "teach the `validation` split first"
        )
    judged, label_usage = None, None
    if cfg.labels == "teacher":
        if judge_cots is None:
            raise UserError(NO_TEACHER)
        asked = {"samples": sampling, "teacher": teacher_settings(recipe)}
        with main_process_first():
            judged, label_usage = teacher_labelled(
                judge_cots, samples, records, run.stage(OWN_COTS), asked
            )
    judge_ids, fit_ids = split_validation(samples, recipe)
    data = stage_data(samples, records, task, recipe, judge_ids, sampling, judged)
    verdicts = {item.reference for item in data.items}
    if recipe.train.verdict_metric == "auroc" and len(verdicts) < 2:
        raise UserError(
            f"the final student's {len(data.items)} sampled CoTs of the validation questions "
            f"the own-CoT judge is chosen on are all {verdicts.pop() if verdicts else 'empty'}: "
            "train.verdict_metric auroc cannot choose it on them; sample more "
            "(train.own_judge.samples) or choose agreement or balanced_agreement"
        )
    result = train_stage(
        "evaluation",
        judge_init(run, results),
        records,
        task,
        stage_recipe(recipe),
        run,
        quiet,
        name=name,
        data=data,
    )
    # A fit of an earlier training of this stage (its result.json was deleted), or of other
    # settings (target accuracy, split, samples), is done again.
    fit_settings = {
        "judge_train_seconds": result["train_seconds"],
        "target_accuracy": cfg.target_accuracy,
        "split_validation": cfg.split_validation,
        "sampling": sampling,
    }
    with main_process_first():
        fit = confidence_fit(
            final,
            samples,
            fit_ids,
            records,
            task,
            recipe,
            run.root / result["best"],
            run.stage(name) / "confidence_fit.json",
            fit_settings,
        )
    return {
        **result,
        "labels": label_counts(samples),
        "label_source": cfg.labels,
        "teacher_labels": teacher_label_counts(judged) if judged is not None else None,
        "label_usage": label_usage,
        "mix": cfg.mix,
        "sampling_seconds": sampling_seconds,
        "judge_chosen_on": len(judge_ids),
        "confidence": fit,
    }
