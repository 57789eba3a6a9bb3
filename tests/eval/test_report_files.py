"""`report`: Markdown + self-contained HTML + PNG plots from whatever the run holds."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from mindmirror.errors import UserError
from mindmirror.reporting.metrics import accuracy_interval, aurc, risk_coverage
from mindmirror.reporting.report import main_table, mean_curve, report, risk_coverage_lines
from mindmirror.rundir import RunDir


def metrics(method: str, num_cots: int, seed: int, acc: float) -> dict[str, Any]:
    hits = [i < acc * 20 for i in range(20)]
    conf = [1.0 - i / 20 for i in range(20)]
    curve = risk_coverage(conf, hits)
    mode = {
        **accuracy_interval(hits, resamples=100, seed=seed),
        "parse_rate": 1.0,
        "answers_per_s": 3.0,
        "risk_coverage": curve,
        "aurc": aurc(curve),
    }
    return {
        "name": f"{method}-{num_cots}-{seed}",
        "method": method,
        "num_cots": num_cots,
        "seed": seed,
        "modes": {"cot": mode, "mirror": {**mode, "coverage": 0.8, "selective_accuracy": 0.9}},
        "self_evaluation": {
            "cots": 40,
            "teacher": 0.7,
            "gold": 0.8,
            "auroc": 0.75,
            "teacher_source": ["teacher"],
            "teacher_vs_gold": 0.85,
        },
    }


def write(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))


def test_full_report_with_grid_teacher_and_curves(tmp_path: Path) -> None:
    run = RunDir(tmp_path / "run")
    write(
        run.summary,
        {
            "model": "gpt-3.5",
            "backend": "import",
            "cots": 50,
            "parse_rate": 0.98,
            "teacher_accuracy": 0.8,
            "cost_usd": 1.25,
            "tokens_in": 10,
            "tokens_out": 20,
            "by_split": {"test": {"teacher_accuracy": 0.78}},
        },
    )
    write(
        run.stage("stage2") / "curve.json",
        [
            {"step": 5, "eval_accuracy": 0.2, "eval_loss": 2.0},
            {"step": 10, "eval_accuracy": 0.4, "eval_loss": 1.5},
        ],
    )
    write(run.evaluation / "metrics.json", metrics("mind_mirror", 5, 0, 0.6))
    for method in ("step_by_step", "multi_cot"):
        for n in (1, 5):
            for seed in (0, 1):
                cell = run.root / "cells" / f"{method}-n{n}-s{seed}"
                write(cell / "eval" / "metrics.json", metrics(method, n, seed, 0.3 + 0.05 * n))

    html_path = report(run)

    md = (run.root / "report.md").read_text()
    for title in (
        "Test accuracy (methods x modes)",
        "Accuracy vs number of CoTs",
        "Selective prediction",
        "Teacher vs student",
        "## Teacher",
        "Training (validation)",
    ):
        assert title in md
    assert "| step_by_step | 1 | 0.350 [" in md  # mean of two seeds with its interval
    assert "0.780" in md  # teacher accuracy on test
    # every run's self-evaluation on held-out teacher CoTs, named by method, N and seed
    assert "| multi_cot (N=5), seed 1 | 40 | 0.700 | 0.800 | 0.750 | 0.850 | teacher |" in md
    plots = sorted(p.name for p in run.plots.glob("*.png"))
    assert plots == [
        "accuracy_by_method.png",
        "accuracy_vs_num_cots.png",
        "risk_coverage.png",
        "teacher_vs_student.png",
        "training_curves.png",
    ]
    text = html_path.read_text()
    assert text.count("data:image/png;base64,") == 5
    assert not re.search(r"src=['\"](?!data:)", text)  # self-contained: no external files
    assert "<table>" in text
    assert main_table(run).startswith("| method | N |")


def test_step_by_step_is_the_first_point_of_the_multi_cot_line(tmp_path: Path) -> None:
    """The grid trains 1 CoT as step_by_step and N > 1 as multi_cot: one line from N = 1."""
    run = RunDir(tmp_path / "run")
    for seed in (0, 1):
        for method, n, acc in (("step_by_step", 1, 0.4), ("multi_cot", 5, 0.3)):
            cell = run.root / "cells" / f"{method}-n{n}-s{seed}"
            write(cell / "eval" / "metrics.json", metrics(method, n, seed, acc))
    # A grid nested in the run directory (other teacher data) is not one of its cells.
    nested = run.root / "palm" / "cells" / "step_by_step-n1-s0"
    write(nested / "eval" / "metrics.json", metrics("step_by_step", 1, 0, 0.9))
    report(run)
    md = (run.root / "report.md").read_text()
    section = md.split("Accuracy vs number of CoTs")[1]
    assert "| multi_cot | cot | 1 | step_by_step | 0.400 | 2 |" in section
    assert "| multi_cot | cot | 5 | multi_cot | 0.300 | 2 |" in section
    assert (run.plots / "accuracy_vs_num_cots.png").is_file()


def test_risk_coverage_plots_one_line_per_row_and_mode_averaging_its_seeds() -> None:
    """A 3-seed grid plots the seeds' mean curve per (method, N, mode), not a line per seed."""
    grid = [metrics("multi_cot", 5, seed, acc) for seed, acc in ((0, 0.2), (1, 0.4), (2, 0.6))]
    lines = risk_coverage_lines([*grid, metrics("standard", 1, 0, 0.5)])
    labels = [label for label, _, _ in lines]
    assert labels == [
        "multi_cot (N=5) / cot, mean of 3 seeds",
        "multi_cot (N=5) / mirror, mean of 3 seeds",
        "standard (N=1) / cot",
        "standard (N=1) / mirror",
    ]
    _, xs, ys = lines[0]
    # Full coverage: the mean of the seeds' accuracies; on the surest question every seed is
    # right. At coverage 0.525, halfway between 10 and 11 answered questions, seeds 0-2 are
    # right on 4 and 4, 8 and 8, 10 and 11 of them.
    assert xs[-1] == pytest.approx(1.0) and ys[-1] == pytest.approx(0.4)
    assert xs[0] == pytest.approx(0.05) and ys[0] == pytest.approx(1.0)
    halfway = [(0.4 + 4 / 11) / 2, (0.8 + 8 / 11) / 2, 1.0]
    assert xs[50] == pytest.approx(0.525) and ys[50] == pytest.approx(sum(halfway) / 3)
    single = risk_coverage_lines([grid[0]])
    assert [label for label, _, _ in single] == ["cot", "mirror"]
    assert list(single[0][1]) == [p["coverage"] for p in grid[0]["modes"]["cot"]["risk_coverage"]]


def test_mean_curve_interpolates_curves_of_other_lengths() -> None:
    """Curves of 2 and 4 questions: each read at the same coverages, then averaged."""
    short = [{"coverage": 0.5, "accuracy": 1.0}, {"coverage": 1.0, "accuracy": 0.5}]
    long = [{"coverage": c, "accuracy": 0.0} for c in (0.25, 0.5, 0.75, 1.0)]
    xs, ys = mean_curve([short, long], points=3)
    assert list(xs) == pytest.approx([0.5, 0.75, 1.0])
    assert list(ys) == pytest.approx([0.5, 0.375, 0.25])


def test_sections_without_inputs_are_skipped(tmp_path: Path) -> None:
    run = RunDir(tmp_path / "run")
    write(run.evaluation / "metrics.json", metrics("step_by_step", 1, 0, 0.5))
    report(run)
    md = (run.root / "report.md").read_text()
    assert "Test accuracy" in md and "Selective prediction" in md
    assert "Teacher" not in md and "number of CoTs" not in md and "Training" not in md


def test_nothing_to_report_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="nothing to report"):
        report(RunDir(tmp_path))
    with pytest.raises(UserError, match="not found"):
        report(RunDir(tmp_path / "missing"))
