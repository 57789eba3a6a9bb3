"""The import backend on the real public teacher outputs in ../shared/data."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from mindmirror.config import ImportConfig
from mindmirror.errors import UserError
from mindmirror.tasks.base import Example
from mindmirror.tasks.loaders import render_choices, render_nli
from mindmirror.teacher.backends.importers import cut_completion, import_outputs, normalize
from tests.conftest import shared_path


def _jsonl(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def svamp_examples() -> list[Example]:
    """The 800/200 SVAMP split of Distilling Step-by-Step and Mind's Mirror, as Examples."""
    folder = shared_path("svamp", "dss")
    examples = []
    for split in ("train", "test"):
        for index, row in enumerate(_jsonl(folder / f"svamp_{split}.json")):
            examples.append(
                Example(f"svamp-{split}-{index:04d}", split, str(row["input"]), str(row["label"]))
            )
    return examples


def test_normalize_ignores_case_whitespace_and_punctuation() -> None:
    assert normalize("  Luke scored 84.\n\nHow  MANY? ") == normalize("luke scored 84 how many")
    assert cut_completion("A. The answer is 3.\n\nQ: next one\nA: x") == "A. The answer is 3."
    assert cut_completion("So neutral.\n\nPremise: next") == "So neutral."


def test_dss_svamp_one_palm_cot_per_question() -> None:
    examples = svamp_examples()
    result = import_outputs(
        ImportConfig(format="dss", path=str(shared_path("svamp", "dss"))), examples, num_cots=5
    )
    assert (result.entries, result.matched_entries, result.unmatched_entries) == (1000, 1000, 0)
    assert result.unmatched_examples == []
    assert Counter(len(got.cots) for got in result.by_id.values()) == {1: 1000}
    first = result.by_id["svamp-train-0000"].cots[0]
    assert first == (
        "Luke scored 84 points after 2 rounds. So he scored 84 points in 2 rounds. "
        "84 / 2 = 42. The answer is (84 / 2)."
    )
    # Entry j of file k is row 500*k + j: row 500 of train comes from train_CoT_1.json[0].
    raw = json.loads((shared_path("svamp", "dss", "llm") / "train_CoT_1.json").read_text())
    assert result.by_id["svamp-train-0500"].cots == [cut_completion(raw[0])]
    assert not any("\n\nQ:" in got.cots[0] for got in result.by_id.values())
    assert result.has_evaluations is False


def test_mcc_kd_ten_gpt35_cots_per_train_question() -> None:
    folder = shared_path("svamp", "mcc_kd")
    examples = []
    for split, name in (("train", "train"), ("validation", "dev"), ("test", "test")):
        for index, row in enumerate(json.loads((folder / f"{name}.json").read_text())):
            question = " ".join(str(row["instruction"]).split())  # whitespace differs: still found
            examples.append(Example(f"mcc-{split}-{index}", split, question, str(row["label"])))
    result = import_outputs(ImportConfig(format="mcc_kd", path=str(folder)), examples, num_cots=10)
    assert (result.entries, result.matched_entries, result.unmatched_entries) == (700, 700, 0)
    assert Counter(len(got.cots) for got in result.by_id.values()) == {10: 700}
    # dev and test hold no CoTs: their 300 questions are reported, not hidden.
    assert len(result.unmatched_examples) == 300
    assert all(ex_id.startswith("mcc-train-") for ex_id in result.by_id)
    capped = import_outputs(ImportConfig(format="mcc_kd", path=str(folder)), examples, num_cots=3)
    assert Counter(len(got.cots) for got in capped.by_id.values()) == {3: 700}


def test_mcc_kd_cots_match_the_dss_split_by_question_text() -> None:
    """MCC-KD's 700 train questions all exist in the full SVAMP split of DSS (other split!)."""
    result = import_outputs(
        ImportConfig(format="mcc_kd", path=str(shared_path("svamp", "mcc_kd"))),
        svamp_examples(),
        num_cots=10,
    )
    assert result.matched_entries == 700
    splits = Counter(ex_id.split("-")[1] for ex_id in result.by_id)
    assert splits["train"] + splits["test"] == 700 and splits["test"] > 0


def test_tot_cots_with_their_teacher_evaluations() -> None:
    folder = shared_path("svamp", "minds_mirror_samples")
    examples = []
    for split in ("train", "test"):
        for index, row in enumerate(_jsonl(folder / "svamp_tree1" / f"svamp_tree1_{split}.json")):
            examples.append(Example(f"mm-{split}-{index}", split, str(row["input"]), "0"))
    # The whole folder holds two identical copies (svamp_tree1, svamp_tree2): no doubling.
    result = import_outputs(ImportConfig(format="tot", path=str(folder)), examples, num_cots=5)
    assert result.entries == 8 and result.unmatched_entries == 0
    assert result.has_evaluations and result.unmatched_examples == []
    for got in result.by_id.values():
        assert len(got.cots) == 5
        assert got.evaluations is not None
        assert [len(evals) for evals in got.evaluations] == [5] * 5
    luke = result.by_id["mm-train-0"]
    assert luke.cots[0].startswith("Luke scored 84 points after playing 2 rounds")
    assert luke.evaluations is not None
    assert luke.evaluations[0][0].endswith("Evaluation result: the given answer is correct.")


def test_dss_cqa_matches_questions_rendered_with_choices() -> None:
    """A task that renders choices after the stem still gets its PaLM CoT (prefix match)."""
    rows = _jsonl(shared_path("cqa", "dss", "cqa_test.json"))[:150]
    examples = []
    for row in rows:
        choices = [str(c) for c in row["choices"]]  # type: ignore[union-attr]
        letters = "\n".join(f"({chr(97 + i)}) {c}" for i, c in enumerate(choices))
        question = f"{row['question']}\nAnswer Choices:\n{letters}"
        examples.append(Example(f"cqa-{row['id']}", "test", question, "A", tuple(choices)))
    result = import_outputs(
        ImportConfig(format="dss", path=str(shared_path("cqa", "dss"))), examples, num_cots=1
    )
    assert result.entries == 9741 + 1221
    assert result.matched_entries == 150 and result.unmatched_entries == 9741 + 1221 - 150
    assert result.unmatched_examples == []
    cot = result.by_id[f"cqa-{rows[0]['id']}"].cots[0]
    assert "answer is" in cot and "\n\nQ:" not in cot


def test_dss_anli_matches_premise_and_hypothesis() -> None:
    rows = _jsonl(shared_path("anli1", "dss", "anli1_valid.json"))[:40]
    examples = [
        Example(f"anli-{r['uid']}", "train", f"Premise: {r['premise']}\nHypothesis: "
                f"{r['hypothesis']}", "neutral")
        for r in rows
    ]  # fmt: skip
    result = import_outputs(
        ImportConfig(format="dss", path=str(shared_path("anli1", "dss"))), examples, num_cots=1
    )
    assert result.entries == 2000 and result.matched_entries == 40
    assert result.unmatched_examples == []
    assert all("\n\nPremise:" not in got.cots[0] for got in result.by_id.values())


def test_generic_jsonl_by_question_or_id(tmp_path: Path) -> None:
    examples = [
        Example("q-1", "train", "How many apples  are left?", "3"),
        Example("q-2", "train", "What is 2 + 2?", "4"),
        Example("q-3", "test", "Never imported?", "1"),
    ]
    path = tmp_path / "teacher.jsonl"
    lines = [
        {"question": "how many apples are left", "cots": ["a", "b", "c"]},
        {"id": "q-2", "cots": ["2 + 2 = 4. The answer is 4."], "evaluations": [["E: correct"]]},
        {"question": "A question the task does not have", "cots": ["x"]},
    ]
    path.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    result = import_outputs(ImportConfig(format="jsonl", path=str(path)), examples, num_cots=2)
    assert result.by_id["q-1"].cots == ["a", "b"]
    assert result.by_id["q-1"].evaluations is None
    assert result.by_id["q-2"].evaluations == [["E: correct"]]
    assert (result.entries, result.matched_entries, result.unmatched_entries) == (3, 2, 1)
    assert result.unmatched_examples == ["q-3"]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('{"cots": ["a"]}', r"bad.jsonl:2: each line needs `question`"),
        ('{"premise": "p", "cots": ["a"]}', r"bad.jsonl:2: each line needs `question`"),
        ('{"question": "q", "choices": "a|b", "cots": ["a"]}', r"`choices` must be a list"),
        ('{"question": "q", "cots": "a"}', r"bad.jsonl:2: `cots` must be a list of strings"),
        ('{"question": "q", "cots": ["a"], "evaluations": []}', r"one list per CoT"),
        ("{not json", r"bad.jsonl:2: not valid JSON"),
        ('{"question": ' + "[" * 100000 + "]" * 100000 + "}", r"bad.jsonl:2: JSON nested too"),
    ],
)
def test_malformed_jsonl_names_file_and_line(tmp_path: Path, line: str, message: str) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text('{"question": "ok", "cots": ["a"]}\n' + line + "\n")
    with pytest.raises(UserError, match=message):
        import_outputs(ImportConfig(format="jsonl", path=str(path)), [], num_cots=1)


def test_missing_import_path_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="import path not found"):
        import_outputs(ImportConfig(format="tot", path=str(tmp_path / "nope")), [], num_cots=1)
    with pytest.raises(UserError, match="llm/"):
        import_outputs(ImportConfig(format="dss", path=str(tmp_path)), [], num_cots=1)


def _write_jsonl(path: Path, rows: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def test_jsonl_premise_hypothesis_and_choices_match_rendered_questions(tmp_path: Path) -> None:
    nli = Example("anli-u1", "train", render_nli("Tom moved to Paris.", "Tom is in France."), "x")
    # Same stem, different choices: only the rendered question tells them apart.
    first = ("park", "bed", "car")
    second = ("sea", "bank", "road")
    stem = "Where do children play tag?"
    examples = [
        nli,
        Example("cqa-1", "train", render_choices(stem, first), "A", first),
        Example("cqa-2", "train", render_choices(stem, second), "B", second),
    ]
    path = _write_jsonl(
        tmp_path / "t.jsonl",
        [
            {"premise": "Tom moved to Paris.", "hypothesis": "Tom is in France.", "cots": ["n"]},
            {"question": stem, "choices": list(second), "cots": ["c2"]},
            {"question": stem, "choices": list(first), "cots": ["c1"]},
        ],
    )
    result = import_outputs(ImportConfig(format="jsonl", path=str(path)), examples, num_cots=2)
    assert result.by_id["anli-u1"].cots == ["n"]
    assert result.by_id["cqa-1"].cots == ["c1"] and result.by_id["cqa-2"].cots == ["c2"]
    assert (result.matched_entries, result.matched_examples, result.examples) == (3, 3, 3)


def test_jsonl_id_wins_over_question_text(tmp_path: Path) -> None:
    examples = [Example("q-1", "train", "What is 1 + 1?", "2"),
                Example("q-2", "train", "What is 2 + 2?", "4")]  # fmt: skip
    path = _write_jsonl(
        tmp_path / "t.jsonl",
        [
            {"id": "q-2", "question": "What is 1 + 1?", "cots": ["by id"]},
            {"id": "unknown", "question": "What is 1 + 1?", "cots": ["by text"]},
        ],
    )
    result = import_outputs(ImportConfig(format="jsonl", path=str(path)), examples, num_cots=2)
    assert result.by_id["q-2"].cots == ["by id"]
    assert result.by_id["q-1"].cots == ["by text"]


def test_an_import_matching_too_little_fails_in_one_line(tmp_path: Path) -> None:
    examples = [Example(f"svamp-train-{i:04d}", "train", f"Tom has {i} apples.\nHow many?", "1")
                for i in range(10)]  # fmt: skip
    rows = [{"question": f"Another task's question {i}", "cots": ["x"]} for i in range(9)]
    rows.append({"question": "tom has 3 apples how many", "cots": ["y"]})
    path = _write_jsonl(tmp_path / "other.jsonl", rows)
    cfg = ImportConfig(format="jsonl", path=str(path))
    with pytest.raises(UserError) as error:
        import_outputs(cfg, examples, num_cots=1)
    message = str(error.value)
    assert "\n" not in message
    assert "matched 1 of 10 entries and 1 of 10 task questions" in message
    assert "min_match=0.5" in message
    # It shows what an entry must match: an expected id and its question, on one line.
    assert "id 'svamp-train-0000' question 'Tom has 0 apples. How many?'" in message
    # Lowering the threshold accepts the same file, and the counts say what happened.
    lenient = ImportConfig(format="jsonl", path=str(path), min_match=0.1)
    result = import_outputs(lenient, examples, num_cots=1)
    assert result.summary()["examples_matched"] == 1 and result.summary()["examples"] == 10
    assert result.match_share() == pytest.approx(0.1)


def test_a_sample_of_the_questions_or_a_superset_of_them_passes(tmp_path: Path) -> None:
    examples = [Example(f"q-{i}", "train", f"Question number {i}?", "1") for i in range(10)]
    # Two of ten questions, but every entry matches: a sample (Mind's Mirror publishes 4).
    sample = _write_jsonl(tmp_path / "s.jsonl", [
        {"question": f"Question number {i}?", "cots": ["c"]} for i in range(2)
    ])  # fmt: skip
    assert import_outputs(ImportConfig(path=str(sample)), examples, 1).matched_examples == 2
    # All ten questions inside a file of a hundred entries: a superset (other splits).
    superset = _write_jsonl(tmp_path / "b.jsonl", [
        {"question": f"Question number {i}?", "cots": ["c"]} for i in range(100)
    ])  # fmt: skip
    result = import_outputs(ImportConfig(path=str(superset)), examples, 1)
    assert (result.matched_entries, result.matched_examples) == (10, 10)


def test_jsonl_strings_may_hold_line_separators(tmp_path: Path) -> None:
    # JSON leaves U+2028, U+0085 and friends unescaped (ensure_ascii=False writers do): they
    # are characters of a CoT, not line breaks of the file.
    examples = [Example("q-1", "train", "What is 2 + 2?", "4")]
    path = tmp_path / "teacher.jsonl"
    cot = "2 + 2 = 4.\u2028The answer\x85 is 4."
    path.write_text(json.dumps({"id": "q-1", "cots": [cot]}, ensure_ascii=False) + "\n")
    result = import_outputs(ImportConfig(format="jsonl", path=str(path)), examples, num_cots=1)
    assert result.by_id["q-1"].cots == [cot]
