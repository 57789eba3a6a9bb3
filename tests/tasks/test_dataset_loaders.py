"""Built-in loaders on the real files in ../shared/data, and their errors on bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mindmirror.config import TaskConfig, recipe_from_dict
from mindmirror.errors import UserError
from mindmirror.tasks import ChoiceTask, EquationTask, LabelTask, NumberTask, load_task
from mindmirror.tasks.loaders import gsm8k_gold, render_choices
from mindmirror.tasks.readers import load_hub
from tests.conftest import shared_path


def _load(name: str, path: Path | str, **kw: object) -> dict:
    return load_task(TaskConfig(name=name, path=str(path), **kw), seed=0)[1]


def test_svamp_full_file_reproduces_the_dss_split() -> None:
    full = _load("svamp", shared_path("svamp", "SVAMP.json"), val_fraction=0.0)
    dss = _load("svamp", shared_path("svamp", "dss"), val_fraction=0.0)
    assert [len(full[s]) for s in ("train", "validation", "test")] == [800, 0, 200]
    assert full == dss  # same ids, questions and gold equations, row for row
    first = full["train"][0]
    assert first.id == "svamp-train-0000"
    assert first.question.startswith("Luke scored 84 points")
    assert first.gold == "( 84.0 / 2.0 )"


def test_svamp_folder_holding_the_full_file(tmp_path: Path) -> None:
    (tmp_path / "SVAMP.json").write_bytes(shared_path("svamp", "SVAMP.json").read_bytes())
    assert _load("svamp", tmp_path)["test"][0].id == "svamp-test-0000"


def test_svamp_mcc_kd_folder_keeps_its_own_splits() -> None:
    splits = _load("svamp", shared_path("svamp", "mcc_kd"))
    assert [len(splits[s]) for s in ("train", "validation", "test")] == [700, 150, 150]
    assert splits["validation"][0].id == "svamp-mcckd-dev-0000"
    assert splits["train"][0].gold == "32"
    assert not splits["train"][0].question.endswith("\n")


def test_cqa_dss_and_official_agree() -> None:
    task = ChoiceTask("cqa")
    dss = _load("cqa", shared_path("cqa", "dss"), val_fraction=0.0)
    official = _load("cqa", shared_path("cqa", "commonsenseqa_v1.11"), val_fraction=0.0)
    for split in ("train", "test"):
        by_id = {e.id: e for e in official[split]}
        assert len(by_id) == len(dss[split])
        for example in dss[split][:200]:
            other = by_id[example.id]
            assert (other.question, other.choices) == (example.question, example.choices)
            assert task.is_correct(other.gold, example.gold, example.choices)
    example = dss["train"][0]
    assert example.gold == "D"
    assert example.choices == ("park", "coloring book", "garden center", "math problem", "gravity")
    rendered = "(a) park\n(b) coloring book\n(c) garden center\n(d) math problem\n(e) gravity"
    assert example.question.endswith("Answer Choices:\n" + rendered)


def test_anli_valid_becomes_train_with_carved_validation() -> None:
    splits = _load("anli", shared_path("anli1", "dss"), val_fraction=0.1)
    assert [len(splits[s]) for s in ("train", "validation", "test")] == [900, 100, 1000]
    first = splits["train"][0]
    assert first.gold == "contradiction"
    assert first.question.startswith("Premise: Linguistics is the scientific study")
    assert "\nHypothesis: Form and meaning are the only aspects" in first.question
    assert {e.gold for e in splits["test"]} == {"entailment", "neutral", "contradiction"}


def test_anli_with_a_train_file_uses_valid_as_validation(tmp_path: Path) -> None:
    rows = [{"uid": f"u{i}", "premise": f"p {i}", "hypothesis": "h", "label": i % 3}
            for i in range(6)]  # fmt: skip
    for name, part in (("train", rows[:4]), ("valid", rows[4:5]), ("test", rows[5:])):
        text = "\n".join(json.dumps(r) for r in part)
        (tmp_path / f"anli1_{name}.json").write_text(text)
    splits = _load("anli", tmp_path)
    assert [len(splits[s]) for s in ("train", "validation", "test")] == [4, 1, 1]
    assert splits["validation"][0].id == "anli-u4"


def test_gsm8k_folder_and_file(tmp_path: Path) -> None:
    rows = [
        {"question": "Natalia sold 48 clips in April and half as many in May. How many in all?",
         "answer": "Natalia sold 48/2 = <<48/2=24>>24 clips in May.\n#### 72"},
        {"question": "Weng earns $12 an hour. How much for 1,000 hours?", "answer": "#### 12,000"},
    ]  # fmt: skip
    (tmp_path / "train.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n\n")
    (tmp_path / "test.jsonl").write_text(json.dumps(rows[0] | {"question": "Another one?"}))
    task, splits = load_task(TaskConfig(name="gsm8k", path=str(tmp_path), val_fraction=0.0), 0)
    assert isinstance(task, NumberTask)
    assert [e.gold for e in splits["train"]] == ["72", "12000"]
    assert splits["test"][0].id == "gsm8k-test-0000"
    single = _load("gsm8k", tmp_path / "train.jsonl", val_fraction=0.5)
    assert (len(single["train"]), len(single["validation"]), len(single["test"])) == (1, 1, 0)
    assert gsm8k_gold("so #### 1,234") == "1234"


def test_built_in_families() -> None:
    folder = shared_path("anli1", "dss")
    assert isinstance(load_task(TaskConfig(name="anli", path=str(folder)), 0)[0], LabelTask)
    assert isinstance(load_task(TaskConfig(name="arith"), 0)[0], EquationTask)
    cqa = load_task(TaskConfig(name="cqa", path=str(shared_path("cqa", "dss")), limit={}), 0)[0]
    assert isinstance(cqa, ChoiceTask)


def test_render_choices() -> None:
    assert render_choices("Q?", ["x", "y"]) == "Q?\nAnswer Choices:\n(a) x\n(b) y"


@pytest.mark.parametrize("name", ["svamp", "gsm8k", "cqa", "anli"])
def test_missing_path_is_a_user_error(name: str, tmp_path: Path) -> None:
    with pytest.raises(UserError, match="not found"):
        _load(name, tmp_path / "nope")


@pytest.mark.parametrize("name", ["svamp", "gsm8k", "cqa", "anli"])
def test_folder_without_the_data_is_a_user_error(name: str, tmp_path: Path) -> None:
    (tmp_path / "unrelated.txt").write_text("hi")
    with pytest.raises(UserError, match=r"no .* data found|not found"):
        _load(name, tmp_path)


def test_row_missing_a_field_names_file_row_and_field(tmp_path: Path) -> None:
    (tmp_path / "svamp_train.json").write_text(
        json.dumps({"input": "A has 2. B has 3. How many?", "label": "( 2.0 + 3.0 )"})
        + "\n"
        + json.dumps({"input": "No label here?"})
        + "\n"
    )
    with pytest.raises(UserError) as caught:
        _load("svamp", tmp_path)
    message = str(caught.value)
    assert "svamp_train.json:2" in message and "'label'" in message
    assert "\n" not in message


def test_malformed_json_line_is_a_user_error(tmp_path: Path) -> None:
    (tmp_path / "train.jsonl").write_text('{"question": "q", "answer": "#### 1"}\n{oops\n')
    with pytest.raises(UserError, match=r"train.jsonl:2: not valid JSON"):
        _load("gsm8k", tmp_path)


def test_unknown_task_or_family_is_a_user_error() -> None:
    with pytest.raises(UserError, match=r"task.name"):
        recipe_from_dict({"task": {"name": "mmlu"}})
    with pytest.raises(UserError, match=r"task.family"):
        recipe_from_dict({"task": {"name": "generic", "family": "essay"}})
    with pytest.raises(UserError, match="needs `family`"):
        recipe_from_dict({"task": {"name": "generic"}})


def test_hub_failure_says_to_set_task_path(monkeypatch: pytest.MonkeyPatch) -> None:
    # Offline here by construction: force the Hub client offline so the test is the same
    # on a machine with a network.
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(UserError, match=r"set task.path"):
        load_hub("mindmirror-tests/no-such-dataset-xyz")


def test_hub_rows_map_like_local_files(monkeypatch: pytest.MonkeyPatch) -> None:
    # No network here: hand the Hub code path the real rows, shaped as the Hub datasets are.
    svamp = json.loads(shared_path("svamp", "SVAMP.json").read_text())
    cqa_dev = [
        json.loads(line)
        for line in shared_path("cqa", "commonsenseqa_v1.11", "dev_rand_split.jsonl")
        .read_text()
        .splitlines()[:5]
    ]
    anli = [json.loads(line) for line in shared_path("anli1", "dss", "anli1_test.json")
            .read_text().splitlines()[:9]]  # fmt: skip
    hub_rows = {
        # Its own 700/300 split, in another order than SVAMP.json.
        "ChilleD/SVAMP": {"train": svamp[300:], "test": svamp[:300]},
        "someone/svamp-all": {"test": svamp},
        "tau/commonsense_qa": {
            "validation": [
                {"id": r["id"], "question": r["question"]["stem"], "answerKey": r["answerKey"],
                 "choices": {"label": [c["label"] for c in r["question"]["choices"]],
                             "text": [c["text"] for c in r["question"]["choices"]]}}
                for r in cqa_dev
            ],
            "test": [],
        },
        "facebook/anli": {"train_r1": anli[:3], "dev_r1": anli[3:6], "test_r1": anli[6:]},
        "openai/gsm8k": {"train": [{"question": "2 + 2?", "answer": "2+2=4\n#### 4"}],
                         "test": [{"question": "3 + 3?", "answer": "#### 6"}]},
    }  # fmt: skip
    asked: list[tuple[str, str | None]] = []

    def hub(hub_id: str, config: str | None = None) -> dict[str, list[dict]]:
        asked.append((hub_id, config))
        return hub_rows[hub_id]

    monkeypatch.setattr("mindmirror.tasks.loaders.load_hub", hub)
    dss = _load("svamp", shared_path("svamp", "dss"), val_fraction=0.0)
    # Default: back in SVAMP.json's order (by id), split 800/200 exactly as the DSS files.
    assert load_task(TaskConfig(name="svamp", val_fraction=0.0), 0)[1] == dss
    own = TaskConfig(name="svamp", svamp_split="source", val_fraction=0.0)
    splits = load_task(own, 0)[1]
    assert (len(splits["train"]), len(splits["test"])) == (700, 300)
    assert splits["train"][0].question == f"{svamp[300]['Body']}\n{svamp[300]['Question']}"
    whole = load_task(TaskConfig(name="svamp", hub_id="someone/svamp-all", val_fraction=0.0), 0)
    assert whole[1] == _load("svamp", shared_path("svamp", "dss"), val_fraction=0.0)
    cqa = load_task(TaskConfig(name="cqa"), 0)[1]
    local = {e.id: e for e in _load("cqa", shared_path("cqa", "commonsenseqa_v1.11"))["test"]}
    assert all(local[e.id] == e for e in cqa["test"]) and len(cqa["test"]) == 5
    anli_splits = load_task(TaskConfig(name="anli"), 0)[1]
    assert [len(anli_splits[s]) for s in ("train", "validation", "test")] == [3, 3, 3]
    assert asked[:3] == [("ChilleD/SVAMP", None)] * 2 + [("someone/svamp-all", None)]
    gsm8k = load_task(TaskConfig(name="gsm8k", val_fraction=0.0), 0)[1]
    assert [e.gold for e in gsm8k["train"] + gsm8k["test"]] == ["4", "6"]
    assert asked[3:] == [
        ("tau/commonsense_qa", None),
        ("facebook/anli", None),
        ("openai/gsm8k", "main"),
    ]
