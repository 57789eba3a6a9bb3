"""Split properties: disjoint by question, seeded, deterministic, limited, whitespace-normalized."""

from __future__ import annotations

import json
from pathlib import Path

from mindmirror.config import TaskConfig
from mindmirror.tasks import load_task, load_task_with_report
from mindmirror.tasks.base import Example
from mindmirror.tasks.splits import clean_question, prepare_splits, question_key
from tests.conftest import shared_path

SPLITS = ("train", "validation", "test")


def _keys(examples: list[Example]) -> set[str]:
    return {question_key(e.question) for e in examples}


def _ex(i: int, split: str, question: str) -> Example:
    return Example(f"x-{split}-{i}", split, question, str(i))


def test_question_normalization() -> None:
    assert clean_question("  A  has\t2.  \n\n  How many? \n") == "A has 2.\nHow many?"
    assert question_key("A has 2.\nHow  many?") == question_key("a has 2. how many?")


def test_duplicates_and_cross_split_overlap_are_dropped_and_counted() -> None:
    raw = {
        "train": [_ex(0, "train", "Q one?"), _ex(1, "train", "q  ONE?"), _ex(2, "train", "Q two?"),
                  _ex(3, "train", "Q test?"), _ex(4, "train", "Q val?"), _ex(5, "train", "Q 5?")],
        "validation": [_ex(0, "validation", "Q val?")],
        "test": [_ex(0, "test", "Q test?"), _ex(1, "test", "Q TEST?")],
    }  # fmt: skip
    splits, report = prepare_splits(raw, seed=0, val_fraction=0.5)
    assert [e.id for e in splits["train"]] == ["x-train-0", "x-train-2", "x-train-5"]
    assert [e.id for e in splits["test"]] == ["x-test-0"]
    assert report.duplicates_dropped == {"test": 1, "validation": 0, "train": 1}
    assert report.overlap_dropped == {"test": 0, "validation": 0, "train": 2}
    assert report.validation_carved == 0  # the dataset has its own validation split
    assert "duplicates dropped" in report.line()


def test_validation_is_carved_by_seed_and_keeps_source_order() -> None:
    raw = {"train": [_ex(i, "train", f"Question {i}?") for i in range(50)]}
    a, report = prepare_splits(raw, seed=3, val_fraction=0.2)
    b, _ = prepare_splits(raw, seed=3, val_fraction=0.2)
    c, _ = prepare_splits(raw, seed=4, val_fraction=0.2)
    assert a == b
    assert a["validation"] != c["validation"]
    assert len(a["validation"]) == report.validation_carved == 10
    assert all(e.split == "validation" for e in a["validation"])
    ids = [int(e.id.rsplit("-", 1)[1]) for e in a["validation"]]
    assert ids == sorted(ids)
    assert _keys(a["train"]).isdisjoint(_keys(a["validation"]))
    assert len(a["train"]) + len(a["validation"]) == 50
    assert a["test"] == []


def test_tiny_train_keeps_at_least_one_training_question() -> None:
    raw = {"train": [_ex(0, "train", "Only?"), _ex(1, "train", "Two?")]}
    splits, _ = prepare_splits(raw, seed=0, val_fraction=0.9)
    assert (len(splits["train"]), len(splits["validation"])) == (1, 1)
    splits, _ = prepare_splits({"train": raw["train"][:1]}, seed=0, val_fraction=0.5)
    assert (len(splits["train"]), len(splits["validation"])) == (1, 0)


def test_limits_take_the_first_n_after_the_split() -> None:
    cfg = TaskConfig(name="arith", num_examples=100, limit={"train": 7, "test": 3})
    _, full = load_task(TaskConfig(name="arith", num_examples=100), seed=0)
    _, limited, report = load_task_with_report(cfg, seed=0)
    assert limited["train"] == full["train"][:7]
    assert limited["test"] == full["test"][:3]
    assert limited["validation"] == full["validation"]
    assert report.limited == {"train": len(full["train"]) - 7, "test": len(full["test"]) - 3}
    assert report.sizes == {"train": 7, "validation": len(full["validation"]), "test": 3}


def test_real_svamp_splits_are_disjoint_deterministic_and_stable() -> None:
    path = str(shared_path("svamp", "SVAMP.json"))
    _, a = load_task(TaskConfig(name="svamp", path=path), seed=0)
    _, b = load_task(TaskConfig(name="svamp", path=path), seed=0)
    _, c = load_task(TaskConfig(name="svamp", path=path), seed=1)
    assert a == b
    assert a["validation"] != c["validation"] and a["test"] == c["test"]
    for one in SPLITS:
        for other in SPLITS:
            if one < other:
                assert _keys(a[one]).isdisjoint(_keys(a[other]))
    ids = [e.id for s in SPLITS for e in a[s]]
    assert len(ids) == len(set(ids)) == 1000
    # An example keeps its id whichever split the seed puts it in.
    by_id_a = {e.id: e.question for s in SPLITS for e in a[s]}
    by_id_c = {e.id: e.question for s in SPLITS for e in c[s]}
    assert by_id_a == by_id_c


def test_real_mcc_kd_has_no_question_in_two_splits() -> None:
    _, splits, report = load_task_with_report(
        TaskConfig(name="svamp", path=str(shared_path("svamp", "mcc_kd"))), seed=0
    )
    for one in SPLITS:
        for other in SPLITS:
            if one < other:
                assert _keys(splits[one]).isdisjoint(_keys(splits[other]))
    assert (
        sum(report.sizes.values())
        + sum(report.overlap_dropped.values())
        + sum(report.duplicates_dropped.values())
        == 1000
    )


def test_train_questions_also_in_test_are_dropped(tmp_path: Path) -> None:
    rows = [{"input": f"Sam has {i} apples.\nHow many?", "label": f"( {i}.0 )"} for i in range(6)]
    (tmp_path / "svamp_train.json").write_text("\n".join(json.dumps(r) for r in rows))
    test = [{"input": "Sam  has 2 apples. How many?", "label": "( 2.0 )"}]
    (tmp_path / "svamp_test.json").write_text(json.dumps(test[0]))
    _, splits, report = load_task_with_report(
        TaskConfig(name="svamp", path=str(tmp_path), val_fraction=0.0), seed=0
    )
    assert [e.id for e in splits["train"]] == [f"svamp-train-000{i}" for i in (0, 1, 3, 4, 5)]
    assert report.overlap_dropped["train"] == 1
