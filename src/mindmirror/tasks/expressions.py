"""Arithmetic expressions in free text: candidate runs, their sides of ``=``, and cleaning.

A reply states a math answer as a run of number and operator characters inside prose ("he has
100 - 68 = 32 more", "(8 x 74) = 592 nails"). A run is cut out, its typographic operators are
spelled ``+ - * /``, parentheses that the prose opened or closed are dropped, and the side of
``=`` the family wants is kept. What is left counts only when it is a clean expression: numbers,
``+ - * /`` and balanced parentheses that the safe evaluator accepts.
"""

from __future__ import annotations

import re

from mindmirror.tasks.arith import format_number, safe_eval

# Runs stop at line breaks: a result on the next line is another statement.
_EXPR_RUN = re.compile(r"[\d \t.,+\-*/×÷−–∗()=]+")
_TIMES_X = re.compile(r"(?<=[\d)])\s*[xX]\s*(?=[\d(])")
_ASCII = str.maketrans({"×": "*", "÷": "/", "−": "-", "–": "-", "∗": "*"})
_CLEAN = re.compile(r"[\d\s.,+\-*/()]+")
# Stand-ins for a ")" a run closes without opening it, and a "(" it leaves open mid-expression.
_CLOSED = "\x00"
_DANGLING = "\x01"
_OPERATION = re.compile(r"[\d)]\s*[+\-*/]\s*[\d(]")
_FRAGMENT = re.compile(r"^(?:[+*/]|-\s)|[+\-*/]$")
_NUMBER = re.compile(r"\d[\d,]*(?:\.\d+)?|\.\d+")
# Questions are read from their start and at most this much of it.
MAX_QUESTION_CHARS = 4_000


def is_expression(text: str) -> bool:
    """Whether ``text`` is a clean expression: numbers, ``+ - * /``, balanced parentheses."""
    return bool(_CLEAN.fullmatch(text)) and safe_eval(text) is not None


def _drop_unmatched(text: str, closing: str = _CLOSED) -> str:
    """``text`` with the parentheses it does not both open and close replaced, in one pass.

    An unmatched ``(`` after an operator (``(415 - 309) - (41``: the reply was cut off)
    becomes :data:`_DANGLING`, any other one a space (so ``3(971`` stays two numbers, no
    expression); an unmatched ``)`` becomes ``closing``.
    """
    chars = list(text)
    opened: list[int] = []
    for index, char in enumerate(chars):
        if char == "(":
            opened.append(index)
        elif char == ")":
            if opened:
                opened.pop()
            else:
                chars[index] = closing
    for index in opened:
        before = index - 1
        while before >= 0 and text[before] in " \t":
            before -= 1
        chars[index] = _DANGLING if before >= 0 and text[before] in "+-*/" else " "
    return "".join(chars)


def expression_runs(text: str) -> list[str]:
    """Runs of number/operator characters in ``text`` that hold a digit, in order, ASCII-spelled.

    ``4 x 2`` (how small models often write a product) reads as ``4 * 2``; ``$`` and ``**``
    are dropped.
    """
    # Markdown bold ("**4** inches") is not an operator: the grammar has no power operator.
    text = _TIMES_X.sub(" * ", text.replace("$", " ").replace("**", " "))
    runs = []
    for match in _EXPR_RUN.finditer(text):
        run = match.group().translate(_ASCII).strip()
        if any(char.isdigit() for char in run):
            runs.append(run)
    return runs


def _complete(side: str) -> str | None:
    """A side of ``=`` cleaned of surrounding punctuation, or None when the prose holds one
    of its operands ("cards - 45", "÷ 2 invitations") or it has no number."""
    side = " ".join(side.split()).strip(" ,").rstrip(" .,")
    if side.startswith(".") and not side[1:2].isdigit():  # a full stop, not ".5"
        side = side[1:].lstrip()
    if _FRAGMENT.search(side) or not any(char.isdigit() for char in side):
        return None
    return side


def sides(run: str) -> list[str]:
    """The complete sides of ``=`` in a run, left to right, each with its number.

    ``(100 - 68 = 32)`` -> ``["100 - 68", "32"]``; ``(day 3) = 125`` gives the run
    ``3) = 125`` -> ``["125"]``; ``(20 invitations ÷ 2 invitations)`` gives ``÷ 2`` -> ``[]``;
    ``(14 divided by 7)`` gives ``7)`` -> ``[]``.
    """
    pieces = _drop_unmatched(run).split("=")
    # A ")" the run never opened, in its first side, closes an aside the prose opened. Before
    # "=" ("(day 3) = 125"), or after a lone number ("(14 divided by 7)"), that side is the
    # aside's last words; an operation ("(which is 84 / 2)") is the aside's math. Later sides
    # start at "=", inside the run.
    if _CLOSED in pieces[0] and (len(pieces) > 1 or not _OPERATION.search(pieces[0])):
        pieces[0] = ""
    found = []
    for piece in pieces:
        if _DANGLING in piece:
            continue
        # Parentheses around a whole equation ("(100 - 68 = 32)") are unmatched in each side.
        side = _complete(_drop_unmatched(piece.replace(_CLOSED, " "), closing=" "))
        if side is not None:
            found.append(side)
    return found


def tidy_expression(expr: str) -> str:
    """``( 84.0 / 2.0 )`` -> ``(84 / 2)``: SVAMP gold written the way teachers write it."""
    if safe_eval(expr) is None:
        return expr
    expr = re.sub(r"(\d)\.0+\b", r"\1", expr)
    return re.sub(r"\(\s+", "(", re.sub(r"\s+\)", ")", expr)).strip()


def question_numbers(question: str | None) -> frozenset[str]:
    """The numbers a question states, spelled canonically (``1,200.0`` -> ``1200``)."""
    if not question:
        return frozenset()
    found = set()
    for match in _NUMBER.finditer(question[:MAX_QUESTION_CHARS]):
        value = safe_eval(match.group().replace(",", ""))
        if value is not None:
            found.add(format_number(value))
    return frozenset(found)


def _restated(run: str, given: frozenset[str]) -> bool:
    """Whether a run is one bare number the question already states."""
    found = sides(run)
    if len(found) != 1 or not _NUMBER.fullmatch(found[0].strip("()").strip()):
        return False
    value = safe_eval(found[0].replace(",", ""))
    return value is not None and format_number(value) in given


def first_new_run(runs: list[str], given: frozenset[str]) -> str | None:
    """The first run holding a complete side that is not a number restated from the question
    (numbers the question gives are what a conclusion repeats, not what it finds); the first
    run with a side when every one is restated; None when no run has a side."""
    usable = [run for run in runs if sides(run)]
    fresh = [run for run in usable if not _restated(run, given)]
    if fresh:
        return fresh[0]
    return usable[0] if usable else None
