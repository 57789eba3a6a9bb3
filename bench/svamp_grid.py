"""The experiment grid on real SVAMP teacher data at CPU size (issue 4, "Measurements").

Runs ``mindmirror.experiment.experiment`` on ``recipes/svamp_mcckd_cpu.yaml``: the public
gpt-3.5-turbo CoTs of MCC-KD (10 per training question) replayed through the ``import``
backend, the embedded SmolLM2-135M-Instruct student with LoRA. Before any training it checks
that no test question is a training or validation question (normalized question text) and
prints the split sizes. The grid runs in two passes over the same run directory: the methods
without self-evaluation first (the headline cells: 1 CoT and N CoTs, every seed), then the
whole recipe grid, which skips every finished cell, so a cut-off run still has the headline
table. A killed run resumes when started again with the same arguments.

    python bench/svamp_grid.py                       # about 30 minutes on 2 cores
    python bench/svamp_grid.py --set experiment.seeds=[0] --set task.limit.train=16   # smoke

Prints the table (also ``<run>/experiment.md``) and copies the report's plots to ``--plots``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import time
from pathlib import Path

import torch

from mindmirror.config import Recipe, load_recipe
from mindmirror.errors import UserError
from mindmirror.experiment import SELF_EVAL_METHODS, experiment
from mindmirror.grid_teaching import teaching_needed
from mindmirror.records import read_records
from mindmirror.rundir import RunDir
from mindmirror.tasks import load_task, question_key
from mindmirror.teacher.teach import teach

ROOT = Path(__file__).resolve().parents[1]


def check_disjoint(recipe: Recipe, run: RunDir) -> str:
    """Teach (import) if needed, then make sure no test question is a taught question."""
    if teaching_needed(recipe, run):
        teach(recipe, run, quiet=True)
    records = read_records(run.records)
    _, splits = load_task(recipe.task, recipe.seed)
    taught = {question_key(r.question) for r in records}
    test = {question_key(e.question) for e in splits["test"]}
    if taught & test:
        raise UserError(f"{len(taught & test)} test questions are also training questions")
    counts = {s: sum(r.split == s for r in records) for s in ("train", "validation")}
    return (
        f"train {counts['train']} questions, validation {counts['validation']}, test "
        f"{len(test)} (no test question among the {len(taught)} taught ones)"
    )


def copy_plots(run: RunDir, folder: Path, prefix: str) -> list[Path]:
    """Copy the run's report plots into ``folder`` as ``<prefix>_<name>.png``; return them."""
    folder.mkdir(parents=True, exist_ok=True)
    copies = []
    for png in sorted(run.plots.glob("*.png")):
        copies.append(folder / f"{prefix}_{png.name}")
        shutil.copyfile(png, copies[-1])
    return copies


def main() -> None:
    """Check the splits, run the headline cells, then the whole grid; print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--recipe", type=Path, default=ROOT / "recipes" / "svamp_mcckd_cpu.yaml")
    parser.add_argument("--run-dir", type=Path, default=Path("runs/svamp_grid"))
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--plots", type=Path, default=None, help="copy plots/*.png here")
    parser.add_argument(
        "--threads", type=int, default=None, help="torch threads (1 on a machine shared by jobs)"
    )
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    recipe = load_recipe(args.recipe, [f"run_dir={args.run_dir}", *args.overrides])
    run = RunDir(recipe.resolved_run_dir())
    started = time.perf_counter()
    print(check_disjoint(recipe, run), flush=True)
    headline = [m for m in recipe.experiment.methods if m not in SELF_EVAL_METHODS]
    if headline != recipe.experiment.methods:
        first = recipe.model_copy(
            update={"experiment": recipe.experiment.model_copy(update={"methods": headline})}
        )
        experiment(first, run, quiet=args.quiet)
        print(f"headline cells done after {(time.perf_counter() - started) / 60:.1f} min")
    result = experiment(recipe, run, quiet=args.quiet)
    print(result["markdown"])
    print(
        f"\nwall time {(time.perf_counter() - started) / 60:.1f} min; torch threads "
        f"{torch.get_num_threads()}; load average {os.getloadavg()[0]:.1f}; report "
        f"{result['report']}"
    )
    if args.plots:
        for path in copy_plots(run, args.plots, "svamp_grid"):
            print(f"plot: {path}")


if __name__ == "__main__":
    main()
