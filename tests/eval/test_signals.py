"""`mindmirror.signals`: every signal read from the same hand-made samples, at the level of
each CoT, of the answer `mirror` chose, and of the greedy `answer`."""

from __future__ import annotations

import pytest

from mindmirror.signals import run_signals
from mindmirror.student.infer import Judged, Prediction
from mindmirror.tasks.base import Example
from mindmirror.tasks.families import EquationTask

TASK = EquationTask("svamp")


def _cot(text: str, answer: str | None, logprob: float = -0.5) -> Judged:
    canonical = TASK.canonical(answer) if answer is not None else None
    return Judged(text=text, answer=answer, canonical=canonical, logprob=logprob)


def _verdicts(*p_correct: float) -> list[dict[str, float]]:
    return [{"correct": p, "wrong": 1 - p, "uncertain": 0.0} for p in p_correct]


def test_the_greedy_answer_is_ranked_by_the_cots_that_reach_it() -> None:
    test = [Example("q0", "test", "Tom has 3 apples and buys 5. How many?", "8")]
    samples = [[_cot("3 + 5 = 8. The answer is 8.", "8"), _cot("3 - 5 = -2.", "-2"),
                _cot("3 + 5 = 8, so 8.", "8"), _cot("No idea.", None)]]  # fmt: skip
    judges = {"own": [_verdicts(0.9, 0.7, 0.5, 0.1)], "teacher": [_verdicts(0.6, 0.2, 0.4, 0.3)]}
    # The greedy answer is wrong here, and one CoT reaches it.
    greedy = [Prediction("answer", test[0].question, "-2", "-2", confidence=0.35)]
    out = run_signals(TASK, test, samples, judges, greedy, model=None)
    # mirror (own judge) chooses 8 (0.9 + 0.5 against 0.7): right.
    assert out.question_correct == [True]
    assert out.questions["judge_own"] == [pytest.approx(0.7)]  # mean over 8's two CoTs
    assert out.questions["vote_share"] == [0.5]
    assert out.accuracy["answer"] == [False] and out.accuracy["mirror_own"] == [True]
    # The greedy answer -2: one CoT of four reaches it, judged 0.7 (own) and 0.2 (teacher).
    assert out.answers == {
        "judge_own": [pytest.approx(0.7)],
        "judge_teacher": [pytest.approx(0.2)],
        "vote_share": [0.25],
        "answer_prob": [0.35],
    }
    assert out.to_dict()["answers"] == out.answers
    # A greedy answer no CoT reaches keeps its own probability; the CoT signals are 0.
    alone = [Prediction("answer", test[0].question, "11", "11", confidence=0.6)]
    lone = run_signals(TASK, test, samples, judges, alone, model=None).answers
    assert lone["vote_share"] == [0.0] and lone["judge_own"] == [0.0]
    assert lone["answer_prob"] == [0.6]
