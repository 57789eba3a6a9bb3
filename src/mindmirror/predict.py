"""`mindmirror predict`: answer questions with a trained student, from Python, a list or a file.

Python API::

    from mindmirror.predict import Predictor
    with Predictor.load("runs/demo") as predictor:   # a run directory or a student folder
        for p in predictor.predict(["Tom has 3 apples ..."], mode="mirror"):
            print(p.answer, p.verdict, p.confidence, p.abstained, p.cot)

The first ``predict`` starts the engine of ``eval.engine`` (a llama.cpp server for causal
students by default); leaving the ``with`` block (or ``close()``) stops it.

Files: ``predict_file`` reads JSONL (one object per line with ``question``, optional ``id`` and
``choices``) and writes JSONL, one prediction per input line in the same order.

The task (how answers are parsed) comes from the run's ``recipe.yaml`` (found from the run
directory or from a student folder inside it), or from ``task`` (a built-in task name or an
answer family) for a student folder on its own. The default mode, shared with ``serve``
(``default_mode``), is ``answer`` for students trained without CoTs (``standard``,
``distill``: they never learnt ``explain:``), else the run's ``serve.mode`` (``cot`` unless set).

For a two-stage ``mind_mirror`` run, ``mirror`` mode lets the self-evaluation stage's best
student judge the final student's CoTs (``eval.judge: auto``): stage 2 trains reasoning rows
only and can erode the verdict skill of the final student (seen on tiny models in the tests).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from mindmirror.config import (
    EvalConfig,
    Recipe,
    ServeConfig,
    TaskConfig,
    load_recipe,
    recipe_from_dict,
)
from mindmirror.errors import UserError
from mindmirror.files import open_atomic
from mindmirror.reporting.figures import SELF_EVAL_METHODS
from mindmirror.student.infer import MODES, Choices, Prediction, Student, infer

# EXPORTED_JUDGE and judge_folder stay importable from here (the Python API named them here).
from mindmirror.student.loading import EXPORTED_JUDGE as EXPORTED_JUDGE
from mindmirror.student.loading import judge_folder as judge_folder
from mindmirror.student.loading import load_for_inference, run_root
from mindmirror.tasks.base import Task

BUILTIN_TASKS = ("svamp", "gsm8k", "cqa", "anli", "arith")
FAMILIES = ("equation", "number", "choice")
#: Methods whose students never learnt ``explain:`` (no CoTs): they default to ``answer``.
NO_COT_METHODS = ("standard", "distill")


def run_recipe(path: Path) -> Recipe | None:
    """The recipe of the run holding ``path``: its ``recipe.yaml``, else the one training
    recorded in ``student/train.json``; None outside a run directory."""
    root = run_root(path)
    if root is None:
        return None
    if (root / "recipe.yaml").is_file():
        return load_recipe(root / "recipe.yaml")
    summary = json.loads((root / "student" / "train.json").read_text())
    if not summary.get("recipe"):
        return None
    return recipe_from_dict(yaml.safe_load(summary["recipe"]), source=f"{root}/student/train.json")


def resolve_task(path: Path, task: str | None) -> tuple[TaskConfig, Recipe | None]:
    """The task config from ``task`` (a built-in name or an answer family) or the run's recipe,
    and the run's recipe when there is one."""
    recipe = run_recipe(path)
    names = ", ".join(BUILTIN_TASKS + FAMILIES)
    if task is None:
        if recipe is None:
            raise UserError(
                f"cannot tell the task of {path}: give a run directory, or a task ({names})"
            )
        return recipe.task, recipe
    if task in BUILTIN_TASKS:
        return TaskConfig(name=task), recipe  # type: ignore[arg-type]
    if task in FAMILIES:
        return TaskConfig(name="generic", family=task), recipe  # type: ignore[arg-type]
    raise UserError(f"unknown task {task!r}: choose from {names}")


def default_mode(method: str | None, serve: ServeConfig) -> str:
    """The mode ``predict`` and ``serve`` use when none is asked for: ``answer`` for students
    trained without CoTs (``standard``, ``distill``: they never learnt ``explain:``), else
    ``serve.mode`` (``cot`` unless the recipe sets it)."""
    return "answer" if method in NO_COT_METHODS else serve.mode


def check_mode(mode: str | None) -> None:
    """UserError for a mode that is not one of ``MODES`` (None = the default, fine); called
    before any model loads."""
    if mode is not None and mode not in MODES:
        raise UserError(f"unknown mode {mode!r}: choose from {', '.join(MODES)}")


def untrained_mode(mode: str, method: str | None) -> str | None:
    """Why a student trained with ``method`` cannot serve ``mode``, or None when it can (or
    when the method is unknown): ``mirror`` needs a student that learnt ``verdict:``."""
    if mode != "mirror" or method is None or method in SELF_EVAL_METHODS:
        return None
    return (
        f"mode mirror needs a student that learnt to judge its CoTs, and this one was trained "
        f"with {method}, which has no self-evaluation (its verdicts would be noise); use mode "
        "vote or cot, or train with mind_mirror"
    )


def trained_method(path: Path, recipe: Recipe | None) -> str | None:
    """The training method of the student at ``path``: its run's recipe, else the method its
    ``student.json`` records (None when neither says)."""
    from mindmirror.student.model import student_info

    if recipe is not None:
        return recipe.train.method
    return student_info(path).get("method")


def with_engine(cfg: EvalConfig, engine: str | None, engine_url: str | None) -> EvalConfig:
    """``cfg`` with ``--engine`` / ``--engine-url`` applied (an URL alone means engine
    openai); UserError naming the bad option."""
    update: dict[str, Any] = {}
    if engine is not None:
        update["engine"] = engine
    if engine_url is not None:
        update.update(engine_url=engine_url, engine=engine or "openai")
    if not update:
        return cfg
    try:
        return EvalConfig.model_validate({**cfg.model_dump(), **update})
    except ValidationError as error:
        first = error.errors()[0]
        raise UserError(f"--engine {update['engine']}: {first['msg']}") from None


@dataclass
class Predictor:
    """A loaded student with its task and inference settings (``recipe.eval`` of its run).

    The first ``predict`` starts the generation engine (``eval.engine``: for llama.cpp, a GGUF
    export and a server); it runs until ``close`` (or the end of a ``with`` block), so later
    calls reuse it.
    """

    student: Student
    task: Task
    eval: EvalConfig
    serve: ServeConfig
    mode: str
    seed: int = 0
    #: The training method (None when neither the run nor the student records it).
    method: str | None = None
    _engine: ExitStack = field(default_factory=ExitStack, init=False, repr=False)
    _served: Student | None = field(default=None, init=False, repr=False)

    def __enter__(self) -> Predictor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop the generation engine's servers, if any run (a later call starts them again)."""
        self._engine.close()
        self._served = None

    @classmethod
    def load(
        cls,
        path: str | Path,
        *,
        task: str | None = None,
        engine: str | None = None,
        engine_url: str | None = None,
    ) -> Predictor:
        """Load the student at ``path`` (run directory or student folder); ``engine`` and
        ``engine_url`` override the run's ``eval.engine`` and ``eval.engine_url``.

        Raises:
            UserError: missing path, unknown task or engine, or no way to tell the task.
        """
        from mindmirror.tasks import build_task

        path = Path(path)
        if not path.exists():
            raise UserError(f"student not found: {path} (give a run directory or student folder)")
        task_cfg, recipe = resolve_task(path, task)
        serve = recipe.serve if recipe else ServeConfig()
        method = trained_method(path, recipe)
        settings = with_engine(recipe.eval if recipe else EvalConfig(), engine, engine_url)
        return cls(
            student=load_for_inference(path, recipe.eval.judge if recipe else "auto"),
            task=build_task(task_cfg),
            eval=settings,
            serve=serve,
            mode=default_mode(method, serve),
            seed=recipe.seed if recipe else 0,
            method=method,
        )

    def predict(
        self,
        questions: Sequence[str],
        mode: str | None = None,
        *,
        choices: Sequence[Choices] | None = None,
        quiet: bool = True,
    ) -> list[Prediction]:
        """Answer ``questions`` in ``mode`` (default: the predictor's), generating through
        ``eval.engine`` (started by the first call).

        Raises:
            UserError: an unknown mode, or ``mirror`` for a student that never learnt to judge.
        """
        from mindmirror.student.engines import generation_engine

        chosen = mode or self.mode
        check_mode(chosen)
        reason = untrained_mode(chosen, self.method)
        if reason is not None:
            raise UserError(reason)
        if self._served is None:
            engine = generation_engine(self.student, self.eval, quiet=quiet)
            self._served = self._engine.enter_context(engine)
        return infer(
            self._served,
            self.task,
            questions,
            chosen,  # type: ignore[arg-type]
            self.eval,
            choices=choices,
            seed=self.seed,
            quiet=quiet,
        )


def predict(
    path: str | Path,
    questions: Sequence[str],
    mode: str | None = None,
    *,
    task: str | None = None,
    engine: str | None = None,
    engine_url: str | None = None,
    quiet: bool = True,
) -> list[Prediction]:
    """Load the student at ``path`` and answer ``questions`` (see ``Predictor``)."""
    check_mode(mode)
    with Predictor.load(path, task=task, engine=engine, engine_url=engine_url) as predictor:
        return predictor.predict(questions, mode, quiet=quiet)


def read_questions(path: Path) -> list[dict[str, Any]]:
    """JSONL rows with a non-empty ``question``; UserError naming the file and line otherwise."""
    if not path.is_file():
        raise UserError(f"questions file not found: {path}")
    rows = []
    with path.open(encoding="utf-8") as handle:
        for lineno, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except (json.JSONDecodeError, RecursionError):
                raise UserError(f"{path}:{lineno}: not a JSON object") from None
            if not isinstance(row, dict) or not str(row.get("question") or "").strip():
                raise UserError(f'{path}:{lineno}: needs a "question" field with text')
            if row.get("choices") is not None and not isinstance(row["choices"], list):
                raise UserError(f'{path}:{lineno}: "choices" must be a list of strings')
            rows.append(row)
    if not rows:
        raise UserError(f"{path}: no questions in it")
    return rows


def prediction_row(source: dict[str, Any], index: int, p: Prediction) -> dict[str, Any]:
    """One output line: the input's id (or its line index) and the prediction."""
    return {"id": source.get("id", index), **p.to_dict()}


def predict_file(
    path: str | Path,
    input_path: str | Path,
    output_path: str | Path,
    mode: str | None = None,
    *,
    task: str | None = None,
    engine: str | None = None,
    engine_url: str | None = None,
    quiet: bool = False,
) -> int:
    """Answer every question of a JSONL file into a JSONL file; return how many were answered.

    The output is written to a temporary file and renamed, so it is never half-written.
    """
    check_mode(mode)
    rows = read_questions(Path(input_path))
    choices = [tuple(r["choices"]) if r.get("choices") else None for r in rows]
    with Predictor.load(path, task=task, engine=engine, engine_url=engine_url) as predictor:
        preds = predictor.predict(
            [str(r["question"]) for r in rows], mode, choices=choices, quiet=quiet
        )
    out = Path(output_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    with open_atomic(out) as handle:
        for i, (row, p) in enumerate(zip(rows, preds, strict=True)):
            handle.write(json.dumps(prediction_row(row, i, p), ensure_ascii=False) + "\n")
    return len(preds)
