"""Answers written the way teachers other than PaLM write them, with the answer a person reads.

The strings are hand-written in the styles of public teacher outputs that the project was not
tuned on (claim-checking NLI replies, answer-first multiple choice, GSM8K-style sentences with
units); each carries the label a careful reader gives it, including tricky negatives.
"""

from __future__ import annotations

import pytest

from mindmirror.tasks import ChoiceTask, EquationTask, LabelTask, NumberTask
from mindmirror.tasks.families import NLI_LABELS, NLI_SYNONYMS

ANLI = LabelTask("anli", NLI_LABELS, NLI_SYNONYMS)
CQA = ChoiceTask("cqa")
GSM8K = NumberTask("gsm8k")
SVAMP = EquationTask("svamp")
GAMES = ("hide and seek", "jump rope", "play tag", "sleep", "eat lunch")


@pytest.mark.parametrize(
    ("text", "label"),
    [
        ('The claim "Mary lives in Paris" is true. The premise says she moved there in 2010 '
         "and has stayed since.", "entailment"),
        ('The claim "The bridge was finished in 1932" is false. According to the premise it '
         "opened in 1937, which contradicts the claim.", "contradiction"),
        ("The claim is inconclusive. The premise says nothing about his age, so we cannot "
         "tell either way.", "neutral"),
        # The quoted claim holds "no longer" and "false": only the verdict outside counts.
        ('The claim "He is no longer a false prophet" is true, since the premise says he '
         "recanted.", "entailment"),
        ('The claim "The answer is no" is inconclusive: the premise never asks a question.',
         "neutral"),
        ("“Nobody won the race” is false: the premise names the winner, Tom.", "contradiction"),
        ("The claim is not true. The premise says the shop was closed all week.",
         "contradiction"),
        ("The claim can't be true: the premise says the shop was closed all week.",
         "contradiction"),
        ("No, the hypothesis does not follow: the premise describes a different town.",
         "contradiction"),
        ("The hypothesis is neither entailed nor contradicted by the premise, which only "
         "talks about the weather.", "neutral"),
        ("Neither. The premise is about cars and the hypothesis is about trains.", "neutral"),
        ("Answer: the claim is true.", "entailment"),
        ("True", "entailment"),
    ],
)  # fmt: skip
def test_nli_claim_checking_replies(text: str, label: str) -> None:
    answer = ANLI.parse_answer(text)
    assert answer == label
    assert ANLI.is_correct(answer, label)


@pytest.mark.parametrize(
    "text",
    [
        # No verdict in the first sentence: "no" inside prose, "true" only in a quote.
        "The premise gives no information about the claim. It only describes the weather.",
        'The claim "It was true love" needs more context; the premise is about a dog.',
        # A negated label word names no label ("not entailed" could be either other label).
        "The hypothesis is not entailed by the premise, as far as I can see here today.",
        "The claim could be true or false depending on details that the premise leaves out.",
    ],
)
def test_nli_replies_without_one_verdict_are_unparsed(text: str) -> None:
    assert ANLI.parse_answer(text) is None


@pytest.mark.parametrize(
    ("text", "letter"),
    [
        ("c) play tag, as it needs nothing but open space and a few friends to run around.",
         "C"),
        ("The correct answer would likely be c) play tag, because the children are outside "
         "and want to run.", "C"),
        ("I would go with option e) eat lunch. After a whole morning of games the kids are "
         "hungry.", "E"),
        ("Option B is the best fit here since the kids have a rope. The others need no rope.",
         "B"),
        ("(a) and (b) need more space than a porch. The answer is probably (d) sleep.", "D"),
        ("(a) hide and seek and (b) jump rope both need more players than there are. Sleeping "
         "is unlikely at noon. So it has to be e) eat lunch.", "E"),
        ("The answer is (c).", "C"),
        ("b)", "B"),
    ],
)  # fmt: skip
def test_choice_answer_first_and_option_phrasings(text: str, letter: str) -> None:
    answer = CQA.parse_answer(text, GAMES)
    assert answer is not None
    assert CQA.canonical(answer, GAMES) == letter
    # The parsed answer is the clean "(c) play tag" a student is trained to give.
    assert answer == f"({letter.lower()}) {GAMES[ord(letter) - ord('A')]}"


@pytest.mark.parametrize(
    "text",
    [
        # Two different letters: no single choice.
        "Either (a) hide and seek or (c) play tag would keep them busy all afternoon long.",
        "The answer is a) or c), both are games played outside with friends in the park.",
        # A long reply that names no letter in its first or last sentence.
        "Children like games that need little equipment. Running games are the most popular "
        "with that age group in most schools.",
    ],
)
def test_choice_without_one_choice_is_unparsed(text: str) -> None:
    assert CQA.parse_answer(text, GAMES) is None


@pytest.mark.parametrize(
    ("text", "number", "expression"),
    [
        ("A gallon holds 8 pints.\nThe final answer is 15 gallons * 8 pints / gallon = 120 "
         "pints.", "120", "15"),
        ("She pays 3 * $4 = $12 each week, so in 5 weeks she pays 5 * 12 = $60.\nThe answer is "
         "$60.", "60", "60"),
        ("Total: 12 + 30 = 42 marbles.\n\nThe answer is: 42", "42", "42"),
        # An answer marker followed by a blank line is no answer sentence: the last result is.
        ("Let me think about the answer is\n\n15 - 8 = 7 left.", "7", "15 - 8"),
    ],
)  # fmt: skip
def test_number_sentences_with_units(text: str, number: str, expression: str) -> None:
    assert GSM8K.parse_answer(text) == number
    assert SVAMP.parse_answer(text) == expression
