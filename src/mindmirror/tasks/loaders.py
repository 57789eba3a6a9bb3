"""Built-in dataset loaders: SVAMP, GSM8K, CommonsenseQA, ANLI, from a local path or the Hub.

Each loader returns the dataset's *own* splits (``train``, maybe ``validation``, maybe
``test``) as Examples; :func:`mindmirror.tasks.splits.prepare_splits` then deduplicates, carves
validation and applies limits. Ids are stable: the source file's split and row
(``svamp-train-0007``), or the dataset's own id where it has one (CommonsenseQA, ANLI), so the
same question gets the same id whatever the seed or limits.
"""

from __future__ import annotations

import re
import string
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mindmirror.config import TaskConfig
from mindmirror.errors import UserError
from mindmirror.tasks.base import Example, Task
from mindmirror.tasks.families import NLI_LABELS
from mindmirror.tasks.readers import Row, load_hub, read_json_list, read_jsonl
from mindmirror.tasks.splits import clean_question

Raw = dict[str, list[Example]]

HUB_IDS = {
    "svamp": ("ChilleD/SVAMP", None),
    "gsm8k": ("openai/gsm8k", "main"),
    "cqa": ("tau/commonsense_qa", None),
    "anli": ("facebook/anli", None),
}


def field(row: Row, key: str, where: str) -> Any:
    """``row[key]``; UserError naming the file/row and the field when it is missing."""
    if key not in row:
        raise UserError(f"{where}: row has no field {key!r} (fields: {', '.join(map(str, row))})")
    return row[key]


def render_choices(question: str, choices: Sequence[str]) -> str:
    """A multiple-choice question as models see it (the Distilling Step-by-Step layout)."""
    # Letters run out after 26 choices; no benchmark comes near that.
    lines = [
        f"({letter}) {choice}"
        for letter, choice in zip(string.ascii_lowercase, choices, strict=False)
    ]
    return "\n".join([question, "Answer Choices:", *lines])


def render_nli(premise: str, hypothesis: str) -> str:
    """An NLI pair as models see it."""
    return (
        f"Premise: {premise}\nHypothesis: {hypothesis}\n"
        "Does the premise entail the hypothesis, contradict it, or neither (neutral)?"
    )


def _example(
    id_: str,
    split: str,
    question: str,
    gold: str | None,
    choices: Sequence[str] | None = None,
    rationale: str | None = None,
) -> Example:
    return Example(
        id=id_,
        split=split,
        question=clean_question(question),
        gold=gold,
        choices=tuple(choices) if choices is not None else None,
        rationale=rationale,
    )


def _hub(cfg: TaskConfig) -> dict[str, list[Row]]:
    default_id, config = HUB_IDS[cfg.name]
    return load_hub(cfg.hub_id or default_id, config if cfg.hub_id is None else None)


def _local(cfg: TaskConfig) -> Path:
    path = Path(cfg.path or "")
    if not path.exists():
        raise UserError(f"task.path not found: {path} (give the dataset's file or folder)")
    return path


# ---------------------------------------------------------------------------- SVAMP


def _number_text(value: Any) -> str:
    """A numeric gold (``32``, ``51.0``, ``"14"``) as text."""
    return str(value).strip()


def _svamp_full(rows: list[Row], where: str) -> Raw:
    """SVAMP.json split as Distilling Step-by-Step did: RandomState(0) permutation, 800/200."""
    order = np.random.RandomState(0).permutation(len(rows))
    cut = round(len(rows) * 0.8)
    raw: Raw = {"train": [], "test": []}
    for position, index in enumerate(order):
        row = rows[int(index)]
        split, number = ("train", position) if position < cut else ("test", position - cut)
        question = f"{field(row, 'Body', where)}\n{field(row, 'Question', where)}"
        raw[split].append(
            _example(f"svamp-{split}-{number:04d}", split, question, field(row, "Equation", where))
        )
    return raw


def _svamp_dss(folder: Path) -> Raw:
    raw: Raw = {}
    for split in ("train", "test"):
        path = folder / f"svamp_{split}.json"
        rows = read_jsonl(path) if path.exists() else []
        raw[split] = [
            _example(
                f"svamp-{split}-{i:04d}",
                split,
                field(row, "input", f"{path}:{i + 1}"),
                field(row, "label", f"{path}:{i + 1}"),
            )
            for i, row in enumerate(rows)
        ]
    return raw


def _svamp_mcc_kd(folder: Path) -> Raw:
    raw: Raw = {}
    for source, split in (("train", "train"), ("dev", "validation"), ("test", "test")):
        path = folder / f"{source}.json"
        if not path.exists():
            continue
        raw[split] = [
            _example(
                f"svamp-mcckd-{source}-{i:04d}",
                split,
                field(row, "instruction", f"{path} row {i}"),
                _number_text(field(row, "label", f"{path} row {i}")),
            )
            for i, row in enumerate(read_json_list(path))
        ]
    return raw


def _svamp_ids(rows: list[Row]) -> list[Row] | None:
    """``rows`` in SVAMP.json order when they are exactly its problems ``chal-1`` ...
    ``chal-N`` (each once), else None."""
    numbers = []
    for row in rows:
        ident = str(row.get("ID", ""))
        if not ident.startswith("chal-") or not ident[5:].isdigit():
            return None
        numbers.append(int(ident[5:]))
    if sorted(numbers) != list(range(1, len(rows) + 1)):
        return None
    return [row for _, row in sorted(zip(numbers, rows, strict=True), key=lambda nr: nr[0])]


def load_svamp(cfg: TaskConfig) -> Raw:
    """SVAMP from the full ``SVAMP.json`` (file or folder holding it), the DSS split folder
    (``svamp_train.json``/``svamp_test.json``), the MCC-KD folder (``train/dev/test.json``),
    or the Hub (``ChilleD/SVAMP``). With ``svamp_split: dss`` (the default) Hub rows carrying
    SVAMP.json's ids are put back in that order and split 800/200 as DSS and Mind's Mirror did;
    ``source`` keeps the Hub's own 700/300 split."""
    if cfg.path is None:
        hub = _hub(cfg)
        if "train" not in hub and len(hub) == 1:
            # A copy of the whole of SVAMP in one split: split it the way DSS did.
            (name, rows), *_ = hub.items()
            return _svamp_full(rows, f"{cfg.hub_id}[{name}]")
        # The Hub's 700/300 copy holds all 1000 problems with their SVAMP.json ids
        # (chal-1 ... chal-1000): in that order, they split exactly as DSS split the file.
        every = [row for rows in hub.values() for row in rows]
        ordered = _svamp_ids(every) if cfg.svamp_split == "dss" else None
        if ordered is not None:
            return _svamp_full(ordered, cfg.hub_id or "ChilleD/SVAMP")
        raw: Raw = {}
        for split, rows in hub.items():
            name = "validation" if split in ("validation", "dev") else split
            raw[name] = [
                _example(
                    f"svamp-hub-{split}-{i:04d}",
                    name,
                    f"{field(row, 'Body', split)}\n{field(row, 'Question', split)}",
                    _number_text(field(row, "Equation", split)),
                )
                for i, row in enumerate(rows)
            ]
        return raw
    path = _local(cfg)
    if path.is_dir() and (path / "SVAMP.json").is_file():
        path = path / "SVAMP.json"
    if path.is_file():
        return _svamp_full(read_json_list(path), str(path))
    if (path / "svamp_train.json").is_file() or (path / "svamp_test.json").is_file():
        return _svamp_dss(path)
    if (path / "train.json").is_file():
        return _svamp_mcc_kd(path)
    raise UserError(
        f"{path}: no SVAMP data found (expected SVAMP.json, svamp_train.json/svamp_test.json, "
        "or the MCC-KD train.json/dev.json/test.json)"
    )


# ---------------------------------------------------------------------------- GSM8K


# GSM8K's calculator annotations inside worked solutions: "48/2 = <<48/2=24>>24".
_CALCULATOR = re.compile(r"<<[^<>]*>>")


def gsm8k_gold(answer: str) -> str:
    """The number after GSM8K's ``####`` (thousands commas removed)."""
    return answer.rsplit("####", 1)[-1].strip().replace(",", "")


def gsm8k_rationale(answer: str) -> str | None:
    """GSM8K's worked solution as a CoT: calculator marks ``<<48/2=24>>`` dropped and the
    ``#### 72`` line written as ``The answer is 72.``; None when there are no steps."""
    steps = _CALCULATOR.sub("", answer.rsplit("####", 1)[0]).strip()
    if not steps:
        return None
    return f"{steps}\n{Task.answer_sentence} {gsm8k_gold(answer)}."


def _gsm8k_rows(rows: list[Row], split: str, where: str) -> list[Example]:
    examples = []
    for i, row in enumerate(rows):
        answer = str(field(row, "answer", f"{where}:{i + 1}"))
        question = field(row, "question", f"{where}:{i + 1}")
        examples.append(
            _example(
                f"gsm8k-{split}-{i:04d}",
                split,
                question,
                gsm8k_gold(answer),
                rationale=gsm8k_rationale(answer),
            )
        )
    return examples


def load_gsm8k(cfg: TaskConfig) -> Raw:
    """GSM8K from a JSONL file (taken as train), a folder with ``train.jsonl``/``test.jsonl``,
    or the Hub (``openai/gsm8k``, config ``main``)."""
    if cfg.path is None:
        return {split: _gsm8k_rows(rows, split, split) for split, rows in _hub(cfg).items()}
    path = _local(cfg)
    if path.is_file():
        return {"train": _gsm8k_rows(read_jsonl(path), "train", str(path))}
    raw = {
        split: _gsm8k_rows(read_jsonl(path / f"{split}.jsonl"), split, str(path / f"{split}.jsonl"))
        for split in ("train", "test")
        if (path / f"{split}.jsonl").is_file()
    }
    if not raw:
        raise UserError(f"{path}: no GSM8K data found (expected train.jsonl and/or test.jsonl)")
    return raw


# ---------------------------------------------------------------------------- CommonsenseQA


def _cqa_example(
    split: str, id_: str, question: str, choices: list[str], gold: str | None
) -> Example:
    return _example(f"cqa-{id_}", split, render_choices(question, choices), gold, choices)


def _cqa_dss(path: Path, split: str) -> list[Example]:
    examples = []
    for i, row in enumerate(read_jsonl(path)):
        where = f"{path}:{i + 1}"
        choices = [str(c) for c in field(row, "choices", where)]
        answer = field(row, "answer", where)
        if answer not in choices:
            raise UserError(f"{where}: answer {answer!r} is not one of the choices")
        gold = string.ascii_uppercase[choices.index(answer)]
        question = field(row, "question", where)
        examples.append(_cqa_example(split, field(row, "id", where), question, choices, gold))
    return examples


def _cqa_official(path: Path, split: str) -> list[Example]:
    examples = []
    for i, row in enumerate(read_jsonl(path)):
        where = f"{path}:{i + 1}"
        question = field(row, "question", where)
        ordered = sorted(field(question, "choices", where), key=lambda c: c["label"])
        choices = [str(c["text"]) for c in ordered]
        examples.append(
            _cqa_example(
                split, field(row, "id", where), field(question, "stem", where), choices,
                row.get("answerKey"),
            )
        )  # fmt: skip
    return examples


def load_cqa(cfg: TaskConfig) -> Raw:
    """CommonsenseQA v1.11 from the DSS files (``cqa_train.json``/``cqa_test.json``), the
    official JSONL folder (``train_rand_split.jsonl``/``dev_rand_split.jsonl``), or the Hub
    (``tau/commonsense_qa``). As in the papers, the official dev set is the test set (the
    official test set has no answers) and validation is carved from train."""
    if cfg.path is None:
        hub = _hub(cfg)
        raw: Raw = {}
        for source, split in (("train", "train"), ("validation", "test")):
            raw[split] = []
            for i, row in enumerate(hub.get(source, [])):
                where = f"{source} row {i}"
                choices = [str(c) for c in field(row, "choices", where)["text"]]
                raw[split].append(
                    _cqa_example(
                        split, field(row, "id", where), field(row, "question", where), choices,
                        field(row, "answerKey", where) or None,
                    )
                )  # fmt: skip
        return raw
    path = _local(cfg)
    if path.is_dir() and (path / "cqa_train.json").is_file():
        raw = {"train": _cqa_dss(path / "cqa_train.json", "train")}
        if (path / "cqa_test.json").is_file():
            raw["test"] = _cqa_dss(path / "cqa_test.json", "test")
        return raw
    if path.is_dir() and (path / "train_rand_split.jsonl").is_file():
        raw = {"train": _cqa_official(path / "train_rand_split.jsonl", "train")}
        if (path / "dev_rand_split.jsonl").is_file():
            raw["test"] = _cqa_official(path / "dev_rand_split.jsonl", "test")
        return raw
    raise UserError(
        f"{path}: no CommonsenseQA data found (expected cqa_train.json/cqa_test.json or "
        "train_rand_split.jsonl/dev_rand_split.jsonl)"
    )


# ---------------------------------------------------------------------------- ANLI


def _anli_rows(rows: list[Row], split: str, where: str) -> list[Example]:
    examples = []
    for i, row in enumerate(rows):
        at = f"{where} row {i + 1}"
        label = field(row, "label", at)
        if label not in (0, 1, 2):
            raise UserError(f"{at}: label {label!r} is not 0, 1 or 2")
        examples.append(
            _example(
                f"anli-{field(row, 'uid', at)}",
                split,
                render_nli(field(row, "premise", at), field(row, "hypothesis", at)),
                NLI_LABELS[label],
            )
        )
    return examples


def load_anli(cfg: TaskConfig) -> Raw:
    """ANLI round 1 from the DSS folder (``anli1_{train,valid,test}.json``) or the Hub
    (``facebook/anli``: ``train_r1``/``dev_r1``/``test_r1``).

    Locally there is usually no train file: then ``valid`` is used as train (a seeded
    validation is carved from it) and ``test`` stays the test set.
    """
    if cfg.path is None:
        hub = _hub(cfg)
        names = {"train_r1": "train", "dev_r1": "validation", "test_r1": "test"}
        return {
            split: _anli_rows(hub[source], split, source)
            for source, split in names.items()
            if source in hub
        }
    path = _local(cfg)
    files = {name: path / f"anli1_{name}.json" for name in ("train", "valid", "test")}
    if not path.is_dir() or not (files["valid"].is_file() or files["train"].is_file()):
        raise UserError(f"{path}: no ANLI data found (expected anli1_valid.json, anli1_test.json)")
    raw: Raw = {}
    if files["train"].is_file():
        raw["train"] = _anli_rows(read_jsonl(files["train"]), "train", str(files["train"]))
    if files["valid"].is_file():
        split = "validation" if "train" in raw else "train"
        raw[split] = _anli_rows(read_jsonl(files["valid"]), split, str(files["valid"]))
    if files["test"].is_file():
        raw["test"] = _anli_rows(read_jsonl(files["test"]), "test", str(files["test"]))
    return raw
