"""Pure metric functions: bootstrap interval, risk-coverage, AURC, AUROC, agreement."""

from __future__ import annotations

import pytest

from mindmirror.errors import UserError
from mindmirror.evaluate import check_modes
from mindmirror.reporting.metrics import (
    accuracy_interval,
    agreement,
    aurc,
    auroc,
    mode_metrics,
    risk_coverage,
)
from mindmirror.student.infer import Prediction


def test_bootstrap_interval_is_seeded_and_brackets_the_accuracy() -> None:
    hits = [True] * 30 + [False] * 10
    first = accuracy_interval(hits, resamples=500, seed=1)
    assert first == accuracy_interval(hits, resamples=500, seed=1)
    assert first["accuracy"] == 0.75
    assert first["low"] < 0.75 < first["high"]
    assert first["low"] > 0.55 and first["high"] < 0.9
    assert accuracy_interval([], resamples=10)["n"] == 0
    assert accuracy_interval([True, False], resamples=0)["low"] == 0.5


def test_risk_coverage_ranks_by_confidence() -> None:
    curve = risk_coverage([0.9, 0.1, 0.8, 0.2], [True, False, True, True])
    assert [p["coverage"] for p in curve] == [0.25, 0.5, 0.75, 1.0]
    assert [p["accuracy"] for p in curve] == [1.0, 1.0, 1.0, 0.75]
    assert aurc(curve) == pytest.approx(0.25 / 4)
    # The worst ranking has a larger area than the best one.
    worst = risk_coverage([0.1, 0.9, 0.2, 0.8], [True, False, True, True])
    assert aurc(worst) > aurc(curve)


def test_auroc_and_agreement() -> None:
    assert auroc([0.9, 0.8, 0.1], [True, True, False]) == 1.0
    assert auroc([0.5, 0.5], [True, False]) == 0.5
    assert auroc([0.3], [True]) is None
    assert agreement(["correct", "wrong"], ["correct", "correct"]) == 0.5
    assert agreement([], []) is None


def test_mode_metrics_for_mirror_report_coverage() -> None:
    preds = [
        Prediction("mirror", "q1", "7", "7", 0.9),
        Prediction("mirror", "q2", "5", "5", 0.1, abstained=True),
        Prediction("mirror", "q3", None, None, 0.0, abstained=True),
    ]
    m = mode_metrics(preds, [True, False, False], seconds=2.0, resamples=100)
    assert m["accuracy"] == pytest.approx(1 / 3)
    assert m["parse_rate"] == pytest.approx(2 / 3)
    assert m["answers_per_s"] == 1.5
    assert m["coverage"] == pytest.approx(1 / 3)
    assert m["selective_accuracy"] == 1.0
    assert m["risk_coverage"][0] == {"coverage": pytest.approx(1 / 3), "accuracy": 1.0}


def test_unknown_mode_is_a_user_error() -> None:
    with pytest.raises(UserError, match="unknown mode 'mirrror'"):
        check_modes(["answer", "mirrror"])


def test_risk_coverage_averages_over_tied_confidences() -> None:
    from mindmirror.reporting.metrics import aurc, risk_coverage, selective_accuracy

    confidence = [0.9, 0.5, 0.5, 0.5, 0.1]
    correct = [True, True, False, False, True]
    curve = risk_coverage(confidence, correct)
    # The three tied questions (1 of 3 right) share their hits evenly, in any input order.
    assert [round(p["accuracy"], 4) for p in curve] == [1.0, 0.6667, 0.5556, 0.5, 0.6]
    for order in ([2, 3, 1, 0, 4], [4, 3, 2, 1, 0]):
        shuffled = risk_coverage([confidence[i] for i in order], [correct[i] for i in order])
        assert shuffled == curve
    assert aurc(curve) == sum(1 - p["accuracy"] for p in curve) / 5
    assert selective_accuracy(curve, 0.5) == curve[2]["accuracy"]  # ceil(2.5) = 3 answered
    assert selective_accuracy(curve, 0.8) == curve[3]["accuracy"]
    assert selective_accuracy([], 0.5) is None


def test_paired_difference_cancels_question_difficulty() -> None:
    from mindmirror.reporting.metrics import paired_difference

    first = [0.0, 1.0, 0.0, 1.0] * 25
    second = [1.0, 1.0, 0.0, 1.0] * 25  # right on every question `first` is, and 25 more
    diff = paired_difference(first, second, resamples=500, seed=0)
    assert diff["diff"] == 0.25 and diff["n"] == 100
    assert 0.15 < diff["low"] <= 0.25 <= diff["high"] < 0.35
    same = paired_difference(first, first, resamples=500)
    assert (same["diff"], same["low"], same["high"]) == (0.0, 0.0, 0.0)
    with pytest.raises(ValueError, match="same questions"):
        paired_difference([1.0], [1.0, 0.0])


def test_float_noise_never_decides_that_an_interval_excludes_zero() -> None:
    from mindmirror.reporting.grid_markdown import paired_lines
    from mindmirror.reporting.metrics import paired_difference

    # 0.1 + 0.2 - 0.3 is 5.6e-17 in floats: the exact difference is 0, and so must the report be.
    for first, second in [([0.0, 0.0, 0.3], [0.1, 0.2, 0.0]), ([0.1, 0.2, 0.0], [0.0, 0.0, 0.3])]:
        diff = paired_difference(first, second, resamples=0)
        assert (diff["diff"], diff["low"], diff["high"]) == (0.0, 0.0, 0.0)
        pair = {"first": "a", "second": "b", "mode": "answer", "n": 3, **diff}
        line = paired_lines([{**pair, "first_seeds": [0], "second_seeds": [0]}])
        assert "*" not in line[-1] and "-0.000" not in line[-1]


def test_rows_that_ran_different_seeds_are_also_compared_on_the_seeds_both_ran() -> None:
    from mindmirror.reporting.grid_markdown import paired_lines
    from mindmirror.reporting.tables import paired_differences

    def row(label: str, seeds: list[int]) -> dict[str, object]:
        modes = {"answer": {"judge": None}}
        return {
            "label": label,
            "method": label,
            "num_cots": 1,
            "variant": "",
            "note": None,
            "seeds": seeds,
            "modes": modes,
        }

    def right(*hits: bool) -> dict[str, dict[str, bool]]:
        return {"answer": {f"q{i}": hit for i, hit in enumerate(hits)}}

    # Row a's seed 0 gets both questions, its seeds 1 and 2 neither; row b ran seed 0 only
    # (its seed 1 left no predictions, so it counts for nothing).
    a = {0: right(True, True), 1: right(False, False), 2: right(False, False)}
    b = {0: right(True, False), 1: {}}
    scores = {("a", 1, ""): a, ("b", 1, ""): b, ("c", 1, ""): {5: right(True, True)}}
    pairs = paired_differences(
        [row("a", [0, 1, 2]), row("b", [0, 1]), row("c", [5])], scores, resamples=0
    )
    a_b = [p for p in pairs if (p["first"], p["second"]) == ("a", "b")]
    # Against a's mean over 3 seeds b looks better (+1/6); on the same seed it is worse (-1/2).
    assert [(p["first_seeds"], p["second_seeds"], round(p["diff"], 4)) for p in a_b] == [
        ([0, 1, 2], [0], 0.1667),
        ([0], [0], -0.5),
    ]
    # No seed in common: only the interval over each row's own seeds.
    assert [p["first_seeds"] for p in pairs if p["second"] == "c"] == [[0, 1, 2], [0]]
    lines = paired_lines(a_b)
    assert lines[2].startswith("| b − a | answer | 0 / 0, 1, 2 | +0.167")
    assert lines[3].startswith("| b − a | answer | 0 | -0.500")


def test_mirror_modes_are_paired_by_judge() -> None:
    from mindmirror.reporting.tables import paired_differences

    staged = {
        "mirror": {"judge": "stage-1 student"},
        "mirror_final": {"judge": "the student itself"},
    }
    joint = {"mirror": {"judge": "the student itself"}}
    rows = [
        {
            "label": label,
            "method": label,
            "num_cots": 5,
            "variant": "",
            "note": None,
            "seeds": [0],
            "modes": m,
        }
        for label, m in (("staged", staged), ("joint", joint))
    ]
    hits = {"q0": True, "q1": False}
    scores = {
        ("staged", 5, ""): {0: {"mirror": {"q0": False, "q1": False}, "mirror_final": hits}},
        ("joint", 5, ""): {0: {"mirror": hits}},
    }
    # The joint student judges itself: it is compared with the staged student judging itself.
    (pair,) = paired_differences(rows, scores, resamples=0)
    assert (pair["mode"], pair["diff"]) == ("mirror / mirror_final", 0.0)


def test_correctness_reads_predictions_whose_texts_hold_line_separators(tmp_path) -> None:
    import json

    from mindmirror.cell_records import read_correctness

    rows = [
        {"mode": "cot", "id": "q-1", "correct": True, "cot": "4.\u2028The answer is 4."},
        {"mode": "cot", "id": "q-2", "correct": False, "cot": "no\x1canswer"},
    ]
    path = tmp_path / "predictions.jsonl"
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    assert read_correctness(path) == {"cot": {"q-1": True, "q-2": False}}
