"""Confidence signals of one run on the same sampled test CoTs (issue 25's measurement).

Every signal is read from the *same* K sampled CoTs per question, at three levels:

- per CoT (``cots``): how well it ranks the student's own sampled CoTs by gold correctness:
  a judge's P(correct) of that CoT; the vote share and ``predict:`` agreement of its answer;
  its mean token log-probability; minus its length in words; the combined confidence of its
  answer;
- per question (``questions``): the same signals of the answer ``mirror`` chose with the
  own-CoT judge (the deployed answer), the unit of risk-coverage and abstention;
- per greedy answer (``answers``): the signals of the ``predict:`` answer (``answer`` mode,
  the most accurate mode of a small student): its token probability, the share of the K CoTs
  that reach it, and each judge's mean P(correct) of those CoTs (0 where none does): how
  well what the student already samples ranks the answer it would give.

Higher always means "more likely right" (length enters negated).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from mindmirror.student.confidence import LOGPROB_FLOOR, ConfidenceModel, question_features
from mindmirror.student.infer import Judged, Prediction, mirror_prediction, vote_prediction
from mindmirror.tasks.base import Example, Task

#: Signals that are probabilities (ECE and Brier apply); the others only rank.
PROBABILITY_SIGNALS = ("judge_teacher", "judge_own", "judge_own_teacher", "vote_share")
PROBABILITY_SIGNALS += ("answer_prob", "combined")


@dataclass
class Signals:
    """Per-CoT and per-question signal values of one run, with the outcomes they predict.

    ``cot_question`` is each CoT's question index; ``accuracy`` holds each answer-choosing
    rule's per-question correctness (``vote``, ``mirror_teacher``, ``mirror_own``, ...);
    ``answers`` ranks the greedy answers, whose correctness is ``accuracy["answer"]``.
    """

    cots: dict[str, list[float]] = field(default_factory=dict)
    cot_correct: list[bool] = field(default_factory=list)
    cot_question: list[int] = field(default_factory=list)
    questions: dict[str, list[float]] = field(default_factory=dict)
    question_correct: list[bool] = field(default_factory=list)
    accuracy: dict[str, list[bool]] = field(default_factory=dict)
    answers: dict[str, list[float]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (the record a summary is computed from)."""
        return {
            "cots": self.cots,
            "cot_correct": self.cot_correct,
            "cot_question": self.cot_question,
            "questions": self.questions,
            "question_correct": self.question_correct,
            "accuracy": self.accuracy,
            "answers": self.answers,
        }


def _with(samples: list[Judged], probs: Sequence[dict[str, float]]) -> list[Judged]:
    return [replace(s, probs=p) for s, p in zip(samples, probs, strict=True)]


def _logprob(value: float | None) -> float:
    """A CoT's mean token log-probability, floored (unknown or -inf ones at the floor)."""
    if value is None or not math.isfinite(value):
        return LOGPROB_FLOOR
    return max(LOGPROB_FLOOR, value)


def _add(table: dict[str, list[float]], values: dict[str, float]) -> None:
    for name, value in values.items():
        table.setdefault(name, []).append(float(value))


def run_signals(
    task: Task,
    test: Sequence[Example],
    sampled: Sequence[list[Judged]],
    judges: dict[str, Sequence[Sequence[dict[str, float]]]],
    answers: Sequence[Prediction],
    model: ConfidenceModel | None,
) -> Signals:
    """The signals of every test question.

    Args:
        sampled: per question, its K sampled CoTs (with their log-probabilities).
        judges: per judge name (``teacher``, ``own``, optionally ``own_teacher``), per
            question, each CoT's verdict probabilities; ``own`` chooses the answer.
        answers: the greedy ``predict:`` answers (``answer`` mode).
        model: the combined confidence (None: no ``combined`` signal).
    """
    out = Signals()
    for i, (example, samples, answer) in enumerate(zip(test, sampled, answers, strict=True)):
        judged = {name: _with(samples, probs[i]) for name, probs in judges.items()}
        chosen = mirror_prediction(example.question, judged["own"], 0.0)
        features = question_features(chosen, answer)
        row = {
            f"judge_{name}": question_features(replace(chosen, samples=js), answer)["judge"]
            for name, js in judged.items()
        }
        row.update(
            vote_share=features["vote_share"],
            answer_prob=features["answer_prob"],
            logprob=features["logprob"],
            length=-features["length"],
        )
        if model is not None:
            row["combined"] = model.confidence(features)
        _add(out.questions, row)
        of_greedy = {
            name: question_features(replace(answer, samples=js), answer)
            for name, js in judged.items()
        }
        greedy = {f"judge_{name}": f["judge"] for name, f in of_greedy.items()}
        # Every judge sees the same CoTs, so any one gives the vote share.
        greedy.update(vote_share=of_greedy["own"]["vote_share"], answer_prob=answer.confidence)
        _add(out.answers, greedy)
        right = bool(task.is_correct(chosen.answer, example.gold, example.choices))
        out.question_correct.append(right)
        for rule, prediction in (
            ("answer", answer),
            ("vote", vote_prediction(example.question, samples)),
            *(
                (f"mirror_{n}", mirror_prediction(example.question, js, 0.0))
                for n, js in judged.items()
            ),
        ):
            ok = bool(task.is_correct(prediction.answer, example.gold, example.choices))
            out.accuracy.setdefault(rule, []).append(ok)
        for k, sample in enumerate(samples):
            mine = question_features(replace(chosen, canonical=sample.canonical), answer)
            cot = {f"judge_{name}": js[k].p_correct for name, js in judged.items()}
            cot.update(
                vote_share=mine["vote_share"],
                answer_prob=mine["answer_prob"],
                logprob=_logprob(sample.logprob),
                length=-float(len(sample.text.split())),
            )
            if model is not None:
                cot["combined"] = model.confidence(mine)
            _add(out.cots, cot)
            out.cot_correct.append(
                bool(task.is_correct(sample.answer, example.gold, example.choices))
            )
            out.cot_question.append(i)
    return out
