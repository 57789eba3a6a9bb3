"""``mindmirror data``: what a recipe's task holds, and what its import matches, with no teacher.

A new user's first question is whether the data loaded the way they meant: how many questions
each split has, what ids and golds look like, and (for an import) how many of the file's
entries find their question. This answers it in a few lines, before anything is paid for.
"""

from __future__ import annotations

from mindmirror.config import Recipe
from mindmirror.tasks import load_task_with_report
from mindmirror.tasks.base import Example
from mindmirror.teacher.backends.importers import import_outputs

_QUESTION_CHARS = 100


def _one_line(text: str, limit: int = _QUESTION_CHARS) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def _sample(example: Example) -> str:
    return f"  {example.id}  gold {example.gold!r}  {_one_line(example.question)}"


def describe(recipe: Recipe, samples: int = 3) -> list[str]:
    """Lines describing the recipe's task (split sizes, sample ids, questions and golds) and,
    for ``teacher.backend: import``, how the import file matches the taught questions.

    Raises:
        UserError: the task or the import files cannot be read.
    """
    task, splits, report = load_task_with_report(recipe.task, recipe.seed)
    lines = [
        f"task {recipe.task.name} ({task.family}: {task.answer_format()})",
        f"questions: {report.line()}",
    ]
    for split, examples in splits.items():
        if examples:
            lines.append(f"{split} (first {min(samples, len(examples))} of {len(examples)}):")
            lines += [_sample(example) for example in examples[:samples]]
    teacher = recipe.teacher
    if teacher.backend == "import" and teacher.import_ is not None:
        taught = [ex for split in teacher.splits for ex in splits.get(split, [])]
        # Counted without the min_match check, so the counts show even when teach would stop.
        lenient = teacher.import_.model_copy(update={"min_match": 0.0})
        result = import_outputs(lenient, taught, teacher.num_cots)
        verdict = "ok" if result.match_share() >= teacher.import_.min_match else "too few"
        lines.append(
            f"import {teacher.import_.format} {teacher.import_.path}: {result.matched_entries} "
            f"of {result.entries} entries matched, {result.matched_examples} of "
            f"{result.examples} questions in {'/'.join(teacher.splits)} get CoTs ({verdict} for "
            f"teacher.import.min_match={teacher.import_.min_match})"
        )
    return lines
