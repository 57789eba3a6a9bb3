"""`bench/svamp_repro.py --add-to-published`: new seeds added to a published summary whose run
directory is gone give exactly the row that all seeds together would give."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from mindmirror.errors import UserError
from mindmirror.experiment import Cell
from mindmirror.rundir import RunDir
from mindmirror.tables import Row, row_results

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
from svamp_repro import add_to_published, combine_seeds, published_entry

ROW = Row("1 CoT with self-evaluation", "mind_mirror", 1)
MODES = ("answer", "vote", "mirror")


def _metrics(seed: int, mirror_aurc: bool = True) -> dict[str, Any]:
    """A cell's metrics.json with figures that differ by seed (``mirror_aurc=False``: a figure
    the seed did not measure)."""
    base = 0.3 + 0.07 * seed**2  # not linear in the seed: an unweighted mean would fail
    modes: dict[str, Any] = {}
    for k, mode in enumerate(MODES):
        modes[mode] = {
            "accuracy": base - 0.05 * k,
            "aurc": 0.5 - 0.03 * seed + 0.01 * k,
            "at_coverage": {"0.8": base + 0.04, "0.5": base + 0.1 * (seed + 1)},
            "seconds": 10.0 + seed,
            "risk_coverage": [{"coverage": 1.0, "accuracy": base}],
        }
    if not mirror_aurc:
        modes["mirror"]["aurc"] = None
    modes["mirror"].update(
        judge="stage-1 student",
        coverage=0.9 - 0.1 * seed,
        own_cots={"samples": 1000, "correct_share": 0.2, "auroc": 0.4 + 0.05 * seed**2},
    )
    return {"questions": 200, "modes": modes}


def _cell(seed: int) -> Cell:
    return Cell("mind_mirror", 1, seed, MODES)


def _flat(entry: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a.b": value}`` for a nested entry (pytest.approx compares flat mappings only)."""
    out: dict[str, Any] = {}
    for key, value in entry.items():
        if isinstance(value, dict):
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _published(seeds: list[int]) -> dict[str, Any]:
    row = row_results(ROW, {_cell(s): _metrics(s) for s in seeds})
    return {m: published_entry(e, seeds, 200) for m, e in row["modes"].items()}


@pytest.mark.parametrize(("old", "new"), [([0, 1], [2]), ([0, 2], [1]), ([1], [0, 2])])
def test_added_seeds_give_the_row_of_all_seeds(old: list[int], new: list[int]) -> None:
    published = _published(old)
    row = row_results(ROW, {_cell(s): _metrics(s) for s in new})
    every = _published(sorted(old + new))
    for mode in MODES:
        combined = combine_seeds(published[mode], {**row["modes"][mode], "seeds": row["seeds"]})
        flat, expected = _flat(combined), _flat(every[mode])
        assert flat.keys() == expected.keys()
        for key, value in expected.items():
            assert flat[key] == (value if value is None else pytest.approx(value)), key
        assert combined["seeds"] == [0, 1, 2]


def test_a_figure_one_side_did_not_measure_is_the_other_side_s() -> None:
    published = _published([0, 1])
    row = row_results(ROW, {_cell(2): _metrics(2, mirror_aurc=False)})
    combined = combine_seeds(published["mirror"], {**row["modes"]["mirror"], "seeds": [2]})
    assert combined["aurc"] == pytest.approx(published["mirror"]["aurc"])
    assert combined["own_cots_auroc"] == pytest.approx((0.4 + 0.45 + 0.6) / 3)


def test_a_published_seed_is_refused() -> None:
    published = _published([0, 1])
    row = row_results(ROW, {_cell(1): _metrics(1)})
    with pytest.raises(UserError, match=r"seeds \[1\] are already published"):
        combine_seeds(published["answer"], {**row["modes"]["answer"], "seeds": [1]})


def _run_with_seed_2(tmp_path: Path) -> tuple[RunDir, str]:
    """A run directory holding the finished files of seed 2 that the summary reads."""
    run = RunDir(tmp_path / "run")
    folder = run.cell(_cell(2).name)
    folder.evaluation.mkdir(parents=True)
    folder.student.mkdir(parents=True)
    (folder.evaluation / "metrics.json").write_text(json.dumps(_metrics(2)))
    stages = {
        "evaluation": {"train_seconds": 900.0, "best_step": 189},
        "reasoning": {"train_seconds": 1400.0, "best_step": 120},
    }
    (folder.student / "train.json").write_text(json.dumps({"stages": stages}))
    return run, folder.root.name


def _result(row: Row) -> dict[str, Any]:
    """What ``experiment`` returns for seed 2 of ``row``."""
    results = {Cell(row.method, row.num_cots, 2, MODES): _metrics(2)}
    return {
        "cells": [{"cell": _cell(2).name, "method": row.method, "questions": 200}],
        "rows": [{**row_results(row, results), "note": None}],
    }


def _summary() -> dict[str, Any]:
    return {
        "missing_cells": [_cell(2).name, "other-n1-s2"],
        "cell_seconds": {"mind_mirror-n1-s0": {"train_s": 2000.0, "eval_s": 1000.0}},
        "cells": {ROW.label: _published([0, 1])},
        "paired": [{"first": "a", "second": ROW.label, "mode": "answer", "first_seeds": [0, 1]}],
    }


def test_the_summary_gains_the_cells_and_keeps_its_pairs(tmp_path: Path) -> None:
    run, name = _run_with_seed_2(tmp_path)
    published = _summary()
    out = add_to_published(published, _result(ROW), run, "python bench/x.py", "bf16")
    assert out["missing_cells"] == ["other-n1-s2"]
    assert out["cell_seconds"][name] == {"train_s": 2300.0, "eval_s": 24.0}
    assert out["cells_total_s"] == 5324.0
    answer = out["cells"][ROW.label]["answer"]
    assert answer["seeds"] == [0, 1, 2]
    assert answer["mean"] == pytest.approx(_published([0, 1, 2])["answer"]["mean"])
    assert out["paired"] == published["paired"]
    assert out["added"][0]["cells"] == [name]
    assert out["added"][0]["precision"] == "bf16"
    added = out["added_cells"][name]
    assert added["modes"]["mirror"]["own_cots"]["auroc"] == pytest.approx(0.6)
    assert "risk_coverage" not in added["modes"]["answer"]
    assert added["stages"]["reasoning"]["best_step"] == 120


def test_a_row_the_summary_does_not_have_is_refused(tmp_path: Path) -> None:
    run, _ = _run_with_seed_2(tmp_path)
    other = Row("5 CoTs with self-evaluation", "mind_mirror", 1)
    with pytest.raises(UserError, match="is not a row of the published summary"):
        add_to_published(_summary(), _result(other), run, "python bench/x.py", "bf16")


def test_other_modes_than_the_published_row_s_are_refused(tmp_path: Path) -> None:
    run, _ = _run_with_seed_2(tmp_path)
    published = _summary()
    del published["cells"][ROW.label]["vote"]
    with pytest.raises(UserError, match="was published with modes"):
        add_to_published(published, _result(ROW), run, "python bench/x.py", "bf16")


def test_other_test_questions_than_the_published_row_s_are_refused(tmp_path: Path) -> None:
    run, _ = _run_with_seed_2(tmp_path)
    published = _summary()
    published["cells"][ROW.label]["answer"]["n_test"] = 150
    with pytest.raises(UserError, match="published on 150 test questions"):
        add_to_published(published, _result(ROW), run, "python bench/x.py", "bf16")


def test_no_finished_cell_is_refused(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="no finished cell to add"):
        add_to_published(_summary(), {"cells": [], "rows": []}, RunDir(tmp_path), "x", "bf16")
