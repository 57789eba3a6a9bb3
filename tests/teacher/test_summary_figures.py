"""Teacher summary: critiques that came back without a verdict are counted and warned about."""

from __future__ import annotations

import pytest

from mindmirror.records import Cot, Evaluation, Record, TeacherInfo
from mindmirror.teacher.summary import summarize, warn_cut_critiques


def _record(evaluations: list[Evaluation]) -> Record:
    cot = Cot(text="3 + 5 = 8. The answer is (3 + 5).", answer="(3 + 5)", parsed=True,
              correct=True, evaluations=evaluations)  # fmt: skip
    return Record(id="q", split="train", question="3 + 5?", gold="(3 + 5)", cots=[cot],
                  teacher=TeacherInfo(model="m", backend="openai"))  # fmt: skip


def test_critiques_without_a_verdict_are_counted_apart_from_failed_requests(
    capsys: pytest.CaptureFixture[str],
) -> None:
    done = Evaluation(text="Fine. Evaluation result: the given answer is correct.",
                      verdict="correct", parsed=True)  # fmt: skip
    cut = Evaluation(text="The steps add 3 and 5, which", verdict=None, parsed=False)
    failed = Evaluation(text="", verdict=None, parsed=False)
    summary = summarize([_record([done, cut, failed])])
    assert summary["evaluations"] == 3
    assert summary["evaluations_without_verdict"] == 1
    assert summary["evaluations_failed"] == 1
    warn_cut_critiques(summary, 160, quiet=False)
    err = capsys.readouterr().err
    assert "1 of 3 critiques ended without a verdict" in err and "eval_max_tokens=160" in err
    warn_cut_critiques(summarize([_record([done])]), 160, quiet=False)
    assert capsys.readouterr().err == ""
