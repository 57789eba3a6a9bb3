"""A safe arithmetic evaluator for model output: numbers, + - * /, unary minus, parentheses.

Model output is hostile input: the published Mind's Mirror code handed it to Python's
built-in ``eval``.
This is a tiny recursive-descent parser instead. It accepts nothing but numbers (``12``,
``3.5``, ``.5``, ``1,234.5`` with thousands commas), the four operators, unary minus and
parentheses, and it bounds the input's length, nesting depth and token count so no input can
make it slow. There is no exponent operator, so values stay bounded too (overflow to inf is
reported as an error rather than returned).
"""

from __future__ import annotations

import math
import re

MAX_LENGTH = 300
MAX_DEPTH = 32
MAX_TOKENS = 120

# Typographic variants models write for the same four operators.
_SYNONYMS = str.maketrans({"×": "*", "÷": "/", "−": "-", "–": "-", "∗": "*"})
_TOKEN = re.compile(
    r"\s*(?:(?P<num>\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d*)?|\.\d+)|(?P<op>[-+*/()]))"
)


class ExpressionError(ValueError):
    """The text is not an arithmetic expression this evaluator accepts, or has no value."""


def _tokenize(text: str) -> list[str]:
    tokens: list[str] = []
    pos = 0
    end = len(text.rstrip())
    while pos < end:
        match = _TOKEN.match(text, pos)
        if match is None:
            raise ExpressionError(f"unexpected character {text[pos:].lstrip()[:1]!r}")
        tokens.append(match.group("num") or match.group("op"))
        pos = match.end()
        if len(tokens) > MAX_TOKENS:
            raise ExpressionError(f"more than {MAX_TOKENS} tokens")
    return tokens


class _Parser:
    """expr := term (('+'|'-') term)*; term := unary (('*'|'/') unary)*;
    unary := '-' unary | '+' unary | '(' expr ')' | number."""

    def __init__(self, tokens: list[str]) -> None:
        self.tokens = tokens
        self.pos = 0
        self.depth = 0

    def peek(self) -> str | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self) -> str:
        token = self.peek()
        if token is None:
            raise ExpressionError("unexpected end of expression")
        self.pos += 1
        return token

    def expr(self) -> float:
        value = self.term()
        while self.peek() in ("+", "-"):
            sign = 1.0 if self.take() == "+" else -1.0
            value += sign * self.term()
        return value

    def term(self) -> float:
        value = self.unary()
        while self.peek() in ("*", "/"):
            if self.take() == "*":
                value *= self.unary()
            else:
                divisor = self.unary()
                if divisor == 0:
                    raise ExpressionError("division by zero")
                value /= divisor
        return value

    def unary(self) -> float:
        # Depth counts unary signs as well as parentheses: "------1" nests like "((((((1".
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise ExpressionError(f"nested deeper than {MAX_DEPTH}")
        token = self.take()
        if token == "-":
            value = -self.unary()
        elif token == "+":
            value = self.unary()
        elif token == "(":
            value = self.expr()
            if self.take() != ")":
                raise ExpressionError("missing ')'")
        elif token[0].isdigit() or token[0] == ".":
            value = float(token.replace(",", ""))
        else:
            raise ExpressionError(f"unexpected {token!r}")
        self.depth -= 1
        return value


def evaluate(text: str) -> float:
    """The value of an arithmetic expression such as ``( 84.0 / 2.0 )`` or ``-(1,200 - 7) * 2``.

    Raises:
        ExpressionError: anything but numbers, + - * /, unary minus and parentheses; too long,
            too deep or too many tokens; division by zero; a non-finite result.
    """
    if len(text) > MAX_LENGTH:
        raise ExpressionError(f"longer than {MAX_LENGTH} characters")
    tokens = _tokenize(text.translate(_SYNONYMS))
    if not tokens:
        raise ExpressionError("empty expression")
    parser = _Parser(tokens)
    value = parser.expr()
    if parser.peek() is not None:
        raise ExpressionError(f"unexpected {parser.peek()!r} after the expression")
    if not math.isfinite(value):
        raise ExpressionError("the value is not finite")
    return value


def safe_eval(text: str) -> float | None:
    """The value of ``text`` as an arithmetic expression, or None when it has none."""
    try:
        return evaluate(text)
    except ExpressionError:
        return None


def format_number(value: float) -> str:
    """A canonical spelling of a number: ``42``, ``3.5``, ``-0.25`` (at most 6 decimals)."""
    rounded = round(value, 6)
    if rounded == int(rounded):
        return str(int(rounded))
    return f"{rounded:.6f}".rstrip("0").rstrip(".")


def close_enough(a: float, b: float, rel_tol: float = 1e-4) -> bool:
    """Whether two answers are the same number, up to rounding in the model's arithmetic."""
    return math.isclose(a, b, rel_tol=rel_tol, abs_tol=1e-6)
