"""The safe arithmetic evaluator: what it accepts, what it refuses, and that it stays bounded."""

from __future__ import annotations

import pytest

from mindmirror.tasks.arith import (
    MAX_DEPTH,
    MAX_LENGTH,
    ExpressionError,
    close_enough,
    evaluate,
    format_number,
    safe_eval,
)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("( 84.0 / 2.0 )", 42.0),
        ("(84 / 2)", 42.0),
        ("((415 - 309) - (415 - 356))", 47.0),
        ("1,234.5 + 0.5", 1235.0),
        ("-3 + 5", 2.0),
        ("-(2 - 7) * 2", 10.0),
        ("2 + 3 * 4", 14.0),
        ("(2 + 3) * 4", 20.0),
        ("10 - 3 - 6", 1.0),
        ("12 / 4 / 3", 1.0),
        (".5 * 4", 2.0),
        ("7 × 30", 210.0),
        ("84 ÷ 2", 42.0),
        ("87 − 35", 52.0),
        ("  42  ", 42.0),
        ("--4", 4.0),
    ],
)
def test_evaluates_arithmetic(text: str, value: float) -> None:
    assert evaluate(text) == pytest.approx(value)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "2 ** 8",
        "2 ^ 8",
        "__import__('os').system('echo hi')",
        "abs(-3)",
        "x + 1",
        "1e9",
        "(1 + 2",
        "1 + 2)",
        "3, 4",
        "1 2",
        "5 / 0",
        "5 / (3 - 3)",
        "12,34",
        "1 +",
        "(14, 21)",
    ],
)
def test_refuses_anything_else(text: str) -> None:
    with pytest.raises(ExpressionError):
        evaluate(text)
    assert safe_eval(text) is None


def test_hostile_sizes_are_refused_quickly() -> None:
    with pytest.raises(ExpressionError, match="longer"):
        evaluate("1+" * MAX_LENGTH + "1")
    with pytest.raises(ExpressionError, match="nested"):
        evaluate("(" * (MAX_DEPTH + 1) + "1" + ")" * (MAX_DEPTH + 1))
    with pytest.raises(ExpressionError, match="nested"):
        evaluate("-" * (MAX_DEPTH + 1) + "1")
    with pytest.raises(ExpressionError, match="tokens"):
        evaluate("1+" * 100 + "1")
    # The longest accepted product still has a finite value (no exponent operator).
    assert evaluate("*".join(["9" * 20] * 14)) > 1e270


@pytest.mark.parametrize(
    ("value", "text"),
    [(42.0, "42"), (3.5, "3.5"), (-0.25, "-0.25"), (1 / 3, "0.333333"), (2.0000000001, "2")],
)
def test_format_number(value: float, text: str) -> None:
    assert format_number(value) == text


def test_close_enough_is_relative() -> None:
    assert close_enough(42.0, 42.000001)
    assert close_enough(123456.0, 123460.0)
    assert not close_enough(42.0, 42.1)
    assert close_enough(0.0, 0.0000001)
