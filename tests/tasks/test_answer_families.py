"""Answer parsing and scoring of each family, on hand-picked strings from the real data."""

from __future__ import annotations

import time

import pytest

from mindmirror.tasks import ChoiceTask, EquationTask, LabelTask, NumberTask
from mindmirror.tasks.families import NLI_LABELS, NLI_SYNONYMS, answer_span, tidy_expression

SVAMP = EquationTask("svamp")
GSM8K = NumberTask("gsm8k")
CQA = ChoiceTask("cqa")
ANLI = LabelTask("anli", NLI_LABELS, NLI_SYNONYMS)
CHOICES = ("park", "coloring book", "garden center", "math problem", "gravity")


def test_answer_span_takes_the_last_answer_sentence() -> None:
    text = "The answer is 3. Wait, no. So the answer is (84 / 2). Done."
    assert answer_span(text) == "(84 / 2)"
    assert answer_span("**Answer:** 42") == "42"
    assert answer_span("no marker here") is None
    assert answer_span("The answer is 3.5.") == "3.5"


@pytest.mark.parametrize(
    ("text", "answer", "value"),
    [
        # PaLM, svamp/dss/llm/train_CoT_0.json
        ("Luke scored 84 points after 2 rounds. So he scored 84 points in 2 rounds. "
         "84 / 2 = 42. The answer is (84 / 2).", "(84 / 2)", "42"),
        ("So she played with 17 + 15 + 2 = 34 kids altogether. The answer is (17 + 15 + 2).",
         "(17 + 15 + 2)", "34"),
        # gpt-3.5, MCC-KD: no answer sentence, the result ends the text; the answer is the
        # expression left of "=", without the parentheses the prose put around it
        ("He has 102 - 35 = 67 wrappers in his collection.\nTherefore, he has 67 - 33 = 34 "
         "more wrappers than bottle caps.", "67 - 33", "34"),
        ("The second chapter has 43 more pages than the first chapter (80 - 37 = 43).",
         "80 - 37", "43"),
        ("Baker has 167 (original number of cakes) - 108 (sold cakes) = 59 remaining cakes.",
         "59", "59"),
        ("471 visitors (day 1) + \n808 visitors (day 2) + \n512 visitors (day 3) = \n1791 "
         "visitors", "1791", "1791"),
        ("They made $152 from selling jerseys (2 x $76 = $152).", "2 * 76", "152"),
        ("Robin cut off **4** inches of her hair.", "4", "4"),
        ("87 (wrappers) – 35 (bottle caps) = 52\n\nDanny has 52 more wrappers than bottle caps.",
         "52", "52"),
        ("The answer is $ 72.", "72", "72"),
        ("The answer is 42 points.", "42", "42"),
        ("The answer is 1,234.5 dollars.", "1,234.5", "1234.5"),
        ("The answer is -(3 - 10).", "-(3 - 10)", "7"),
        ("The answer is (which is 84 / 2).", "84 / 2", "42"),
        ("(84 / 2)", "(84 / 2)", "42"),
        # SmolLM2-135M on the demo task
        ("There are 2 * 4 = 8 cookies in total. The answer is (4 x 2) + 1 = 9.",
         "(4 * 2) + 1", "9"),
        ("The answer is (8*10)+7.", "(8*10)+7", "87"),
    ],
)  # fmt: skip
def test_equation_parse_and_value(text: str, answer: str, value: str) -> None:
    assert SVAMP.parse_answer(text) == answer
    assert SVAMP.canonical(answer) == value


@pytest.mark.parametrize(
    "text",
    [
        # Real PaLM failures: two answers, an unknown in the expression, a cut-off reply.
        "The answer is (175, 5).",
        "So some - 7 + 2 = 10. The answer is ((some - 7) + 2).",
        "So 2 * x = 12. The answer is (2 * x).",
        "106 - 59 = 47. The answer is ((415 - 309) - (41",
        # A real gpt-3.5 (MCC-KD) ending whose numbers are all fragments of prose arithmetic.
        "Rachel had a total of (9+11) 20 pages of math and reading homework.",
        "The answer is forty-two.",
    ],
)
def test_equation_answer_that_is_no_clean_expression_is_unparsed(text: str) -> None:
    assert SVAMP.parse_answer(text) is None


@pytest.mark.parametrize(
    ("text", "answer"),
    [
        # Real gpt-3.5 (MCC-KD) endings: the conclusion states its result first, and the
        # prose arithmetic after it is no clean expression (the last-run reading found none).
        ("Emily can make 144 necklaces (432 beads ÷ 3 beads per necklace).", "144"),
        ("Jack received a total of 8 emails in the day (3 in the morning + 5 in the "
         "afternoon).", "8"),
        # A parenthesised aside after the conclusion is not the conclusion.
        ("Each bag would have 2 cookies. (14 divided by 7)", "2"),
        ("Faye has a total of 154 pencil {(14 rows) x (11 pencils in each row)}.", "154"),
    ],
)  # fmt: skip
def test_equation_conclusion_states_its_result_before_prose_arithmetic(
    text: str, answer: str
) -> None:
    assert SVAMP.parse_answer(text) == answer


def test_equation_unparseable_answers() -> None:
    assert SVAMP.parse_answer("I do not know.") is None
    assert SVAMP.is_correct(None, "( 84.0 / 2.0 )") is False


def test_equation_is_scored_by_its_expression_number_by_its_result() -> None:
    # The published code evaluates label.split('=')[0]: a wrong result does not count.
    assert SVAMP.parse_answer("So 84 / 2 = 41. The answer is 84 / 2 = 41.") == "84 / 2"
    assert SVAMP.canonical("84 / 2 = 41") == "42"
    assert SVAMP.is_correct("84 / 2 = 41", "( 84.0 / 2.0 )")
    assert not SVAMP.is_correct("84 / 2 = 41", "41")
    assert GSM8K.parse_answer("So the answer is 84 / 2 = 41.") == "41"
    assert GSM8K.canonical("84 / 2 = 41") == "41"


def test_equation_scored_by_value() -> None:
    gold = "( 84.0 / 2.0 )"
    assert SVAMP.is_correct("(84 / 2)", gold)
    assert SVAMP.is_correct("42", gold)
    assert SVAMP.is_correct("42.000001", gold)
    assert not SVAMP.is_correct("(84 * 2)", gold)
    assert SVAMP.is_correct("(7 * 30)", "( 30.0 * 7.0 )")
    assert SVAMP.is_correct("(84 / 2)", None) is None
    assert SVAMP.canonical("( 10.0 / 4.0 )") == "2.5"


def test_equation_answer_text_tidies_gold() -> None:
    assert tidy_expression("( ( 8.0 + 6.0 ) - 3.0 )") == "((8 + 6) - 3)"
    assert SVAMP.answer_text("( 84.0 / 2.0 )") == "The answer is (84 / 2)."
    assert SVAMP.answer_text("(84 / 2)") == "The answer is (84 / 2)."
    assert SVAMP.answer_text("( 2.5 * 2.0 )") == "The answer is (2.5 * 2)."
    assert "answer" in SVAMP.answer_format() or "expression" in SVAMP.answer_format()


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("Natalia sold 48/2 = <<48/2=24>>24 clips in May.\n#### 72", "72"),
        ("The answer is 1,234.5", "1234.5"),
        ("$72.", "72"),
        ("She earns 0.2 * 50 = $10.\nThe answer is $10.", "10"),
        ("#### 1,000", "1000"),
        ("The final answer is 18", "18"),
        # A GSM8K-style answer sentence with units: the value after "=" is the answer.
        (
            "Each gallon is 8 pints.\nSo the final answer is 15 gallons * 8 pints / gallon = "
            "120 pints.",
            "120",
        ),
        ("The answer is 3 * 4 = $12 in total.", "12"),
        ("He has 5 apples. The answer is **7**.", "7"),
    ],
)
def test_number_parse(text: str, value: str) -> None:
    answer = GSM8K.parse_answer(text)
    assert answer is not None
    assert GSM8K.canonical(answer) == value


def test_answer_marker_never_reaches_across_a_blank_line() -> None:
    text = "Here is my answer is\n\n7 boxes hold 6 each, 7 x 6 = 42. So 42 cookies."
    assert answer_span("The answer is\n\n42") is None
    assert answer_span("Answer:\n42") == "42"
    assert GSM8K.parse_answer(text) == "42"
    assert SVAMP.parse_answer(text) == "42"


def test_hostile_replies_are_read_in_linear_time() -> None:
    started = time.perf_counter()
    assert SVAMP.parse_answer("(" * 100_000 + "1" + ")" * 100_000) is None
    assert GSM8K.parse_answer("(1 + " * 50_000) is None
    assert ANLI.parse_answer("The answer is " + "yes no " * 50_000) is None
    assert CQA.parse_answer("(a) (b) " * 50_000, CHOICES) is None
    assert time.perf_counter() - started < 2.0


def test_number_scoring() -> None:
    assert GSM8K.is_correct("72", "72")
    assert GSM8K.is_correct("72.0", "72")
    assert not GSM8K.is_correct("71", "72")
    assert GSM8K.answer_text("72") == "The answer is 72."


@pytest.mark.parametrize(
    ("text", "letter"),
    [
        # PaLM, cqa/dss/llm/train_CoT_0.json
        ("The answer must be something that has to do with the above problem. Of the above "
         "choices, only math problem has to do with the above problem. So the answer is (d) "
         "math problem.", "D"),
        ("So the answer is (D).", "D"),
        ("B", "B"),
        ("b)", "B"),
        ("(e)", "E"),
        ("The answer is gravity.", "E"),
        ("The answer is a garden center.", "C"),
        ("The answer is the coloring book", "B"),
        ("The answer is Math Problem.", "D"),
        ("Answer: C", "C"),
        ("The answer is: C", "C"),
        ("The correct answer is **(a) park**.", "A"),
    ],
)  # fmt: skip
def test_choice_canonical(text: str, letter: str) -> None:
    answer = CQA.parse_answer(text, CHOICES)
    assert answer is not None
    assert CQA.canonical(answer, CHOICES) == letter
    assert CQA.is_correct(answer, letter, CHOICES)


def test_choice_no_single_answer() -> None:
    either = "So the answer is either (a) aquarium or (e) pond."
    assert CQA.canonical(CQA.parse_answer(either) or "", CHOICES) is None
    assert CQA.canonical("one of these four", CHOICES) is None
    assert CQA.canonical("(f) something", CHOICES) is None  # only five choices
    assert CQA.canonical("park or gravity", CHOICES) is None
    assert CQA.parse_answer("x" * 200) is None  # long text without an answer sentence


def test_choice_nested_choice_texts_prefer_the_longest() -> None:
    choices = ("bed", "river bed", "lake", "sea", "pond")
    assert CQA.canonical("near the river bed", choices) == "B"
    assert CQA.canonical("in a bed", choices) == "A"


def test_choice_duplicate_choices_take_the_first_letter() -> None:
    choices = ("bus depot", "beach", "train station", "bridge", "bridge")
    assert CQA.canonical("bridge", choices) == "D"
    assert CQA.canonical("(e) bridge", choices) == "D"
    assert CQA.is_correct("(e) bridge", "D", choices)
    assert CQA.is_correct("(d)", "E", choices)
    assert not CQA.is_correct("(c)", "E", choices)


@pytest.mark.parametrize(
    ("text", "label"),
    [
        # PaLM, anli1/dss/llm/valid_CoT_0.json
        ("The premise references combat experience. But combat experience does not "
         "necessarily entail killing anyone. So the answer is neutral.", "neutral"),
        ("Being a senator implies that he had a political career. So the answer is entailment.",
         "entailment"),
        ("So the answer is contradiction.", "contradiction"),
        ("The answer is yes.", "entailment"),
        ("The answer is no.", "contradiction"),
        ("The answer is it is not possible to tell.", "neutral"),
        ("it's not possible to tell", "neutral"),
        ("Neutral", "neutral"),
        ("The answer is: Contradiction", "contradiction"),
    ],
)  # fmt: skip
def test_label_canonical(text: str, label: str) -> None:
    answer = ANLI.parse_answer(text)
    assert answer is not None
    assert ANLI.canonical(answer) == label
    assert ANLI.is_correct(answer, label)


def test_label_ambiguous_or_unknown() -> None:
    assert ANLI.canonical("entailment or contradiction") is None
    assert ANLI.canonical("no, it is not possible to tell") is None
    assert ANLI.canonical("perhaps") is None
    assert ANLI.answer_format() == "one of: entailment, neutral, contradiction"


def test_label_task_without_synonyms() -> None:
    task = LabelTask("toxic", ("yes", "no"))
    assert task.canonical("Yes.") == "yes"
    assert task.canonical("The comment is not toxic, no") == "no"
    assert task.canonical("yes and no") is None
    with pytest.raises(ValueError, match="outside the label set"):
        LabelTask("bad", ("a", "b"), {"c": "z"})
