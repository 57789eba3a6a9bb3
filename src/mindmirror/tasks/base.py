"""What every task provides: examples, question rendering, answer parsing and scoring.

A task is one answer *family* (equation, number, choice, label) plus a loader. Parsing and
scoring are pure functions of strings, so the teacher (parsing CoTs), the student side
(targets, voting) and evaluation all agree on what an answer is.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass


@dataclass(frozen=True)
class Example:
    """One question with its gold answer.

    Attributes:
        id: stable id, unique across splits (e.g. ``svamp-train-0001``).
        split: ``train``, ``validation`` or ``test``.
        question: the question exactly as models see it (choices / premise and hypothesis
            already rendered into the text).
        gold: gold answer in the task's canonical form (``( 84.0 / 2.0 )``, ``72``, ``B``,
            ``neutral``); None when the dataset has no label.
        choices: answer choices of a multiple-choice task, in letter order.
        rationale: a worked solution ending in the task's answer sentence ("8 + 6 = 14. The
            answer is (8 + 6)."), when the dataset has one; few-shot prompts show it.
    """

    id: str
    split: str
    question: str
    gold: str | None
    choices: tuple[str, ...] | None = None
    rationale: str | None = None


class Task(ABC):
    """An answer family: parse an answer out of free text and score it against gold."""

    name: str = "task"
    family: str = "abstract"
    answer_sentence: str = "The answer is"

    @abstractmethod
    def answer_format(self) -> str:
        """A phrase telling a model what an answer looks like, used in prompts.

        e.g. ``"an arithmetic expression such as (84 / 2)"`` or ``"one letter from A to E"``.
        """

    @abstractmethod
    def parse_answer(
        self, text: str, choices: tuple[str, ...] | None = None, question: str | None = None
    ) -> str | None:
        """The answer stated in ``text`` (a CoT or a bare answer), or None when there is none.

        ``question``, when given, is the question the text answers: numeric families use it
        to tell a result from a number the conclusion merely restates.

        Looks for the last ``answer_sentence`` ("The answer is ...") and falls back to where
        the family's teachers state answers without one. Returns the answer in a clean form
        that can be a training target (``100 - 68``, ``(c) park``, ``neutral``); None when no
        clean answer can be read, so junk is counted as unparsed and never trained on.
        """

    @abstractmethod
    def canonical(self, answer: str, choices: tuple[str, ...] | None = None) -> str | None:
        """A normal form for comparing and voting (``42``, ``B``, ``neutral``); None if invalid."""

    def is_correct(
        self, answer: str | None, gold: str | None, choices: tuple[str, ...] | None = None
    ) -> bool | None:
        """Whether ``answer`` matches ``gold``; None when there is no gold."""
        if gold is None:
            return None
        if answer is None:
            return False
        pred, ref = self.canonical(answer, choices), self.canonical(gold, choices)
        return pred is not None and pred == ref

    def answer_text(self, answer: str) -> str:
        """The sentence a model is trained to produce for a bare answer: ``The answer is X.``"""
        return f"{self.answer_sentence} {answer}."
