"""bench/engine_fidelity.py: one cell scored through llama.cpp and again through transformers."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

import pytest

from mindmirror.errors import UserError
from mindmirror.evaluate import evaluate
from mindmirror.rundir import RunDir
from mindmirror.student.model import save_student
from tests.eval.conftest import Fitted, write_run

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
import engine_fidelity


def _engine(correct: list[bool], samples: list[list[list[Any]]], seconds: float) -> dict[str, Any]:
    ids = [f"q{i}" for i in range(len(correct))]
    answers = [str(int(c)) for c in correct]
    greedy = {"ids": ids, "correct": correct, "answers": answers, "seconds": seconds / 10}
    mirror = {"ids": ids, "correct": correct, "answers": answers, "seconds": seconds}
    return {"modes": {"answer": greedy, "mirror": {**mirror, "samples": samples}}}


def test_a_path_that_answers_otherwise_falls_outside_the_interval() -> None:
    right = [[[0.9, True], [0.2, False]]]
    wrong = [[[0.1, True], [0.8, False]]]  # a judge that ranks backwards
    reference = _engine([True] * 20 + [False] * 20, right * 40, seconds=400.0)
    same = {"engines": {"llama_cpp": reference, "transformers": reference}}
    compared = engine_fidelity.compare(same, resamples=200)
    for entry in compared["modes"].values():
        assert entry["inside"] and entry["same_answer"] == 1.0 and entry["paired"]["diff"] == 0
    assert compared["modes"]["mirror"]["own_cot_auroc"]["inside"]
    assert compared["time_ratio"] == 1.0
    fast = _engine([True] * 5 + [False] * 35, wrong * 40, seconds=100.0)
    other = {"engines": {"llama_cpp": fast, "transformers": reference}}
    compared = engine_fidelity.compare(other, resamples=200)
    answer = compared["modes"]["answer"]
    assert answer["inside"] is False and answer["paired"]["high"] < 0
    assert answer["same_answer"] == pytest.approx(25 / 40)
    auroc = compared["modes"]["mirror"]["own_cot_auroc"]
    assert (auroc["llama_cpp"], auroc["transformers"], auroc["inside"]) == (0.0, 1.0, False)
    assert compared["time_ratio"] == pytest.approx(0.25)
    # Sampling once and two judging passes: 10 + 100 + (150 - 100) + (130 - 100) seconds.
    timed = {
        "answer": {**fast["modes"]["answer"], "seconds": 10.0},
        "vote": {**fast["modes"]["answer"], "seconds": 100.0},
        "mirror": {**fast["modes"]["mirror"], "seconds": 150.0},
        "mirror_final": {**fast["modes"]["mirror"], "seconds": 130.0},
    }
    both = {"engines": {name: {"modes": timed} for name in ("llama_cpp", "transformers")}}
    assert engine_fidelity.compare(both, resamples=200)["seconds"]["llama_cpp"] == 190.0
    fast["modes"]["answer"]["ids"] = fast["modes"]["answer"]["ids"][::-1]
    with pytest.raises(UserError, match="different questions"):
        engine_fidelity.compare(other, resamples=0)


@pytest.mark.server
@pytest.mark.skipif(
    importlib.util.find_spec("llama_cpp") is None,
    reason="needs llama-cpp-python[server] (pip install -e '.[embedded]')",
)
def test_a_cell_scored_again_with_transformers_agrees(
    tmp_path: Path, fitted_causal: Fitted
) -> None:
    recipe, cell = write_run(tmp_path, fitted_causal)
    # A two-stage cell: its self-evaluation stage judges too (`mirror_final` beside `mirror`).
    student = fitted_causal.student
    save_student(student.model, student.tokenizer, cell.stage("evaluation") / "best", kind="causal")
    stages = {name: {"best": f"student/{name}/best"} for name in ("evaluation", "stage2")}
    summary = {"final": "student/stage2/best", "stages": stages}
    (cell.student / "train.json").write_text(json.dumps(summary))
    folder = RunDir(tmp_path / "fidelity")
    with pytest.raises(UserError, match="no trained and scored cell"):
        engine_fidelity.score_with_transformers(cell, folder, quiet=True)
    evaluate(recipe, cell, ["answer", "vote", "mirror"], quiet=True)
    engine_fidelity.score_with_transformers(cell, folder, quiet=True)
    result = {
        "engines": {
            "llama_cpp": engine_fidelity.engine_outcomes(cell),
            "transformers": engine_fidelity.engine_outcomes(folder),
        }
    }
    assert result["engines"]["transformers"]["engine"] == "transformers"
    assert result["engines"]["llama_cpp"]["engine"] == "llama_cpp"
    compared = engine_fidelity.compare(result, resamples=200)
    assert set(compared["modes"]) == {"answer", "vote", "mirror", "mirror_final"}
    for mode, entry in compared["modes"].items():
        assert entry["inside"] and entry["same_answer"] == 1.0, mode
    for mode in ("mirror", "mirror_final"):
        own = compared["modes"][mode]["own_cot_auroc"]
        assert own["llama_cpp"] == pytest.approx(own["transformers"], abs=0.01)
    # Each path's seconds: the greedy mode, the sampling (vote's) once, each judging pass.
    seconds = {m: e["seconds"] for m, e in result["engines"]["transformers"]["modes"].items()}
    judging = [seconds[m] - seconds["vote"] for m in ("mirror", "mirror_final")]
    assert compared["seconds"]["transformers"] == pytest.approx(
        seconds["answer"] + seconds["vote"] + sum(judging)
    )
    # The student is the cell's own (linked, not copied), and a finished scoring is kept.
    assert folder.student.resolve() == cell.student.resolve()
    metrics = (folder.evaluation / "metrics.json").read_text()
    engine_fidelity.score_with_transformers(cell, folder, quiet=True)
    assert (folder.evaluation / "metrics.json").read_text() == metrics
    # A cell scored again since: its transformers scoring is made again too.
    cell_metrics = cell.evaluation / "metrics.json"
    cell_metrics.write_text(json.dumps(json.loads(cell_metrics.read_text())))
    (folder.evaluation / "metrics.json").write_text("{}")
    engine_fidelity.score_with_transformers(cell, folder, quiet=True)
    assert json.loads((folder.evaluation / "metrics.json").read_text())["engine"] == "transformers"
    # A cell scored by transformers has nothing to compare.
    with pytest.raises(UserError, match="not llama_cpp"):
        engine_fidelity.score_with_transformers(folder, RunDir(tmp_path / "again"), quiet=True)
    assert json.loads(metrics)["engine"] == "transformers"
