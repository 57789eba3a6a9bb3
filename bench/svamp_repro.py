"""The paper's comparison on real SVAMP teacher data, tuned on validation (issue 9).

One resumable command; every step skips what a previous run finished:

1. Teach: import the MCC-KD gpt-3.5-turbo CoTs onto the DSS SVAMP questions they cover
   (``recipes/svamp_repro_cpu.yaml``); check that no test question was taught.
2. Tune on validation only: each candidate optimisation (LoRA or full fine-tuning, learning
   rate) trains ``standard`` once (seed 0); the one with the best validation accuracy is used
   for every cell. Test is never read here.
3. The grid (``experiment``) with that optimisation, ``experiment.equal_examples`` (a 5-CoT
   cell sees as many examples as a 1-CoT cell, as published), 3 seeds: standard fine-tuning,
   1 CoT, 5 CoTs, 5 CoTs with self-evaluation (two-stage and joint; gold verdicts, not the
   paper's teacher self-evaluation). The headline cells run first, all seeds.
4. A DSS-style reference: 1 CoT from PaLM-540B on the same training questions.
5. ``docs/results/svamp_repro.json``: per cell and mode mean, std, seeds, n_test; per pair of
   cells the paired bootstrap interval; the command, wall time, CPU and precision. Plots are
   copied to ``docs/img/svamp_repro_*.png``.

    python bench/svamp_repro.py                      # everything (hours on 2 cores)
    python bench/svamp_repro.py --until tune         # only the tuning step
    python bench/svamp_repro.py --seeds 0            # one seed per cell (a first pass)
    python bench/svamp_repro.py --summarise          # publish what finished; train nothing
    python bench/svamp_repro.py --add-to-published --seeds 2 --until grid --set ...
        # run more seeds of some cells with the published optimisation and add them to the
        # published summary: for a summary whose run directory is gone (another machine)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from svamp_grid import check_disjoint, copy_plots  # bench/ is on sys.path when run as a script

from mindmirror.config import Recipe, load_recipe, recipe_from_dict
from mindmirror.errors import UserError
from mindmirror.experiment import data_seed, experiment, plan_cells, teaching_needed
from mindmirror.figures import SELF_EVAL_METHODS
from mindmirror.records import read_records, write_records
from mindmirror.rundir import RunDir
from mindmirror.student.precision import CPUINFO, cpuinfo_field, resolve_precision
from mindmirror.student.train import train
from mindmirror.tables import Correctness, paired_differences, read_correctness, seed_aggregate
from mindmirror.teacher.teach import teach

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "recipes" / "svamp_repro_cpu.yaml"
#: Candidate optimisations, tried in this order; each is a set of ``train:`` overrides.
CANDIDATES: dict[str, dict[str, Any]] = {
    "lora-lr5e-4-e3": {"lora": True, "learning_rate": 5e-4, "epochs": 3},
    "full-lr5e-5-e3": {"lora": False, "learning_rate": 5e-5, "epochs": 3},
    "full-lr1e-4-e3": {"lora": False, "learning_rate": 1e-4, "epochs": 3},
}
#: Tuning trains standard fine-tuning only: the cheapest cell (one short row per question),
#: and the optimisation found is then shared by every cell, as the published recipes share one.
TUNED_METHODS = ("standard",)
#: The PaLM-540B reference's own run directory, inside the protocol's.
PALM = "palm"
PALM_LABEL = " [PaLM-540B CoTs]"


def log(message: str) -> None:
    """A progress line on stderr with the time of day."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def with_train(recipe: Recipe, run_dir: Path, **train_settings: Any) -> Recipe:
    """The recipe with other ``train:`` settings and run directory."""
    data = recipe.model_dump(mode="json", by_alias=True)
    data["train"].update(train_settings)
    data["run_dir"] = str(run_dir)
    return recipe_from_dict(data)


def tune(recipe: Recipe, run: RunDir, summarise: bool) -> tuple[str, list[dict[str, Any]]]:
    """Train each candidate x tuned method on seed 0; choose on mean validation accuracy.

    ``summarise`` reads the finished trainings and refuses to train a missing one."""
    table = []
    for name, settings in CANDIDATES.items():
        scores = {}
        for method in TUNED_METHODS:
            sub = RunDir(run.root / "tune" / f"{name}-{method}")
            sub.teacher.mkdir(parents=True, exist_ok=True)
            if not sub.records.is_file():
                shutil.copyfile(run.records, sub.records)
            resolved = with_train(recipe, sub.root, method=method, num_cots=1, **settings)
            done = sub.student / "train.json"
            if summarise and not done.is_file():
                raise UserError(f"{done} does not exist: run the tuning before --summarise")
            log(f"tune {name} {method}")
            summary = train(resolved, sub, quiet=True)
            stage = summary["stages"]["reasoning"]
            scores[method] = stage["best_metric"]["eval_accuracy"]
            scores[f"{method}_seconds"] = stage["train_seconds"]
        mean = sum(scores[m] for m in TUNED_METHODS) / len(TUNED_METHODS)
        table.append({"candidate": name, **settings, **scores, "mean_validation": mean})
        log(f"tune {name}: validation {scores}")
    best = max(table, key=lambda row: row["mean_validation"])
    return best["candidate"], table


def palm_reference(
    recipe: Recipe, run: RunDir, seeds: list[int], quiet: bool, summarise: bool
) -> dict[str, Any]:
    """1 CoT from PaLM-540B (the DSS files) on the questions the MCC-KD run trains on
    (``summarise``: the finished seeds only; importing the CoTs costs no teacher call)."""
    keep = {r.id for r in read_records(run.records)}
    data = recipe.model_dump(mode="json", by_alias=True)
    data["name"] = f"{recipe.name}-palm"
    data["teacher"].update(
        model="palm-540b",
        num_cots=1,
        **{"import": {"format": "dss", "path": "../shared/data/svamp/dss", "min_match": 0.5}},
    )
    data["experiment"].update(methods=["step_by_step"], num_cots=[1], seeds=seeds)
    palm = recipe_from_dict(data)
    sub = RunDir(run.root / PALM)
    if teaching_needed(palm, sub):
        staging = RunDir(run.root / "palm-all")
        teach(palm.model_copy(update={"run_dir": str(staging.root)}), staging, quiet=True)
        write_records(sub.records, [r for r in read_records(staging.records) if r.id in keep])
    palm = palm.model_copy(update={"run_dir": str(sub.root)})
    return experiment(palm, sub, quiet=quiet, only_finished=summarise)


def cpu_name() -> str:
    """The CPU model (Linux), else what platform knows: figures depend on it (bf16, AMX)."""
    try:
        name = cpuinfo_field(CPUINFO.read_text(encoding="utf-8", errors="replace"), "model name")
    except OSError:
        name = None
    return name or platform.processor() or platform.machine()


def cell_seconds(run: RunDir, cell: str) -> dict[str, float]:
    """Training seconds (all stages) and test-inference seconds (all modes) of a finished cell."""
    folder = run.cell(cell)
    stages = json.loads((folder.student / "train.json").read_text())["stages"].values()
    modes = json.loads((folder.evaluation / "metrics.json").read_text())["modes"]
    sampled = [m["seconds"] for k, m in modes.items() if k == "vote" or k.startswith("mirror")]
    greedy = sum(m["seconds"] for k, m in modes.items() if k in ("answer", "cot"))
    return {
        "train_s": round(sum(s["train_seconds"] for s in stages), 1),
        "eval_s": round(greedy + max(sampled, default=0), 1),
    }


def total_seconds(costs: dict[str, dict[str, float]]) -> float:
    """What the cells in ``cell_seconds`` cost in all (train + test inference)."""
    return round(sum(sum(c.values()) for c in costs.values()), 1)


def palm_pairs(
    recipe: Recipe, run: RunDir, result: dict[str, Any], palm: dict[str, Any]
) -> list[dict[str, Any]]:
    """The PaLM reference against every grid row: paired intervals on the same test questions
    (PaLM minus the row), as the grid's own pairs are."""

    def correctness(
        at: RunDir, source: dict[str, Any], method: str, n: int
    ) -> dict[int, Correctness]:
        return {
            c["seed"]: read_correctness(at.cell(c["cell"]).evaluation / "predictions.jsonl")
            for c in source["cells"]
            if (c["method"], c["num_cots"]) == (method, n)
        }

    scores = {
        (r["method"], r["num_cots"]): correctness(run, result, r["method"], r["num_cots"])
        for r in result["rows"]
    }
    rows = [r for r in palm["rows"] if r["seeds"]]
    scores[(PALM, 1)] = correctness(RunDir(run.root / PALM), palm, "step_by_step", 1)
    reference = [{**r, "method": PALM, "label": r["label"] + PALM_LABEL} for r in rows]
    pairs = paired_differences(
        [*result["rows"], *reference],
        scores,
        resamples=recipe.eval.bootstrap,
        seed=data_seed(recipe),
    )
    return [p for p in pairs if p["second"].endswith(PALM_LABEL)]


def published_entry(entry: dict[str, Any], seeds: list[int], n_test: int | None) -> dict[str, Any]:
    """One mode of a row of ``experiment`` as the summary publishes it."""
    return {
        "mean": entry["mean"],
        "std": entry["std"],
        "seeds": seeds,
        "values": entry["values"],
        "n_test": n_test,
        "at_coverage": entry.get("at_coverage"),
        "aurc": entry.get("aurc"),
        "own_cots_auroc": entry.get("own_cots_auroc"),
        "judge": entry.get("judge"),
    }


def summarise(
    result: dict[str, Any], palm: dict[str, Any] | None, pairs: list[dict[str, Any]]
) -> dict[str, Any]:
    """Per row and mode: mean, std, seeds, n_test; the paired intervals."""
    cells = {}
    for source in (result, palm):
        if source is None:
            continue
        n_test = {c["method"]: c["questions"] for c in source["cells"]}
        for row in source["rows"]:
            if row["note"] is not None or not row["seeds"]:
                continue
            label = row["label"] + (PALM_LABEL if source is palm else "")
            cells[label] = {
                mode: published_entry(entry, row["seeds"], n_test.get(row["method"]))
                for mode, entry in row["modes"].items()
            }
    return {"cells": cells, "paired": result["paired"] + pairs}


def combine_seeds(published: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """One mode of a published row (``summarise``'s ``cells[label][mode]``) with the new seeds
    of a row of ``experiment`` (``rows[i]["modes"][mode]``, seeds ``new["seeds"]``) added.

    Every figure of a row is a mean over its seeds (``row_results``), so this is exact where each
    side measured a figure on all its seeds or on none (None, left out as ``row_results`` leaves
    it out); the grid's cells measure every figure of their modes.

    Raises:
        UserError: a new seed is already published.
    """
    old_seeds, new_seeds = published["seeds"], new["seeds"]
    if set(old_seeds) & set(new_seeds):
        raise UserError(
            f"seeds {sorted(set(old_seeds) & set(new_seeds))} are already published; "
            "--add-to-published adds other seeds only"
        )
    k_old, k_new = len(old_seeds), len(new_seeds)

    def mean(a: float | None, b: float | None) -> float | None:
        if a is None or b is None:
            return b if a is None else a
        return (a * k_old + b * k_new) / (k_old + k_new)

    by_seed = sorted(
        zip([*old_seeds, *new_seeds], [*published["values"], *new["values"]], strict=True)
    )
    coverages = sorted({*(published["at_coverage"] or {}), *(new.get("at_coverage") or {})})
    return {
        **published,
        **seed_aggregate([v for _, v in by_seed]),
        "seeds": [s for s, _ in by_seed],
        "at_coverage": {
            c: mean((published["at_coverage"] or {}).get(c), (new.get("at_coverage") or {}).get(c))
            for c in coverages
        },
        "aurc": mean(published["aurc"], new.get("aurc")),
        "own_cots_auroc": mean(published["own_cots_auroc"], new.get("own_cots_auroc")),
    }


def cell_figures(run: RunDir, cell: str) -> dict[str, Any]:
    """A finished cell's figures for the summary: per mode accuracy, selective accuracy, AURC,
    coverage and own-CoT judgement (not the curves); the stage-1 verdict agreement; per stage
    the checkpoint chosen on validation."""
    folder = run.cell(cell)
    metrics = json.loads((folder.evaluation / "metrics.json").read_text())
    stages = json.loads((folder.student / "train.json").read_text())["stages"]
    kept = ("accuracy", "at_coverage", "aurc", "coverage", "judge", "own_cots", "seconds")
    return {
        "modes": {
            mode: {k: v for k, v in m.items() if k in kept} for mode, m in metrics["modes"].items()
        },
        "self_evaluation": metrics.get("self_evaluation"),
        "self_evaluation_final": metrics.get("self_evaluation_final"),
        "stages": {
            name: {k: stage.get(k) for k in ("best_step", "best_metric", "train_seconds")}
            for name, stage in stages.items()
        },
    }


def add_to_published(
    published: dict[str, Any], result: dict[str, Any], run: RunDir, command: str, precision: str
) -> dict[str, Any]:
    """The published summary with ``result``'s finished cells added as more seeds of their
    published rows. The paired intervals need each question's correctness on both rows, which
    the published summary does not hold, so they stay as published: their ``first_seeds`` and
    ``second_seeds`` name the seeds they use. The new cells' own figures (``cell_figures``) go
    under ``added_cells``.

    Raises:
        UserError: no finished cell; a row the summary does not have; other modes, test
            questions or judges than the published row's; a seed already published.
    """
    if not result["cells"]:
        raise UserError("no finished cell to add: run the cells first (without --summarise)")
    cells = dict(published["cells"])
    n_test = {c["method"]: c["questions"] for c in result["cells"]}
    for row in result["rows"]:
        if row["note"] is not None or not row["seeds"]:
            continue
        label = row["label"]
        if label not in cells:
            raise UserError(
                f"{label!r} is not a row of the published summary: --add-to-published adds "
                "seeds to published rows only (a new row needs the whole protocol)"
            )
        if set(row["modes"]) != set(cells[label]):
            raise UserError(
                f"{label!r} was published with modes {sorted(cells[label])} but the new cells "
                f"scored {sorted(row['modes'])}: score the same modes"
            )
        merged = {}
        for mode, entry in row["modes"].items():
            old = cells[label][mode]
            now = (n_test.get(row["method"]), entry.get("judge"))
            if (old["n_test"], old["judge"]) != now:
                raise UserError(
                    f"{label!r} {mode}: published on {old['n_test']} test questions with judge "
                    f"{old['judge']!r}, the new cells on {now[0]} with judge {now[1]!r}"
                )
            merged[mode] = combine_seeds(old, {**entry, "seeds": row["seeds"]})
        cells[label] = merged
    added = sorted(c["cell"] for c in result["cells"])
    costs = {**published["cell_seconds"], **{name: cell_seconds(run, name) for name in added}}
    metrics = {name: cell_figures(run, name) for name in added}
    return {
        **published,
        "missing_cells": [c for c in published["missing_cells"] if c not in added],
        "cell_seconds": costs,
        "cells_total_s": total_seconds(costs),
        "cells": cells,
        "added": [
            *published.get("added", []),
            {
                "command": command,
                "cells": added,
                "cpu": cpu_name(),
                "precision": precision,
                "load_average_at_end": os.getloadavg()[0],
            },
        ],
        "added_cells": {**published.get("added_cells", {}), **metrics},
    }


def main() -> None:
    """Prepare, tune, run the grid and the PaLM reference, write the summary."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run-dir", type=Path, default=Path("runs/svamp_repro"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--until", choices=["tune", "headline", "grid", "all"], default="all")
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "results" / "svamp_repro.json")
    parser.add_argument("--plots", type=Path, default=ROOT / "docs" / "img")
    parser.add_argument(
        "--summarise",
        action="store_true",
        help="train and score nothing: write the summary and plots from the finished cells",
    )
    parser.add_argument(
        "--add-to-published",
        action="store_true",
        help="use the optimisation chosen in the summary at --out (no tuning), run the asked "
        "cells, and add them to that summary as more seeds (its pairs and plots stay)",
    )
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args()
    if args.add_to_published and args.until != "grid":
        parser.error(
            "--add-to-published adds grid cells only (not the PaLM reference): add --until grid"
        )
    started = time.perf_counter()
    recipe = load_recipe(RECIPE, [f"run_dir={args.run_dir}", *args.overrides])
    run = RunDir(recipe.resolved_run_dir())
    log(check_disjoint(recipe, run))
    published = None
    if args.add_to_published:
        if not args.out.is_file():
            raise UserError(f"{args.out} does not exist: --add-to-published adds to a summary")
        published = json.loads(args.out.read_text())
        chosen, tuning = published["chosen"]["candidate"], published["tuning"]
        if published["chosen"] != {"candidate": chosen, **CANDIDATES.get(chosen, {})}:
            raise UserError(
                f"{args.out} chose {published['chosen']}, which CANDIDATES no longer holds: new "
                "seeds would train with other settings than the published ones"
            )
    else:
        chosen, tuning = tune(recipe, run, args.summarise)
    log(f"chosen on validation: {chosen} {CANDIDATES[chosen]}")
    if args.until == "tune":
        return
    grid = recipe_from_dict(
        {
            **recipe.model_dump(mode="json", by_alias=True),
            "train": {**recipe.train.model_dump(mode="json"), **CANDIDATES[chosen]},
            "experiment": {
                **recipe.experiment.model_dump(mode="json"),
                "seeds": args.seeds,
                "equal_examples": True,
            },
        }
    )
    # The claims' cells first (every seed), then the rest of the grid: self-evaluation and
    # the extra Ns of accuracy against N.
    headline = [m for m in grid.experiment.methods if m not in SELF_EVAL_METHODS]
    first = grid.model_copy(
        update={
            "experiment": grid.experiment.model_copy(
                update={"methods": headline, "num_cots_by_method": {}}
            )
        }
    )
    if not headline and args.until == "headline":
        parser.error("--until headline: the methods set have no headline cells")
    quiet, only_finished = args.quiet, args.summarise
    command = "python bench/svamp_repro.py " + " ".join(sys.argv[1:])
    precision = resolve_precision(grid.train.precision)
    if published is not None:
        if precision != published["precision"]:
            log(
                f"warning: the summary was trained in {published['precision']}, this machine "
                f"trains in {precision} (recorded under `added`)"
            )
        result = experiment(grid, run, quiet=quiet, only_finished=only_finished)
        print(result["markdown"])
        args.out.write_text(
            json.dumps(add_to_published(published, result, run, command, precision), indent=2)
            + "\n"
        )
        log(f"added {len(result['cells'])} cells to {args.out}")
        return
    # A run of self-evaluation cells alone (`--set experiment.methods=[mind_mirror]`) has no
    # headline cells to run first.
    if headline:
        result = experiment(first, run, quiet=quiet, only_finished=only_finished)
        log("headline cells done")
    palm = None
    if args.until in ("grid", "all"):
        result = experiment(grid, run, quiet=quiet, only_finished=only_finished)
    if args.until == "all":
        palm = palm_reference(grid, run, args.seeds, quiet, only_finished)
    print(result["markdown"])
    if palm is not None:
        print("\n## PaLM-540B reference\n\n" + palm["markdown"])
    protocol = load_recipe(RECIPE).experiment.model_copy(update={"seeds": [0, 1, 2]})
    done = {c["cell"] for c in result["cells"]}
    missing = [
        c.name
        for c in plan_cells(protocol, explain_target=grid.train.explain_target)
        if c.name not in done
    ]
    palm_run = RunDir(run.root / PALM)
    palm_done = {c["cell"] for c in palm["cells"]} if palm is not None else set()
    missing += [
        f"{PALM}/step_by_step-n1-s{seed}"
        for seed in protocol.seeds
        if f"step_by_step-n1-s{seed}" not in palm_done
    ]
    costs = {
        **{name: cell_seconds(run, name) for name in sorted(done)},
        **{f"{PALM}/{name}": cell_seconds(palm_run, name) for name in sorted(palm_done)},
    }
    summary = {
        "command": command,
        "finished": args.until,
        "missing_cells": missing,
        "cell_seconds": costs,
        "wall_s": round(time.perf_counter() - started, 1),
        # What the finished cells cost in all (train + test inference), over every session.
        "cells_total_s": total_seconds(costs),
        "cpu": cpu_name(),
        "precision": precision,
        "load_average_at_end": os.getloadavg()[0],
        "chosen": {"candidate": chosen, **CANDIDATES[chosen]},
        "tuning": tuning,
        **summarise(result, palm, palm_pairs(grid, run, result, palm) if palm else []),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(summary, indent=2) + "\n")
    copy_plots(run, args.plots, "svamp_repro")
    log(f"wrote {args.out}; wall {summary['wall_s'] / 60:.1f} min")


if __name__ == "__main__":
    try:
        main()
    except UserError as error:  # a user's mistake: one line, no traceback
        sys.exit(f"error: {error}")
