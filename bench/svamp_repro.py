"""The paper's comparison on real SVAMP teacher data, tuned on validation per method (issues 9, 23).

One resumable command; every step skips what a previous run (or its records) finished:

1. Teach: import the MCC-KD gpt-3.5-turbo CoTs onto the DSS SVAMP questions they cover
   (``recipes/svamp_repro_cpu.yaml``); check that no test question was taught.
2. Tune on validation only, per method: every method of the grid trains once (seed 0, at its
   headline N, with ``experiment.equal_examples`` as in its cells) with each of the same
   ``CANDIDATES`` (learning rate x epochs: the same budget for all), and its cells use the
   candidate with the best validation accuracy of its final stage. Each tuning training leaves
   a record (``<records>/tuning/<method>-<candidate>.json``); a recorded one is never trained
   again, even where its run directory is gone. Test is never read here.
3. The grid (``experiment``), 3 seeds: standard fine-tuning, 1 CoT, 5 CoTs, 5 CoTs with
   self-evaluation (two-stage; gold verdicts, not the paper's teacher
   self-evaluation), and the recipe's extra rows (``experiment.extra_rows``: the 1-CoT row of
   the earlier table with only the batching fix). The headline cells run first, all seeds,
   then self-evaluation at the headline N, then the extra rows, then the other Ns.
4. A DSS-style reference: 1 CoT from PaLM-540B on the same training questions.
5. Every finished cell leaves its record under ``<records>/cells/`` (the PaLM reference's under
   ``<records>/palm/cells/``); ``<records>/summary.json`` and the plots
   (``<records>/plots/``) are computed from the records alone (``svamp_summary.py``): per row
   and mode mean, std, seeds, n_test; every paired bootstrap interval; each row's answers
   ranked by their token probability against standard fine-tuning's (AURC, accuracy at 50%
   and 80% coverage); the choice per method; seconds per cell, the machines and the
   protocol's CPU hours. ``--summarise`` also prints the tables (accuracy per row and mode,
   the paired intervals, selective prediction) as Markdown.

    python bench/svamp_repro.py                      # everything (CPU-days on 2 cores)
    python bench/svamp_repro.py --until tune         # only the tuning step
    python bench/svamp_repro.py --seeds 0            # one seed per cell (a first pass)
    python bench/svamp_repro.py --seeds 2 --until grid --set 'experiment.methods=[...]'
        # more cells on another machine: the tuning records give the choices, the new cells
        # add records, and the summary is computed from all of them
    python bench/svamp_repro.py --summarise          # summary, plots, Markdown tables: records only
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path
from typing import Any

from adoption import adopt_student  # bench/ is on sys.path when run as a script
from svamp_grid import check_disjoint
from svamp_summary import (
    PALM,
    choose,
    draw_plots,
    protocol_records,
    summary,
    summary_markdown,
    tuning_path,
    tuning_record,
    write_tuning,
)

from mindmirror.cell_records import tables_from_records, train_record
from mindmirror.config import (
    ExperimentConfig,
    Recipe,
    TrainConfig,
    load_recipe,
    recipe_from_dict,
)
from mindmirror.config.evaluation import FIXED_N_METHODS
from mindmirror.config.train import train_settings_differ
from mindmirror.errors import UserError
from mindmirror.experiment import Cell, cell_recipe, experiment, plan_cells
from mindmirror.grid_teaching import link_records, teaching_needed
from mindmirror.progress import quiet_libraries
from mindmirror.records import read_records, write_records
from mindmirror.reporting.figures import SELF_EVAL_METHODS
from mindmirror.reporting.tables import method_num_cots
from mindmirror.rundir import RunDir
from mindmirror.stage_copy import same_records
from mindmirror.student.train import train
from mindmirror.teacher.teach import teach

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "recipes" / "svamp_repro_cpu.yaml"
RECORDS = ROOT / "docs" / "results" / "svamp_repro"
#: Candidate optimisations, the same for every method, tried in this order; each is a set of
#: ``train:`` settings. Full fine-tuning (LoRA scored last on validation in the earlier table),
#: learning rate x epochs: validation was still rising at epoch 3 there.
CANDIDATES: dict[str, dict[str, Any]] = {
    "full-lr1e-4-e3": {"lora": False, "learning_rate": 1e-4, "epochs": 3},
    "full-lr1e-4-e5": {"lora": False, "learning_rate": 1e-4, "epochs": 5},
    "full-lr2e-4-e3": {"lora": False, "learning_rate": 2e-4, "epochs": 3},
    "full-lr2e-4-e5": {"lora": False, "learning_rate": 2e-4, "epochs": 5},
}


def log(message: str) -> None:
    """A progress line on stderr with the time of day."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def tuned_num_cots(method: str, cfg: ExperimentConfig, headline: int) -> int:
    """The N a method is tuned at: the headline N (``train.num_cots``) where it runs at it,
    else its largest."""
    ns = method_num_cots(method, cfg)
    return headline if headline in ns else ns[-1]


def recorded_tuning(
    folder: Path, method: str, candidate: str, train: TrainConfig, records_sha256: str
) -> bool:
    """Whether this tuning training is recorded, made with these ``train:`` settings and
    teacher records (their hash).

    Raises:
        UserError: a record made by another training (other settings, other teacher records):
            reusing it would choose on another protocol.
    """
    path = tuning_path(folder, method, candidate)
    if not path.is_file():
        return False
    made = json.loads(path.read_text(encoding="utf-8")).get("provenance")
    differ = ["no provenance recorded"]
    if made is not None:
        differ = train_settings_differ(made["train_settings"], train.model_dump(mode="json"))
        if made["records_sha256"] != records_sha256:
            differ.append("teacher records")
    if differ:
        raise UserError(
            f"{path}: made by another training than this run's (differs in: "
            f"{', '.join(differ)}); delete it to tune it again"
        )
    return True


def tune(
    recipe: Recipe, run: RunDir, folder: Path, quiet: bool, only: list[str] | None = None
) -> dict[str, dict[str, Any]]:
    """Train every candidate x method of the grid that has no tuning record yet (seed 0, the
    cell's own configuration, validation only) and record it; return the choice per method.
    ``only``: train these candidates alone (the others' records are read), so that several
    processes or machines can tune at once."""
    methods = recipe.experiment.methods
    records_sha256 = hashlib.sha256(run.records.read_bytes()).hexdigest()
    for method in methods:
        n = tuned_num_cots(method, recipe.experiment, recipe.train.num_cots)
        for name, settings in CANDIDATES.items():
            sub = RunDir(run.root / "tune" / f"{method}-{name}")
            tuned = recipe.experiment.model_copy(
                update={"equal_examples": True, "train_by_method": {method: settings}}
            )
            base = recipe.model_copy(update={"experiment": tuned})
            resolved = cell_recipe(base, Cell(method, n, 0, ("answer",)), sub.root)
            if recorded_tuning(folder, method, name, resolved.train, records_sha256):
                continue
            if only is not None and name not in only:
                continue
            # A tuning folder holding other records (taught again since) is refused: its
            # finished stages would be reused as if trained on these.
            link_records(run, sub)
            log(f"tune {method} (N={n}) {name}")
            train(resolved, sub, quiet=quiet)
            provenance = {
                "train_settings": resolved.train.model_dump(mode="json"),
                "records_sha256": records_sha256,
            }
            record = tuning_record(method, n, name, settings, train_record(sub), provenance)
            write_tuning(folder, record)
            log(f"tune {method} {name}: validation {record['validation']:.3f}")
    chosen, _, _ = choose(folder, methods, CANDIDATES)
    return chosen


def tuned_by_method(chosen: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """``experiment.train_by_method`` of the grid: each method's candidate chosen on validation."""
    return {method: CANDIDATES[choice["candidate"]] for method, choice in chosen.items()}


def adopt_tuned_students(
    run: RunDir, chosen: dict[str, dict[str, Any]], cfg: ExperimentConfig, headline: int
) -> list[str]:
    """Give each method's seed-0 cell the student of its chosen tuning training instead of
    training it again: both train the same settings from the same seed (the tuning trains the
    cell's own recipe), so they are the same training. The student folder is copied without
    its checkpoints and its paths moved to the cell; a cell that has a student keeps it, and
    training checks the copied stages' settings against the cell's as for any resume. Returns
    the cells adopted (a tuning folder on other teacher records is not adopted)."""
    adopted = []
    for method, choice in chosen.items():
        if 0 not in cfg.seeds_by_method.get(method, cfg.seeds):
            continue
        n = tuned_num_cots(method, cfg, headline)
        tuned = RunDir(run.root / "tune" / f"{method}-{choice['candidate']}")
        sub = run.cell(Cell(method, n, 0, ()).name)
        if same_records(tuned.records, run.records) and adopt_student(tuned, sub, tuned.root.name):
            adopted.append(sub.root.name)
    return adopted


def palm_reference(
    recipe: Recipe, run: RunDir, folder: Path, seeds: list[int], quiet: bool
) -> None:
    """1 CoT from PaLM-540B (the DSS files) on the questions the MCC-KD run trains on, with the
    1-CoT method's tuned optimisation; its records go to ``folder``/palm (importing the CoTs
    costs no teacher call)."""
    keep = {r.id for r in read_records(run.records)}
    data = recipe.model_dump(mode="json", by_alias=True)
    data["name"] = f"{recipe.name}-palm"
    data["teacher"].update(
        model="palm-540b",
        num_cots=1,
        **{"import": {"format": "dss", "path": "../shared/data/svamp/dss", "min_match": 0.5}},
    )
    data["experiment"].update(
        methods=["step_by_step"],
        num_cots=[1],
        seeds=seeds,
        extra_rows=[],
        records=str(folder / PALM),
    )
    palm = recipe_from_dict(data)
    sub = RunDir(run.root / PALM)
    if teaching_needed(palm, sub):
        staging = RunDir(run.root / "palm-all")
        teach(palm.model_copy(update={"run_dir": str(staging.root)}), staging, quiet=True)
        write_records(sub.records, [r for r in read_records(staging.records) if r.id in keep])
    palm = palm.model_copy(update={"run_dir": str(sub.root)})
    experiment(palm, sub, quiet=quiet)


def run_order(cfg: ExperimentConfig, headline_n: int) -> list[tuple[str, ExperimentConfig]]:
    """The grid in the order its cells run, each part at every seed before the next part:
    the headline cells (the methods without self-evaluation, each at its headline N:
    ``tuned_num_cots``), then the self-evaluation methods at theirs (the headline table done,
    and the students the own-CoT judge bench builds on), then the extra rows,
    then the whole grid (the other Ns of accuracy against N; the extra rows too where the grid
    has no self-evaluation method). Every part's cells are cells of the grid, and a later part
    skips those an earlier one finished: the issue's claims are done before the extras start.
    """

    def at_headline_n(methods: list[str], extra_rows: list[Any]) -> ExperimentConfig:
        ns = {m: [tuned_num_cots(m, cfg, headline_n)] for m in methods if m not in FIXED_N_METHODS}
        update = {"methods": methods, "num_cots_by_method": ns, "extra_rows": extra_rows}
        return cfg.model_copy(update=update)

    headline = [m for m in cfg.methods if m not in SELF_EVAL_METHODS]
    self_eval = [m for m in cfg.methods if m in SELF_EVAL_METHODS]
    parts = []
    if headline:
        parts.append(("headline", at_headline_n(headline, [])))
    if self_eval:
        parts.append(("claims", at_headline_n(self_eval, [])))
        if cfg.extra_rows:
            parts.append(("extra rows", at_headline_n(self_eval, cfg.extra_rows)))
    return [*parts, ("grid", cfg)]


def planned_cells(recipe: Recipe) -> list[str]:
    """Every cell of the protocol at 3 seeds, the PaLM reference's included."""
    protocol = recipe.experiment.model_copy(update={"seeds": [0, 1, 2]})
    cells = [c.name for c in plan_cells(protocol, explain_target=recipe.train.explain_target)]
    return cells + [f"{PALM}/step_by_step-n1-s{seed}" for seed in protocol.seeds]


def publish(args: argparse.Namespace) -> None:
    """Write the summary and plots from the records alone; the committed recipe (without
    ``--set``) says which cells and tunings the protocol has."""
    protocol = load_recipe(RECIPE)
    command = "python bench/svamp_repro.py " + " ".join(sys.argv[1:])
    methods = protocol.experiment.methods
    records = protocol_records(args.records)
    tables = tables_from_records(records)
    out = summary(
        args.records, records, tables, CANDIDATES, methods, planned_cells(protocol), command
    )
    out_path = args.out or args.records / "summary.json"
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(out, indent=1) + "\n", encoding="utf-8")
    draw_plots(args.records, args.records / "plots", "svamp_repro")
    peak = out["peak_rss_mb_max"]
    log(
        f"wrote {out_path}: {len(out['cells'])} rows, {out['protocol_cpu_hours']} CPU hours, "
        f"{out['protocol_gpu_hours']} GPU process hours, "
        f"training peak memory {'not recorded' if peak is None else f'{peak / 1024:.1f} GB'}"
    )
    print(summary_markdown(tables))


def main() -> None:
    """Prepare, tune, run the grid and the PaLM reference, publish from the records."""
    quiet_libraries()  # no library bars in the logs (transformers' Loading weights)
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run-dir", type=Path, default=Path("runs/svamp_repro"))
    parser.add_argument("--records", type=Path, default=RECORDS)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--until", choices=["tune", "headline", "grid", "all"], default="all")
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument(
        "--candidates",
        nargs="+",
        choices=list(CANDIDATES),
        default=None,
        help="tune only these candidates here (with --until tune: another process or machine "
        "tunes the rest; a method chooses once all are recorded)",
    )
    parser.add_argument("--out", type=Path, default=None, help="default <records>/summary.json")
    parser.add_argument(
        "--summarise",
        action="store_true",
        help="train and score nothing, read no run directory: write the summary and plots "
        "from the records",
    )
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args()
    if args.summarise:
        publish(args)
        return
    if args.candidates is not None and args.until != "tune":
        # The grid would run with the methods left untuned on the recipe's own settings.
        parser.error("--candidates tunes part of the candidates: use it with --until tune")
    recipe = load_recipe(RECIPE, [f"run_dir={args.run_dir}", *args.overrides])
    run = RunDir(recipe.resolved_run_dir())
    log(check_disjoint(recipe, run))
    chosen = tune(recipe, run, args.records, args.quiet, args.candidates)
    log(f"chosen on validation: {chosen}")
    if args.until == "tune":
        return
    grid = recipe_from_dict(
        {
            **recipe.model_dump(mode="json", by_alias=True),
            "experiment": {
                **recipe.experiment.model_dump(mode="json"),
                "seeds": args.seeds,
                "equal_examples": True,
                "train_by_method": tuned_by_method(chosen),
                "records": str(args.records),
            },
        }
    )
    adopted = adopt_tuned_students(run, chosen, grid.experiment, recipe.train.num_cots)
    if adopted:
        log(f"seed-0 cells given their tuning training's student: {', '.join(adopted)}")
    parts = run_order(grid.experiment, recipe.train.num_cots)
    if args.until == "headline":
        parts = [(name, cfg) for name, cfg in parts if name == "headline"]
        if not parts:
            parser.error("--until headline: the methods set have no headline cells")
    tables = {}
    for name, cfg in parts:
        done = experiment(grid.model_copy(update={"experiment": cfg}), run, quiet=args.quiet)
        tables[name] = done["markdown"]
        log(f"{name} cells done")
    if args.until in ("grid", "all"):
        print(tables["grid"])
    if args.until == "all":
        palm_reference(grid, run, args.records, args.seeds, args.quiet)
    publish(args)


if __name__ == "__main__":
    try:
        main()
    except UserError as error:  # a user's mistake: one line, no traceback
        sys.exit(f"error: {error}")
