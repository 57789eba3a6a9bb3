"""`mindmirror demo`: the whole pipeline offline on the packaged demo recipe.

The teacher is the embedded SmolLM2-135M-Instruct served by llama.cpp on loopback (or an
OpenAI-compatible ``teacher_url``), the student the same small model, the task generated
arithmetic word problems; teach -> train (step_by_step, mind_mirror) -> eval -> report, each
step resuming from what the run directory already holds.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

from rich.console import Console

from mindmirror.config import load_recipe
from mindmirror.progress import log_console
from mindmirror.rundir import usable_run_dir


def demo_recipe_path() -> Path:
    """The packaged demo recipe (works from any directory, no checkout needed)."""
    return Path(str(resources.files("mindmirror") / "recipes" / "demo.yaml"))


def demo_overrides(
    run_dir: Path, teacher_url: str | None, teacher_model: str, extra: list[str] | None
) -> list[str]:
    """The ``--set`` overrides of the demo recipe: its run directory, an OpenAI-compatible
    teacher at ``teacher_url`` (serving ``teacher_model``) when given, then ``extra``."""
    overrides = [f"run_dir={run_dir}", *(extra or [])]
    if teacher_url:
        overrides += ["teacher.backend=openai", f"teacher.base_url={teacher_url}"]
        overrides += [f"teacher.model={teacher_model}"]
    return overrides


def run_demo(
    run_dir: Path,
    teacher_url: str | None,
    teacher_model: str,
    extra: list[str] | None,
    quiet: bool,
) -> None:
    """Teach, train both methods, score and report the demo recipe, printing the teacher
    table, the comparison table and what to look at in it."""
    from mindmirror.experiment import experiment
    from mindmirror.grid_teaching import teach_unless_taught
    from mindmirror.teacher.summary import summary_table

    console = log_console()
    recipe = load_recipe(
        demo_recipe_path(), demo_overrides(run_dir, teacher_url, teacher_model, extra)
    )
    rundir = usable_run_dir(recipe.resolved_run_dir())
    if recipe.teacher.backend == "embedded":
        console.print(
            "[bold]mindmirror demo[/]: the embedded teacher is SmolLM2-135M-Instruct, a very "
            "weak model; the numbers below are what it really gets. Use --teacher-url for a "
            "real teacher."
        )
    teach_unless_taught(recipe, rundir, quiet)
    result = experiment(recipe, rundir, quiet=quiet)
    Console().print(summary_table(json.loads(rundir.summary.read_text())))
    print(result["markdown"])
    console.print(
        "What to look at: 'answer (paper)' is the paper's score; in 'Selective prediction', a "
        "student whose own verdicts tell it when it is wrong scores clearly higher on its most "
        "confident 50% than at full coverage."
    )
    console.print(f"report: {result['report']} (report.md and plots/ beside it)")
