"""The four answer families: equation, number, multiple choice and label set.

Each family finds the answer a text states (the span after the last "The answer is", or where
the family's teachers put it when there is no such sentence), returns it in a clean form that
can be a training target, brings it to a canonical form for voting, and scores it against
gold. A text whose answer cannot be read cleanly has no answer (None): it is counted as
unparsed and never trained on. Equations and numbers are compared by value with the safe
evaluator in :mod:`mindmirror.tasks.arith`, never with Python's built-in evaluator.
"""

from __future__ import annotations

import re
import string

from mindmirror.tasks.arith import close_enough, format_number, safe_eval
from mindmirror.tasks.base import Task
from mindmirror.tasks.expressions import (
    expression_runs,
    first_new_run,
    is_expression,
    question_numbers,
    sides,
    tidy_expression,
)
from mindmirror.tasks.spans import (
    MAX_SENTENCE_CHARS,
    answer_span,
    bare,
    clip,
    conclusion,
    first_sentence,
    last_sentence,
    without_quotes,
)

__all__ = [
    "NLI_LABELS",
    "NLI_SYNONYMS",
    "ChoiceTask",
    "EquationTask",
    "LabelTask",
    "NumberTask",
    "NumericTask",
    "answer_span",
    "tidy_expression",
]

_GSM8K_MARKER = re.compile(r"####\s*")


class NumericTask(Task):
    """Answers that are numbers or arithmetic expressions, compared by value.

    The reading shared by both numeric families is the number family's: a stated equation
    ``15 * 8 = 120`` answers with the value after its last ``=``. :class:`EquationTask`
    overrides it to keep the expression instead.
    """

    def __init__(self, name: str) -> None:
        self.name = name

    def answer_format(self) -> str:
        """Prompt phrase for the answer's shape."""
        return "a number such as 42"

    def parse_answer(
        self, text: str, choices: tuple[str, ...] | None = None, question: str | None = None
    ) -> str | None:
        """The number or expression the text concludes with.

        After the last "The answer is" (or GSM8K's ``####``) when there is one, else from the
        conclusion, the last sentence holding a number (gpt-3.5 CoTs often end on the result
        without an answer sentence). In the sentence read, a stated equation answers with its
        result (``15 * 8 = 120``, ``50 chairs - 5 tables = 45``); otherwise the first
        number or expression that is not just restated from ``question`` does ("Ed had 12
        more marbles than Doug after losing 17 marbles" answers 12 when the question holds
        17). The answer is a clean expression (numbers, ``+ - * /``, balanced parentheses) or
        None.
        """
        text = clip(text)
        given = question_numbers(question)
        span = answer_span(text)
        if span is None:
            gsm = list(_GSM8K_MARKER.finditer(text))
            span = text[gsm[-1].end() :].split("\n", 1)[0] if gsm else None
        if span is not None:
            run = self._span_run(span, given)
        else:
            sentence = conclusion(text)
            run = self._conclusion_run(sentence, given) if sentence else None
        found = sides(run) if run is not None else []
        answer = self._side(found) if found else None
        return answer if answer is not None and is_expression(answer) else None

    def _span_run(self, span: str, given: frozenset[str]) -> str | None:
        """The run an answer sentence states: the first one after its last ``=``, else the
        first that is not restated from the question."""
        # "15 gallons * 8 pints / gallon = 120 pints": the answer is what the equation gives.
        if "=" in span:
            runs = expression_runs(span.rsplit("=", 1)[-1])
            if runs:
                return runs[0]
        return first_new_run(expression_runs(span), given)

    def _conclusion_run(self, sentence: str, given: frozenset[str]) -> str | None:
        """The run a concluding sentence states: its last equation; the first run after its
        last ``=`` when prose splits the equation; else its first run not restated."""
        runs = expression_runs(sentence)
        equations = [run for run in runs if "=" in run and len(sides(run)) > 1]
        if equations:
            return equations[-1]
        if "=" in sentence:
            after = first_new_run(expression_runs(sentence.rsplit("=", 1)[-1]), frozenset())
            if after is not None:
                return after
        return first_new_run(runs, given)

    def _side(self, found: list[str]) -> str:
        """Of a run's sides of ``=``, the one that is the answer: the result, the last one."""
        return found[-1]

    def value(self, answer: str) -> float | None:
        """The value of an answer; for ``84 / 2 = 42`` the right-most side that evaluates."""
        for side in reversed(answer.split("=")):
            value = safe_eval(side)
            if value is not None:
                return value
        return None

    def canonical(self, answer: str, choices: tuple[str, ...] | None = None) -> str | None:
        """The answer's value spelled canonically (``42``, ``3.5``); None when it has none."""
        value = self.value(answer)
        return None if value is None else format_number(value)

    def is_correct(
        self, answer: str | None, gold: str | None, choices: tuple[str, ...] | None = None
    ) -> bool | None:
        """Equal values up to a relative tolerance of 1e-4; None when there is no gold."""
        if gold is None:
            return None
        if answer is None:
            return False
        pred, ref = self.value(answer), self.value(gold)
        return pred is not None and ref is not None and close_enough(pred, ref)


class EquationTask(NumericTask):
    """SVAMP-style answers: an equation over the question's numbers, e.g. ``(84 / 2)``.

    The answer is the expression, left of any ``=`` (``100 - 68 = 32`` answers ``100 - 68``),
    and it is scored by that expression's value, as the published code does
    (``label.split('=')[0]``): ``84 / 2 = 41`` is worth 42.
    """

    family = "equation"

    def answer_format(self) -> str:
        """Prompt phrase for the answer's shape."""
        return "an arithmetic expression over the numbers in the question, such as (84 / 2)"

    def _span_run(self, span: str, given: frozenset[str]) -> str | None:
        """The first run of the answer sentence that is not restated from the question: the
        expression it states (``The answer is (84 / 2) = 42``: ``84 / 2``)."""
        return first_new_run(expression_runs(span), given)

    def _side(self, found: list[str]) -> str:
        """The expression: the left-most side of ``=`` that holds a number."""
        return found[0]

    def value(self, answer: str) -> float | None:
        """The value of the expression left of the first ``=``."""
        return safe_eval(answer.split("=", 1)[0])

    def answer_text(self, answer: str) -> str:
        """``The answer is (84 / 2).`` with gold's ``( 84.0 / 2.0 )`` tidied to match teachers."""
        return f"{self.answer_sentence} {tidy_expression(answer)}."


class NumberTask(NumericTask):
    """GSM8K-style answers: one number (``#### 72``, ``The answer is 1,234.5``, ``$72.``)."""

    family = "number"


def _normalize_words(text: str) -> str:
    text = text.lower().translate(str.maketrans(string.punctuation, " " * len(string.punctuation)))
    return " ".join(text.split())


def _find_phrase(phrase: str, text: str) -> re.Match[str] | None:
    return re.search(rf"(?<!\w){re.escape(phrase)}(?!\w)", text)


# How a reply points at a choice by letter: "(c)", "c) play tag", "option E", "Choice B".
_LETTER_REFS = re.compile(
    r"\(([A-Za-z])\)|(?<![\w(])([A-Za-z])\)|\b(?:[Oo]ption|[Cc]hoice)[^\S\n]+([A-Z])\b"
)
_BARE_LETTER = re.compile(r"\s*\(?([A-Za-z])(?:[).:]\s*.*|\s*)", re.DOTALL)


def _letters_referenced(text: str, letters: str) -> set[str]:
    """The choice letters ``text`` points at explicitly, limited to ``letters``."""
    found = {"".join(match.groups(default="")).upper() for match in _LETTER_REFS.finditer(text)}
    return found & set(letters)


class ChoiceTask(Task):
    """Multiple choice (CommonsenseQA): answers as ``(b)``, ``B`` or the choice's text."""

    family = "choice"

    def __init__(self, name: str) -> None:
        self.name = name

    def answer_format(self) -> str:
        """Prompt phrase for the answer's shape."""
        return "the letter of one answer choice followed by its text, such as (b) library"

    def parse_answer(
        self, text: str, choices: tuple[str, ...] | None = None, question: str | None = None
    ) -> str | None:
        """The one choice the text answers, as ``(c) choice text`` (``(c)`` without choices).

        Read from the last "The answer is" sentence, else from the whole text when it is a
        bare answer, else from the letter the first (or else the last) sentence points at
        (``c) play tag, as ...``, ``I would pick option e) ...``). None unless exactly one
        choice is named.
        """
        text = clip(text)
        span = answer_span(text)
        short = bare(text) if span is None else span
        if short is not None:
            letter = self._letter(short, choices)
        else:
            letter = self._stated_letter(text, choices)
        if letter is None:
            return None
        if not choices:
            return f"({letter.lower()})"
        return f"({letter.lower()}) {choices[string.ascii_uppercase.index(letter)]}"

    def canonical(self, answer: str, choices: tuple[str, ...] | None = None) -> str | None:
        """The upper-case letter of the chosen answer; None when it names no single choice.

        A letter pointed at (``(c) train station``, ``c) train station``, ``option C``) wins;
        two different letters (``either (a) ... or (e) ...``) are no answer; a bare letter
        (``B``, ``B. library``) counts; otherwise the answer must name exactly one choice's
        text. Repeated choices count as one answer (the first letter holding that text).
        """
        letter = self._letter(answer, choices)
        if letter is None or not choices:
            return letter
        # CommonsenseQA repeats some choices ("bridge", "bridge"): the same text is the same
        # answer, so it takes the letter of its first occurrence.
        norm = [_normalize_words(choice) for choice in choices]
        return string.ascii_uppercase[norm.index(norm[string.ascii_uppercase.index(letter)])]

    @staticmethod
    def _letters(choices: tuple[str, ...] | None) -> str:
        return string.ascii_uppercase[: len(choices)] if choices else string.ascii_uppercase

    def _letter(self, answer: str, choices: tuple[str, ...] | None) -> str | None:
        letters = self._letters(choices)
        marked = _letters_referenced(answer, letters)
        if marked:
            return marked.pop() if len(marked) == 1 else None
        bare_letter = _BARE_LETTER.fullmatch(answer)
        if bare_letter and bare_letter.group(1).upper() in letters:
            return bare_letter.group(1).upper()
        return self._by_text(answer, choices) if choices else None

    def _stated_letter(self, text: str, choices: tuple[str, ...] | None) -> str | None:
        """The one letter the first, or else the last, sentence of a long reply points at."""
        letters = self._letters(choices)
        for sentence in (first_sentence(text), last_sentence(text)):
            marked = _letters_referenced(sentence or "", letters)
            if len(marked) == 1:
                return marked.pop()
        return None

    @staticmethod
    def _by_text(answer: str, choices: tuple[str, ...]) -> str | None:
        words = _normalize_words(answer)
        norm = [_normalize_words(choice) for choice in choices]
        for article in ("a ", "an ", "the "):
            words = words.removeprefix(article)
        if words in norm:
            return string.ascii_uppercase[norm.index(words)]
        found = {c for c in norm if c and _find_phrase(c, words)}
        # "river bed" also contains the choice "bed": keep only the longest of nested matches.
        found = {c for c in found if not any(c != o and _find_phrase(c, o) for o in found)}
        if len(found) != 1:
            return None
        return string.ascii_uppercase[norm.index(found.pop())]


NLI_LABELS = ("entailment", "neutral", "contradiction")
# How PaLM, GPT and instruction-tuned models phrase NLI verdicts besides the label itself,
# including the claim-checking style ("The claim ... is true / false / inconclusive").
NLI_SYNONYMS = {
    "yes": "entailment",
    "true": "entailment",
    "entails": "entailment",
    "entailed": "entailment",
    "it is not possible to tell": "neutral",
    "it's not possible to tell": "neutral",
    "not possible to tell": "neutral",
    "cannot be determined": "neutral",
    "can not be determined": "neutral",
    "unknown": "neutral",
    "undetermined": "neutral",
    "inconclusive": "neutral",
    "neither": "neutral",
    "neither true nor false": "neutral",
    "neither entailment nor contradiction": "neutral",
    "neither entails nor contradicts": "neutral",
    "neither entailed nor contradicted": "neutral",
    "not necessarily true": "neutral",
    "no": "contradiction",
    "false": "contradiction",
    "not true": "contradiction",
    "cannot be true": "contradiction",
    "can't be true": "contradiction",
    "contradicts": "contradiction",
    "contradicted": "contradiction",
    "contradictory": "contradiction",
}
# Synonyms that are also everyday words: in a reply ("there is no evidence") they name a label
# only as the first word of what is read ("No, the claim ..."); a task's own labels always do.
_LOOSE_WORDS = frozenset({"yes", "no"})
# A label word right after one of these is negated ("not entailed", "isn't true"): it names no
# label unless a longer phrase ("not true") says which one.
_NEGATIONS = frozenset({"not", "t", "never"})


# In prose, "whether" opens the question being asked, up to the end of its clause.
_WHETHER = re.compile(r"(?<!\w)whether\b.*")


def _alternatives(words: str, matches: list[re.Match[str]], index: int) -> bool:
    """Whether label match ``index`` is one side of "A or B" between two label phrases (the
    question's framing, as in "true or false", not a verdict)."""
    before = matches[index - 1] if index else None
    after = matches[index + 1] if index + 1 < len(matches) else None
    match = matches[index]
    return (before is not None and words[before.end() : match.start()] == " or ") or (
        after is not None and words[match.end() : after.start()] == " or "
    )


class LabelTask(Task):
    """A closed label set (ANLI: entailment / neutral / contradiction)."""

    family = "label"

    def __init__(
        self, name: str, labels: tuple[str, ...], synonyms: dict[str, str] | None = None
    ) -> None:
        self.name = name
        self.labels = tuple(label.strip().lower() for label in labels)
        self.synonyms = {k.lower(): v.lower() for k, v in (synonyms or {}).items()}
        unknown = set(self.synonyms.values()) - set(self.labels)
        if unknown:
            raise ValueError(f"synonyms map to labels outside the label set: {sorted(unknown)}")
        phrases = {label: label for label in self.labels} | self.synonyms
        self._loose = {word for word in _LOOSE_WORDS if word in self.synonyms}
        self._label_of = {_normalize_words(p): label for p, label in phrases.items()}
        # Longest phrases first, so "it is not possible to tell" wins over "no"/"not" where
        # both start; one left-to-right scan keeps reading linear in the answer's length.
        ordered = sorted(self._label_of, key=len, reverse=True)
        self._phrases = re.compile(rf"(?<!\w)(?:{'|'.join(map(re.escape, ordered))})(?!\w)")

    def answer_format(self) -> str:
        """Prompt phrase for the answer's shape."""
        return "one of: " + ", ".join(self.labels)

    def parse_answer(
        self, text: str, choices: tuple[str, ...] | None = None, question: str | None = None
    ) -> str | None:
        """The one label the text states, spelled as in the label set; None otherwise.

        Read from the last "The answer is" sentence, else from the whole text when it is a
        bare answer, else from the first sentence (``The claim "..." is true.``), else from
        the concluding one (``Therefore, the claim ... is true.``). Quoted text is the
        question's words, not the verdict, and is ignored; so is a framing of the question
        ("whether the claim is true", "true or false").
        """
        unquoted = without_quotes(clip(text))
        span = answer_span(unquoted)
        stated = bare(unquoted) if span is None else span
        if stated is not None:
            return self._label(stated, prose=True)
        first = first_sentence(without_quotes(text[: MAX_SENTENCE_CHARS * 2]))
        label = self._label(first, prose=True) if first else None
        if label is None:
            # A conclusion names its verdict in words ("the claim is true"), never as a bare
            # "Yes" or "No" opening the sentence.
            last = last_sentence(unquoted)
            label = self._label(last, prose=True, loose=False) if last else None
        return label

    def canonical(self, answer: str, choices: tuple[str, ...] | None = None) -> str | None:
        """The one label the answer names (directly or by a known phrasing), else None."""
        return self._label(answer, prose=False)

    def _label(self, text: str, prose: bool, loose: bool = True) -> str | None:
        words = _normalize_words(text)
        if prose:
            # "... whether the claim is true": what follows "whether" is the question asked.
            words = _WHETHER.sub(" ", words)
        named = set()
        matches = list(self._phrases.finditer(words))
        for index, match in enumerate(matches):
            start = match.start()
            if prose and _alternatives(words, matches, index):
                continue
            previous = words[words.rfind(" ", 0, start - 1) + 1 : start - 1] if start else ""
            if previous in _NEGATIONS:
                continue
            if prose and (start or not loose) and match.group() in self._loose:
                continue
            named.add(self._label_of[match.group()])
        return named.pop() if len(named) == 1 else None
