"""Rows per method: counts, weights, prefixes, labels, skipping and deduplication.

The defaults are the published code's behaviour (no merging, rationale-only explain targets,
the first CoT's answer for distillation, stage 1 on every CoT x every evaluation)."""

from __future__ import annotations

import pytest

from mindmirror.records import Record
from mindmirror.student.formats import CRITIQUE, EXPLAIN, PREDICT, VERDICT
from mindmirror.student.rows import RowSpec, build_rows, majority_answer, stages
from mindmirror.tasks.families import EquationTask

from .conftest import cot

ALPHA = 0.3


def rows_of(records: list[Record], task: EquationTask, method: str, stage: str, **kw: object):
    spec = RowSpec(method=method, alpha=ALPHA, **kw)  # type: ignore[arg-type]
    return build_rows(records, task, spec, stage)  # type: ignore[arg-type]


def test_stages_per_method() -> None:
    assert stages("mind_mirror") == ["evaluation", "reasoning"]
    assert stages("mind_mirror_joint") == ["joint"]
    for method in ("standard", "distill", "step_by_step", "multi_cot"):
        assert stages(method) == ["reasoning"]


def test_standard_uses_gold_once_per_question(records, task) -> None:
    rows, stats = rows_of(records, task, "standard", "reasoning")
    assert len(rows) == stats.questions == 8
    assert {r.prefix for r in rows} == {PREDICT}
    assert all(r.weight == 1.0 for r in rows)
    assert rows[0].target == "The answer is (3 + 5)."
    assert rows[0].input.startswith("predict: Tom has 3 apples")


def test_only_train_records_become_rows(records, task) -> None:
    rows, _ = rows_of(records, task, "multi_cot", "reasoning", num_cots=5)
    train_ids = {r.id for r in records if r.split == "train"}
    assert {r.question_id for r in rows} == train_ids


def test_step_by_step_takes_the_first_parsed_cot(records, task) -> None:
    rows, stats = rows_of(records, task, "step_by_step", "reasoning", num_cots=5)
    assert stats.rows == 16 and stats.cots_used == 8
    explain = [r for r in rows if r.prefix == EXPLAIN]
    assert all(r.target.startswith("Tom starts with") for r in explain)
    # The published explain target: the rationale, without the answer sentence.
    assert explain[0].target == "Tom starts with 3 apples and buys 5, so 3 + 5 = 8."
    assert all(r.weight == pytest.approx(1 - ALPHA) for r in explain)
    assert all(r.weight == pytest.approx(ALPHA) for r in rows if r.prefix == PREDICT)


def test_explain_target_cot_keeps_the_answer_sentence(records, task) -> None:
    rows, _ = rows_of(records, task, "step_by_step", "reasoning", explain_target="cot")
    (explain, *_) = [r for r in rows if r.prefix == EXPLAIN]
    assert explain.target.endswith("The answer is (3 + 5).")


def test_multi_cot_skips_unparsed_and_keeps_duplicates_unless_asked(records, task) -> None:
    rows, stats = rows_of(records, task, "multi_cot", "reasoning", num_cots=5)
    # Per question: 2 parsed CoTs -> 2 predict + 2 explain rows; the 2 predict rows agree.
    assert stats.cots_unparsed == 8 and stats.cots_used == 16
    assert stats.rows_before_dedupe == 32 and stats.rows == 32
    assert all(r.count == 1 for r in rows)
    rows, stats = rows_of(records, task, "multi_cot", "reasoning", num_cots=5, dedupe=True)
    assert stats.rows_before_dedupe == 32 and stats.rows == 24
    predict = [r for r in rows if r.prefix == PREDICT]
    assert len(predict) == 8
    assert all(r.weight == pytest.approx(2 * ALPHA) and r.count == 2 for r in predict)
    assert stats.by_prefix == {PREDICT: 8, EXPLAIN: 16}


def test_dedupe_keeps_the_total_weight_and_count(records, task) -> None:
    merged, _ = rows_of(records, task, "mind_mirror_joint", "joint", num_cots=5, dedupe=True)
    plain, _ = rows_of(records, task, "mind_mirror_joint", "joint", num_cots=5)
    assert len(merged) < len(plain)
    assert sum(r.weight for r in merged) == pytest.approx(sum(r.weight for r in plain))
    assert sum(r.count for r in merged) == len(plain)


def test_teacher_labels_give_one_row_per_distinct_answer(records, task) -> None:
    record = records[0]
    record.cots.append(cot("3 times 5 is 15. The answer is (3 * 5).", "(3 * 5)", False, []))
    rows, _ = rows_of([record], task, "multi_cot", "reasoning", num_cots=5, dedupe=True)
    predict = {r.target: r.weight for r in rows if r.prefix == PREDICT}
    assert predict == {
        "The answer is (3 + 5).": pytest.approx(2 * ALPHA),
        "The answer is (3 * 5).": pytest.approx(ALPHA),
    }


def test_gold_labels_replace_predict_targets_and_keep_cots(records, task) -> None:
    record = records[0]
    for c in record.cots:
        if c.parsed:
            c.answer, c.text = "(3 * 5)", c.text.replace("(3 + 5)", "(3 * 5)")
    rows, _ = rows_of([record], task, "multi_cot", "reasoning", labels="gold", num_cots=5)
    predict = [r for r in rows if r.prefix == PREDICT]
    assert [r.target for r in predict] == ["The answer is (3 + 5)."] * 2
    assert predict[0].weight == pytest.approx(ALPHA)
    # The wrong teacher answer stays out of the explain targets (rationale only) ...
    assert not any("(3 * 5)" in r.target for r in rows if r.prefix == EXPLAIN)
    # ... unless the whole CoT is the target.
    rows, _ = rows_of(
        [record], task, "multi_cot", "reasoning", labels="gold", num_cots=5, explain_target="cot"
    )
    assert all("(3 * 5)" in r.target for r in rows if r.prefix == EXPLAIN)


def test_question_without_parsed_cot_is_skipped_for_teacher_labels(records, task) -> None:
    record = records[0]
    record.cots = [c for c in record.cots if not c.parsed]
    rows, stats = rows_of([record], task, "multi_cot", "reasoning", num_cots=5)
    assert rows == [] and stats.questions_skipped == 1 and stats.cots_unparsed == 1
    rows, _ = rows_of([record], task, "multi_cot", "reasoning", labels="gold", num_cots=5)
    assert [r.prefix for r in rows] == [PREDICT]


def test_distill_takes_the_first_answer_or_the_majority(records, task) -> None:
    record = records[0]
    record.cots[2].answer = "(5 + 3)"
    record.cots.append(cot("5 plus 3. The answer is (5 + 3).", "(5 + 3)", True, []))
    rows, _ = rows_of([record], task, "distill", "reasoning")
    assert [(r.target, r.weight) for r in rows] == [("The answer is (3 + 5).", 1.0)]
    rows, _ = rows_of([record], task, "distill", "reasoning", distill_label="majority")
    assert [r.target for r in rows] == ["The answer is (3 + 5)."]  # same value: one bucket


def test_majority_breaks_ties_by_the_first_cot(records, task) -> None:
    record = records[0]
    wrong = cot("The answer is (3 * 5).", "(3 * 5)", False, [])
    assert majority_answer([wrong, *record.cots], task, None) == "(3 + 5)"
    assert majority_answer([wrong, record.cots[0]], task, None) == "(3 * 5)"
    # Same value, different spelling: one vote bucket (canonical form).
    spelled = cot("The answer is 8.", "8", True, [])
    assert majority_answer([wrong, spelled, record.cots[0]], task, None) == "8"


def test_self_evaluation_rows_hold_question_and_cot_under_their_own_prefixes(records, task) -> None:
    rows, stats = rows_of(records, task, "mind_mirror", "evaluation", num_cots=1, num_evals=5)
    # Per question: every CoT, the unparsed one too, whatever the reasoning stage's num_cots:
    # 2 + 1 + 2 evaluations, each a verdict and a critique row.
    assert stats.evals_used == 40 and stats.rows_before_dedupe == 80 and stats.rows == 80
    assert {r.prefix for r in rows} == {VERDICT, CRITIQUE}
    first = [r for r in rows if r.question_id == "toy-train-0"]
    verdicts = [(r.input, r.target) for r in first if r.prefix == VERDICT]
    assert len(verdicts) == 5 and len(set(verdicts)) == 4
    assert any("Tom has many apples." in i for i, _ in verdicts)
    for row in first:
        assert row.input.startswith(f"{row.prefix}: Question: Tom has 3 apples")
        assert "\nAnswer: " in row.input
    assert {r.target for r in first if r.prefix == VERDICT} == {
        "the given answer is correct",
        "the given answer is wrong",
    }
    # The critique target stops before the verdict line (that is the verdict row's target).
    assert {r.target for r in first if r.prefix == CRITIQUE} == {"Checked the steps."}
    merged, _ = rows_of(records, task, "mind_mirror", "evaluation", dedupe=True)
    weights = [r.weight for r in merged if r.question_id == "toy-train-0" and r.prefix == VERDICT]
    assert sorted(weights) == pytest.approx([ALPHA, ALPHA, ALPHA, 2 * ALPHA])


def test_unparsed_evaluations_and_gold_evaluator_critiques(records, task) -> None:
    from .conftest import evaluation

    record = records[0]
    record.cots = record.cots[:1]
    record.cots[0].evaluations = [evaluation(None), evaluation("correct", text="")]
    rows, stats = rows_of([record], task, "mind_mirror", "evaluation", num_cots=1)
    assert stats.evals_unparsed == 1
    # The gold evaluator's empty critique gives a verdict row and no critique row.
    assert [r.prefix for r in rows] == [VERDICT]


def test_num_evals_limits_rows_and_num_cots_does_not(records, task) -> None:
    _, stats = rows_of(records, task, "mind_mirror", "evaluation", num_cots=1, num_evals=1)
    assert stats.evals_used == 24
    assert stats.by_prefix == {VERDICT: 24, CRITIQUE: 24}


def test_teacher_answers_keep_their_own_spelling(records, task) -> None:
    record = records[0]
    record.cots[2].answer = "(5 + 3)"
    rows, _ = rows_of([record], task, "multi_cot", "reasoning", num_cots=5)
    predict = [r.target for r in rows if r.prefix == PREDICT]
    assert predict == ["The answer is (3 + 5).", "The answer is (5 + 3)."]


def test_rationale_and_critique_targets_on_the_published_strings() -> None:
    from mindmirror.student.formats import critique_target, rationale

    steps = "Luke scored 84 points in 2 rounds. So, he scored 84 / 2 = 42 points per round."
    assert rationale(f"{steps} The answer is (84 / 2).") == steps
    # No answer sentence (gpt-3.5 often ends on the result): the whole CoT.
    assert rationale("100 - 68 = 32 books.") == "100 - 68 = 32 books."
    # The paper's evaluation format: the last line is the verdict, the rest the critique.
    critique = "Evaluation:\n\nThe given answer correctly states (84 / 2), which is accurate."
    evaluation = f"{critique}\n\nEvaluation result: the given answer is correct."
    assert critique_target(evaluation) == critique
    assert critique_target("Evaluation result: the given answer is wrong.") == ""


def test_targets_on_the_minds_mirror_sample() -> None:
    """On the published gpt-3.5 data: every CoT keeps a rationale without its answer
    sentence, and no critique target still carries the verdict line."""
    import json

    from mindmirror.student.formats import critique_target, rationale
    from tests.conftest import shared_path

    folder = shared_path("svamp", "minds_mirror_samples", "svamp_tree1", "llm")
    cots, evaluations = [], []
    for path in sorted(folder.glob("*_CoT_0.json")):
        for item in json.loads(path.read_text()):
            step = item["steps"][0]
            cots += step["new_ys"]
            evaluations += [e for evals in step["value_outputs_list"] for e in evals]
    assert len(cots) == 20 and len(evaluations) == 100
    for text in cots:
        kept = rationale(text)
        assert kept and "answer is" not in kept.lower() and text.startswith(kept[:20])
    for text in evaluations:
        critique = critique_target(text)
        assert critique and "evaluation result" not in critique.lower()
