"""The generic loader: JSONL / CSV / JSON files through a field mapping, and its errors."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from mindmirror.config import TaskConfig
from mindmirror.errors import UserError
from mindmirror.tasks import ChoiceTask, LabelTask, NumberTask, load_task
from mindmirror.tasks.readers import read_rows


def _jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def _cfg(**kw: object) -> TaskConfig:
    return TaskConfig(name="generic", **kw)


def test_jsonl_number_task_with_field_mapping(tmp_path: Path) -> None:
    rows = [{"q": f"What is {i} + {i}?", "a": 2 * i, "uid": f"r{i}"} for i in range(10)]
    _jsonl(tmp_path / "mine.jsonl", rows)
    _jsonl(tmp_path / "held.jsonl", [{"q": "What is 100 + 1?", "a": "#### 101", "uid": "t0"}])
    cfg = _cfg(
        family="number",
        fields={"question": "q", "answer": "a", "id": "uid"},
        files={"train": str(tmp_path / "mine.jsonl"), "test": str(tmp_path / "held.jsonl")},
        val_fraction=0.2,
    )
    task, splits = load_task(cfg, seed=1)
    assert isinstance(task, NumberTask)
    assert [len(splits[s]) for s in ("train", "validation", "test")] == [8, 2, 1]
    assert splits["test"][0].id == "generic-t0"
    assert splits["test"][0].gold == "101"
    assert {e.gold for e in splits["train"] + splits["validation"]} == {
        str(2 * i) for i in range(10)
    }


def test_files_relative_to_task_path_and_csv_choices(tmp_path: Path) -> None:
    with (tmp_path / "train.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["question", "options", "answer", "passage"])
        writer.writerow(["Which is a fruit?", '["stone", "apple", "chair"]', "B", "Food."])
        writer.writerow(["Which is blue?", "sky|grass|sun", "sky", "Colours."])
        writer.writerow(["Which is loud?", "drum|feather|cloud", "0", "Sounds."])
    cfg = _cfg(
        family="choice",
        path=str(tmp_path),
        fields={"choices": "options", "context": "passage"},
        files={"train": "train.csv"},
        val_fraction=0.0,
    )
    task, splits = load_task(cfg, seed=0)
    assert isinstance(task, ChoiceTask)
    first, second, third = splits["train"]
    assert first.choices == ("stone", "apple", "chair")
    assert (
        first.question
        == "Food.\nWhich is a fruit?\nAnswer Choices:\n(a) stone\n(b) apple\n(c) chair"
    )
    assert (first.gold, second.gold) == ("B", "A")
    assert third.gold == "A"  # an index into the choices
    assert first.id == "generic-train-0000"


def test_folder_discovery_and_label_gold(tmp_path: Path) -> None:
    rows = [
        {"question": f"Is {i} even?", "answer": "Yes" if i % 2 == 0 else "no"} for i in range(6)
    ]
    _jsonl(tmp_path / "train.jsonl", rows)
    _jsonl(tmp_path / "dev.jsonl", [{"question": "Is 7 even?", "answer": 1}])
    (tmp_path / "notes.jsonl").write_text("ignored\n")
    task, splits = load_task(_cfg(family="label", labels=["yes", "no"], path=str(tmp_path)), 0)
    assert isinstance(task, LabelTask)
    assert [e.gold for e in splits["train"]] == ["yes", "no"] * 3
    assert splits["validation"][0].gold == "no"  # an index into the label list
    assert splits["validation"][0].split == "validation"


def test_a_single_file_is_train(tmp_path: Path) -> None:
    path = _jsonl(
        tmp_path / "all.jsonl", [{"question": f"{i}+1?", "answer": i + 1} for i in range(5)]
    )
    _, splits = load_task(_cfg(family="equation", path=str(path), val_fraction=0.2), 0)
    assert (len(splits["train"]), len(splits["validation"]), len(splits["test"])) == (4, 1, 0)


def test_null_answer_means_no_gold(tmp_path: Path) -> None:
    _jsonl(tmp_path / "train.jsonl", [{"question": "1+1?", "answer": 2}])
    _jsonl(tmp_path / "test.jsonl", [{"question": "2+2?", "answer": None}])
    _, splits = load_task(_cfg(family="number", path=str(tmp_path), val_fraction=0.0), 0)
    assert splits["test"][0].gold is None


def test_missing_file_names_the_path(tmp_path: Path) -> None:
    cfg = _cfg(family="number", files={"train": str(tmp_path / "absent.jsonl")})
    with pytest.raises(UserError, match=r"absent.jsonl"):
        load_task(cfg, 0)
    with pytest.raises(UserError, match=r"task.path not found"):
        load_task(_cfg(family="number", path=str(tmp_path / "nothing")), 0)
    with pytest.raises(UserError, match=r"needs task.files, task.path or task.hub_id"):
        load_task(_cfg(family="number"), 0)


def test_row_missing_a_mapped_field_names_file_row_and_field(tmp_path: Path) -> None:
    path = _jsonl(tmp_path / "train.jsonl", [{"text": "1+1?", "gold": 2}, {"text": "2+2?"}])
    cfg = _cfg(family="number", fields={"question": "text", "answer": "gold"}, path=str(path))
    with pytest.raises(UserError) as caught:
        load_task(cfg, 0)
    assert str(caught.value).startswith(f"{path} row 2: row has no field 'gold'")


@pytest.mark.parametrize(
    ("family", "extra", "answer", "match"),
    [
        ("number", {}, "lots", "not a number"),
        ("label", {"labels": ["yes", "no"]}, "maybe", "not one of"),
        ("choice", {"fields": {"choices": "c"}}, "Z", "neither a choice letter"),
    ],
)
def test_answer_the_family_cannot_read(
    tmp_path: Path, family: str, extra: dict, answer: str, match: str
) -> None:
    path = _jsonl(tmp_path / "train.jsonl", [{"question": "q?", "answer": answer, "c": ["x", "y"]}])
    with pytest.raises(UserError, match=match):
        load_task(_cfg(family=family, path=str(path), **extra), 0)


def test_choice_task_needs_a_choices_column(tmp_path: Path) -> None:
    path = _jsonl(tmp_path / "train.jsonl", [{"question": "q?", "answer": "A"}])
    with pytest.raises(UserError, match=r"fields.choices"):
        load_task(_cfg(family="choice", path=str(path)), 0)


def test_duplicate_ids_and_unknown_split_names(tmp_path: Path) -> None:
    path = _jsonl(tmp_path / "train.jsonl", [{"question": "a?", "answer": 1, "k": 1},
                                             {"question": "b?", "answer": 2, "k": 1}])  # fmt: skip
    with pytest.raises(UserError, match="ids must be unique"):
        load_task(_cfg(family="number", path=str(path), fields={"id": "k"}), 0)
    with pytest.raises(UserError, match="unknown split 'holdout'"):
        load_task(_cfg(family="number", files={"holdout": str(path)}), 0)


def test_a_row_nested_past_the_json_limit_is_a_user_error(tmp_path: Path) -> None:
    deep = "[" * 100000 + "]" * 100000
    lines = tmp_path / "rows.jsonl"
    lines.write_text('{"question": "q", "answer": "1"}\n{"question": ' + deep + "}\n")
    with pytest.raises(UserError, match=r"rows.jsonl:2: JSON nested too deeply"):
        read_rows(lines)
    array = tmp_path / "rows.json"
    array.write_text("[" + deep + "]")
    with pytest.raises(UserError, match=r"rows.json: JSON nested too deeply"):
        read_rows(array)
