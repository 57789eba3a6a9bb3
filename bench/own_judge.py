"""Self-evaluation where it is used (issue 25): the judge trained on the student's own CoTs.

Per seed, one ``mind_mirror`` cell of the SVAMP protocol (``recipes/svamp_repro_cpu.yaml``,
gold verdicts, with the optimisation the protocol's tuning chose for ``mind_mirror`` on
validation; ``--untuned``: the recipe's own) has its two stages (taken from the protocol's cell
of the same seed where that cell trained them the same way, else trained here), then
``train.own_judge`` (judge on the student's own CoTs, ``mix: own``, and beside it
``mix: own+teacher`` in ``student/own_judge_mixed``). On the
test questions the final student samples K CoTs once; every signal is read from those same
samples (``mindmirror.signals``): the judge trained on teacher CoTs, the own-CoT judges, the
combined confidence (fitted on validation), vote share, the ``predict:`` answer's token
probability, the CoTs' mean token log-probability and their length. Each finished cell leaves
a record under ``<records>/cells/``, named by its seed and a short hash of its settings (the
cell's recipe but its seed, and the test questions scored), so that a first look and the full
run, or runs of other settings, keep their own records (and runs of other training settings
their own run directories). The summary (``--out``) is computed from the records of one
settings hash alone (after a run, that run's; ``--summarise --key`` picks one;
``own_judge_summary.py`` computes it): per signal AUROC (per question and per CoT), AURC,
ECE, Brier, selective accuracy at 50% and 80% coverage, mean over seeds with the seeds and
n_test; per pair of signals the paired bootstrap interval over questions; judge-weighted
against plain majority voting; the same figures for the greedy ``answer`` ranked by each
signal of it (``answer_signals``), each paired against its own token probability
(``answer_pairs``); each mode ranking its own answers by the confidence it reports, against
``vote`` (``modes``, ``mode_pairs``); the seconds per cell of the extra sampling and
training. It prints the tables as markdown. Label sources: the own-CoT judges learn the
task's scorer against gold; the teacher-CoT judge the recipe's ``teacher.evaluator``.

    python bench/own_judge.py                          # 3 seeds, 200 test questions (CPU-hours)
    python bench/own_judge.py --untuned --seeds 0 --limit 20   # before the protocol's tuning
    python bench/own_judge.py --seeds 0 --limit 20     # a first look
    python bench/own_judge.py --summarise              # the summary from the records only
    python bench/own_judge.py --summarise --key KEY    # ... of one settings hash of several
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from adoption import adopt_protocol_student  # bench/ is on sys.path when run as a script
from own_judge_summary import markdown, summarise
from svamp_repro import CANDIDATES, tuned_by_method
from svamp_summary import choose

from mindmirror.cell_records import adopted_from
from mindmirror.config import Recipe, load_recipe, recipe_from_dict
from mindmirror.errors import UserError
from mindmirror.experiment import Cell, cell_recipe, teaching_needed
from mindmirror.files import write_atomic, write_json
from mindmirror.progress import quiet_libraries
from mindmirror.records import read_records
from mindmirror.rundir import RunDir
from mindmirror.signals import run_signals
from mindmirror.student.confidence import CONFIDENCE_FILE, ConfidenceModel
from mindmirror.student.formats import VERDICT, evaluation_input
from mindmirror.student.infer import Judged, Student, infer, sample_cots
from mindmirror.student.own_judge import OWN_JUDGE_STAGE, train_own_judge
from mindmirror.student.train import train
from mindmirror.tasks import build_task, load_task
from mindmirror.tasks.base import Example, Task
from mindmirror.teacher.judge_cots import cot_judge
from mindmirror.teacher.teach import teach

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "recipes" / "svamp_repro_cpu.yaml"
RECORDS = ROOT / "docs" / "results" / "own_judge"
#: The SVAMP protocol's committed records: its tuning chose mind_mirror's optimisation.
PROTOCOL_RECORDS = ROOT / "docs" / "results" / "svamp_repro"
OUT = ROOT / "docs" / "results" / "own_judge.json"
#: The judge trained on own + teacher CoTs, beside ``own_judge`` (own CoTs only).
MIXED = "own_judge_mixed"
#: The own-CoT judge's settings in every cell (gold labels; sampled as the test questions).
OWN_JUDGE = {"epochs": 1.0, "target_accuracy": 0.8}


def log(message: str) -> None:
    """A progress line on stderr with the time of day."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def own_cell(recipe: Recipe, seed: int, folder: Path, settings: dict[str, Any]) -> Recipe:
    """The protocol's ``mind_mirror`` cell at ``seed`` with the own-CoT judge on (``settings``
    over ``OWN_JUDGE``; ``mix: own``)."""
    cell = Cell("mind_mirror", recipe.train.num_cots, seed, ("answer", "vote", "mirror"))
    data = cell_recipe(recipe, cell, folder).model_dump(mode="json", by_alias=True)
    own = {**OWN_JUDGE, **settings, "mix": "own"}
    data["train"].update(explain_target="cot", own_judge=own)
    return recipe_from_dict(data)


def cell_settings(cell: Recipe, limit: int) -> dict[str, Any]:
    """What decides a cell's record but its seed: the cell's recipe (without its seed, name
    and run directory) and the test questions scored."""
    recipe = cell.model_dump(mode="json", by_alias=True, exclude={"name", "run_dir", "seed"})
    return {"limit": limit, "recipe": recipe}


def settings_key(settings: dict[str, Any]) -> str:
    """A short hash of a cell's settings (``cell_settings``): its records' and run's name."""
    text = json.dumps(settings, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:10]


def mixed_cell(recipe: Recipe) -> Recipe:
    """The same cell with the own-CoT judge's rows mixed with the teacher-CoT rows."""
    own = recipe.train.own_judge
    assert own is not None
    train = recipe.train.model_copy(
        update={"own_judge": own.model_copy(update={"mix": "own+teacher"})}
    )
    return recipe.model_copy(update={"train": train})


def protocol_grid(recipe: Recipe, records: Path) -> Recipe:
    """``recipe`` as the SVAMP protocol trains its ``mind_mirror`` cells: with the optimisation
    its tuning chose for ``mind_mirror`` on validation (``svamp_repro.py``, from the tuning
    records under ``records``) and every cell at the same number of examples. Nothing else of
    ``experiment`` changes (its seeds, its records folder): a cell's settings, and so its
    record's key, are the same whatever seeds one command runs.

    Raises:
        UserError: mind_mirror's tuning is not finished under ``records``.
    """
    chosen, _, missing = choose(records, ["mind_mirror"], CANDIDATES)
    if "mind_mirror" not in chosen:
        raise UserError(
            f"{records / 'tuning'}: mind_mirror's tuning is not finished ({', '.join(missing)} "
            "missing): run `python bench/svamp_repro.py --until tune` first, or pass --untuned "
            "to train with the recipe's own optimisation"
        )
    experiment = {
        **recipe.experiment.model_dump(mode="json"),
        "equal_examples": True,
        "train_by_method": tuned_by_method(chosen),
    }
    return recipe_from_dict(
        {**recipe.model_dump(mode="json", by_alias=True), "experiment": experiment}
    )


def train_cell(recipe: Recipe, run: RunDir, quiet: bool) -> dict[str, Any]:
    """Train the cell (both stages and the own-CoT judge), then the own+teacher judge."""
    judge = cot_judge(recipe, run, quiet)  # with own_judge.labels teacher
    summary = train(recipe, run, quiet=quiet, judge_cots=judge)
    mixed = mixed_cell(recipe)
    stages = {k: v for k, v in summary["stages"].items() if k != OWN_JUDGE_STAGE}
    task = build_task(recipe.task)
    records = read_records(run.records)
    result = train_own_judge(mixed, run, records, task, stages, quiet, MIXED, judge_cots=judge)
    return {"summary": summary, "mixed": result, "adopted_from": adopted_from(run)}


def _load(folder: Path) -> Student:
    from mindmirror.student.model import load_student

    model, tok, kind = load_student(folder)
    return Student(model, tok, kind)


def _judged(task: Task, example: Example, text: str, logprob: float | None) -> Judged:
    answer = task.parse_answer(text, example.choices, example.question)
    canonical = task.canonical(answer, example.choices) if answer is not None else None
    return Judged(text=text, answer=answer, canonical=canonical, logprob=logprob)


def measure(
    recipe: Recipe, run: RunDir, task: Task, test: list[Example], quiet: bool
) -> dict[str, Any]:
    """Sample the test questions once, judge the samples with every judge, read the signals."""
    from mindmirror.student.engines import generation_engine

    cfg = recipe.eval
    summary = json.loads((run.student / "train.json").read_text())
    final = _load(run.root / summary["final"])
    questions = [e.question for e in test]
    choices = [e.choices for e in test]
    started = time.perf_counter()
    with generation_engine(final, cfg, cache=run.evaluation / "own_judge.sqlite") as served:
        outputs = sample_cots(
            served.generator,
            questions,
            cfg,
            logprobs=True,
            progress=None if quiet else "sampling test CoTs",
            seed=recipe.seed,
        )
        answers = infer(served, task, questions, "answer", cfg, choices=choices)
    sampled = [
        [_judged(task, e, s.text, s.logprob) for s in samples]
        for e, samples in zip(test, outputs, strict=True)
    ]
    folders = {
        "teacher": run.root / summary["stages"]["evaluation"]["best"],
        "own": run.stage(OWN_JUDGE_STAGE) / "best",
        "own_teacher": run.stage(MIXED) / "best",
    }
    inputs = [
        evaluation_input(VERDICT, e.question, s.text)
        for e, ss in zip(test, sampled, strict=True)
        for s in ss
    ]
    judges = {}
    for name, folder in folders.items():
        flat = iter(
            _load(folder).generator.verdict_probs(
                inputs, batch_size=cfg.batch_size, max_input_tokens=cfg.max_input_tokens
            )
        )
        judges[name] = [[next(flat) for _ in ss] for ss in sampled]
    path = folders["own"] / CONFIDENCE_FILE
    model = ConfidenceModel.load(path) if path.is_file() else None
    if model is not None:
        model.check_samples(cfg.num_samples, "eval.num_samples")
    signals = run_signals(task, test, sampled, judges, answers, model)
    return {"signals": signals.to_dict(), "seconds": time.perf_counter() - started}


def cell_record(
    recipe: Recipe, trained: dict[str, Any], measured: dict[str, Any], settings: dict[str, Any]
) -> dict[str, Any]:
    """What a finished cell leaves: its settings (``cell_settings``) and their hash, its
    signals, label sources and the cost of each step."""
    own = trained["summary"]["stages"][OWN_JUDGE_STAGE]
    mixed = trained["mixed"]
    return {
        "seed": recipe.seed,
        "settings_key": settings_key(settings),
        "settings": settings,
        "n_test": len(measured["signals"]["question_correct"]),
        "label_sources": {
            "judge_teacher": f"teacher CoTs, teacher.evaluator {recipe.teacher.evaluator}",
            "judge_own": f"own CoTs, {own['label_source']} (task scorer)",
            "judge_own_teacher": f"own CoTs ({mixed['label_source']}) + teacher CoTs",
        },
        "labels": own["labels"],
        # The protocol cell whose two stages this cell took (None: trained here).
        "adopted_from": trained.get("adopted_from"),
        "confidence_validation": own["confidence"],
        "cost_seconds": {
            "own_sampling": own["sampling_seconds"],
            "own_judge_training": own["train_seconds"],
            "own_teacher_judge_training": mixed["train_seconds"],
            "confidence_fit": own["confidence"].get("seconds"),
            "test_measurement": measured["seconds"],
        },
        **measured["signals"],
    }


def main() -> None:
    """Teach if needed, train and measure each seed's cell, publish from the records."""
    quiet_libraries()  # no library bars in the logs (transformers' Loading weights)
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--recipe", type=Path, default=RECIPE)
    parser.add_argument("--run-dir", type=Path, default=Path("runs/own_judge"))
    parser.add_argument("--records", type=Path, default=RECORDS)
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--limit", type=int, default=200, help="test questions scored")
    parser.add_argument("--bootstrap", type=int, default=1000)
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument(
        "--own-judge", type=json.loads, default={}, help="train.own_judge settings, JSON"
    )
    parser.add_argument(
        "--untuned",
        action="store_true",
        help="train with the recipe's optimisation, not mind_mirror's tuned choice",
    )
    parser.add_argument(
        "--protocol-records",
        type=Path,
        default=PROTOCOL_RECORDS,
        help="the SVAMP protocol's records (its tuning)",
    )
    parser.add_argument(
        "--protocol-run",
        type=Path,
        default=Path("runs/svamp_repro"),
        help="the SVAMP protocol's run: its mind_mirror cells' students are taken, not retrained",
    )
    parser.add_argument("--summarise", action="store_true", help="from the records only")
    parser.add_argument("--key", help="--summarise: the records of this settings hash only")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args()
    cells = args.records / "cells"
    key = args.key
    if not args.summarise:
        recipe = load_recipe(args.recipe, [f"run_dir={args.run_dir}", *args.overrides])
        if not args.untuned:
            recipe = protocol_grid(recipe, args.protocol_records)
        run = RunDir(recipe.resolved_run_dir())
        if teaching_needed(recipe, run):
            teach(recipe, run, quiet=args.quiet)
        task, splits = load_task(recipe.task, recipe.seed)
        test = list(splits["test"])[: args.limit]
        for seed in args.seeds:
            settings = cell_settings(own_cell(recipe, seed, run.root, args.own_judge), args.limit)
            key = settings_key(settings)
            path = cells / f"mind_mirror-own_judge-s{seed}-{key}.json"
            if path.is_file():
                continue
            # The limit decides what is measured, not what is trained: a cell's training is
            # shared by every limit.
            trained_on = settings_key({"recipe": settings["recipe"]})
            sub = RunDir(run.root / "cells" / f"own_judge-s{seed}-{trained_on}")
            sub.teacher.mkdir(parents=True, exist_ok=True)
            if not sub.records.is_file():
                shutil.copyfile(run.records, sub.records)
            cell = own_cell(recipe, seed, sub.root, args.own_judge)
            if not args.untuned:
                name = Cell("mind_mirror", recipe.train.num_cots, seed, ()).name
                protocol = RunDir(args.protocol_run)
                said = adopt_protocol_student(protocol.cell(name), protocol.records, sub, cell)
                log(f"seed {seed}: {said}")
            log(f"seed {seed}: training")
            trained = train_cell(cell, sub, args.quiet)
            log(f"seed {seed}: measuring on {len(test)} test questions")
            measured = measure(cell, sub, task, test, args.quiet)
            record = cell_record(cell, trained, measured, settings)
            cells.mkdir(parents=True, exist_ok=True)
            write_atomic(path, json.dumps(record) + "\n")  # a kill leaves no half record
    records = [json.loads(p.read_text()) for p in sorted(cells.glob("*.json"))]
    records = [r for r in records if key is None or r.get("settings_key") == key]
    if not records:
        raise UserError(
            f"no cell records{f' of settings {key}' if key else ''} in {cells}: "
            "run without --summarise first"
        )
    stale = [r["seed"] for r in records if "answers" not in r]
    if stale:
        log(
            f"the records of seeds {', '.join(map(str, stale))} predate the greedy answers' "
            "figures, which the summary leaves out: delete them and run again to measure them "
            "(the training and the test samples are kept)"
        )
    command = "python bench/own_judge.py " + " ".join(sys.argv[1:])
    out = summarise(records, args.bootstrap, command)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_json(args.out, out, indent=1)
    n, size, shown = len(records), out["n_test"], out["settings_key"]
    log(f"wrote {args.out}: {n} seeds, {size} test questions, settings {shown}")
    print(markdown(out))


if __name__ == "__main__":
    try:
        main()
    except UserError as error:  # a user's mistake: one line, no traceback
        sys.exit(f"error: {error}")
