"""The four answer families: equation, number, multiple choice and label set.

Each family finds the answer a text states (the span after the last "The answer is"), brings it
to a canonical form for voting, and scores it against gold. Equations and numbers are compared
by value with the safe evaluator in :mod:`mindmirror.tasks.arith`, never with Python's
built-in evaluator.
"""

from __future__ import annotations

import re
import string

from mindmirror.tasks.arith import close_enough, format_number, safe_eval
from mindmirror.tasks.base import Task

# "The answer is", "So the answer is", "The final answer is", "Answer:", "**Answer:**".
_MARKER = re.compile(r"answer\**\s*(?:is\b\s*:?|:)\s*\**\s*", re.IGNORECASE)
_SENTENCE_END = re.compile(r"\.(?=\s|$)")
_GSM8K_MARKER = re.compile(r"####\s*")
# Characters an arithmetic answer is written with; a run of them holding a digit is a candidate.
_EXPR_RUN = re.compile(r"[\d\s.,+\-*/×÷−–∗()=$]+")
_TIMES_X = re.compile(r"(?<=[\d)])\s*[xX]\s*(?=[\d(])")
_TRIM_LEAD = " \t\n,.=+*/"
_TRIM_TAIL = " \t\n,.=+-*/(−–"
_BARE_MAX_CHARS = 80


def answer_span(text: str) -> str | None:
    """The text after the last "The answer is" (or "Answer:") up to the end of that sentence.

    None when the text has no such marker.
    """
    marks = list(_MARKER.finditer(text))
    if not marks:
        return None
    rest = text[marks[-1].end() :].split("\n", 1)[0]
    end = _SENTENCE_END.search(rest)
    if end:
        rest = rest[: end.start()]
    return rest.strip().strip("*\"'`").strip()


def _bare(text: str) -> str | None:
    """The whole text when it is short enough to be a bare answer (one line), else None."""
    stripped = text.strip()
    if not stripped or "\n" in stripped or len(stripped) > _BARE_MAX_CHARS:
        return None
    return stripped.rstrip(".").strip()


def _balance(expr: str) -> str:
    """Drop the unmatched parentheses a run picks up from surrounding prose."""
    while True:
        before = expr
        if expr.count(")") > expr.count("(") and expr.endswith(")"):
            expr = expr[:-1].rstrip(_TRIM_TAIL)
        if expr.count("(") > expr.count(")") and expr.startswith("("):
            expr = expr[1:].lstrip(_TRIM_LEAD)
        if expr == before:
            return expr


def _expression_runs(text: str) -> list[str]:
    """Candidate arithmetic answers in ``text``: runs of number/operator characters, cleaned."""
    # "4 x 2" is how small models often write a product.
    text = _TIMES_X.sub(" * ", text)
    runs = []
    for match in _EXPR_RUN.finditer(text):
        run = _balance(match.group().replace("$", "").strip(_TRIM_LEAD).rstrip(_TRIM_TAIL))
        if any(ch.isdigit() for ch in run):
            runs.append(run)
    return runs


def tidy_expression(expr: str) -> str:
    """``( 84.0 / 2.0 )`` -> ``(84 / 2)``: SVAMP gold written the way teachers write it."""
    if safe_eval(expr) is None:
        return expr
    expr = re.sub(r"(\d)\.0+\b", r"\1", expr)
    return re.sub(r"\(\s+", "(", re.sub(r"\s+\)", ")", expr)).strip()


class NumericTask(Task):
    """Answers that are numbers or arithmetic expressions, compared by value."""

    def __init__(self, name: str) -> None:
        self.name = name

    def answer_format(self) -> str:
        """Prompt phrase for the answer's shape."""
        return "a number such as 42"

    def parse_answer(self, text: str, choices: tuple[str, ...] | None = None) -> str | None:
        """The number or expression after the last "The answer is" (or GSM8K's ``####``).

        A text with neither marker (e.g. gpt-3.5 CoTs that just end on the result) falls back
        to its last number or expression, the usual convention for math word problems.
        """
        span = answer_span(text)
        if span is None:
            gsm = list(_GSM8K_MARKER.finditer(text))
            span = text[gsm[-1].end() :].split("\n", 1)[0] if gsm else None
        if span is not None:
            runs = _expression_runs(span)
            return runs[0] if runs else None
        runs = _expression_runs(text)
        return runs[-1] if runs else None

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
    """SVAMP-style answers: an equation over the question's numbers, e.g. ``(84 / 2)``."""

    family = "equation"

    def answer_format(self) -> str:
        """Prompt phrase for the answer's shape."""
        return "an arithmetic expression over the numbers in the question, such as (84 / 2)"

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


class ChoiceTask(Task):
    """Multiple choice (CommonsenseQA): answers as ``(b)``, ``B`` or the choice's text."""

    family = "choice"

    def __init__(self, name: str) -> None:
        self.name = name

    def answer_format(self) -> str:
        """Prompt phrase for the answer's shape."""
        return "the letter of one answer choice followed by its text, such as (b) library"

    def parse_answer(self, text: str, choices: tuple[str, ...] | None = None) -> str | None:
        """The text after the last "The answer is", or the whole text when it is a bare answer."""
        span = answer_span(text)
        return span if span is not None else _bare(text)

    def canonical(self, answer: str, choices: tuple[str, ...] | None = None) -> str | None:
        """The upper-case letter of the chosen answer; None when it names no single choice.

        A letter in parentheses wins (``(c) train station``); two different letters
        (``either (a) ... or (e) ...``) are no answer; a bare letter (``B``, ``b)``) counts;
        otherwise the answer must name exactly one choice's text. Repeated choices count as
        one answer (the first letter holding that text).
        """
        letter = self._letter(answer, choices)
        if letter is None or not choices:
            return letter
        # CommonsenseQA repeats some choices ("bridge", "bridge"): the same text is the same
        # answer, so it takes the letter of its first occurrence.
        norm = [_normalize_words(choice) for choice in choices]
        return string.ascii_uppercase[norm.index(norm[string.ascii_uppercase.index(letter)])]

    def _letter(self, answer: str, choices: tuple[str, ...] | None) -> str | None:
        letters = string.ascii_uppercase[: len(choices)] if choices else string.ascii_uppercase
        marked = {m.upper() for m in re.findall(r"\(([A-Za-z])\)", answer)}
        marked &= set(letters)
        if marked:
            return marked.pop() if len(marked) == 1 else None
        bare = re.fullmatch(r"\s*\(?([A-Za-z])(?:[).:]\s*.*|\s*)", answer, flags=re.DOTALL)
        if bare and bare.group(1).upper() in letters:
            return bare.group(1).upper()
        return self._by_text(answer, choices) if choices else None

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
# How PaLM, GPT and instruction-tuned models phrase NLI verdicts besides the label itself.
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
    "no": "contradiction",
    "false": "contradiction",
    "contradicts": "contradiction",
    "contradicted": "contradiction",
    "contradictory": "contradiction",
}


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
        # Longest phrases first, so "it is not possible to tell" is consumed before "no"/"not".
        self._phrases = sorted(
            ((_normalize_words(p), label) for p, label in phrases.items()), key=lambda x: -len(x[0])
        )

    def answer_format(self) -> str:
        """Prompt phrase for the answer's shape."""
        return "one of: " + ", ".join(self.labels)

    def parse_answer(self, text: str, choices: tuple[str, ...] | None = None) -> str | None:
        """The text after the last "The answer is", or the whole text when it is a bare answer."""
        span = answer_span(text)
        return span if span is not None else _bare(text)

    def canonical(self, answer: str, choices: tuple[str, ...] | None = None) -> str | None:
        """The one label the answer names (directly or by a known phrasing), else None."""
        words = _normalize_words(answer)
        named = set()
        for phrase, label in self._phrases:
            match = _find_phrase(phrase, words)
            while match:
                named.add(label)
                words = words[: match.start()] + " | " + words[match.end() :]
                match = _find_phrase(phrase, words)
        return named.pop() if len(named) == 1 else None
