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


# Replies without an answer marker whose conclusion restates numbers from the question (issue
# 23): the answer is what the conclusion finds, not the last number it repeats. Hand-written in
# the style of gpt-3.5 CoTs; the questions give the numbers that count as restated.
@pytest.mark.parametrize(
    ("question", "text", "number"),
    [
        ("Ed had 29 more marbles than Doug. Ed lost 17 of his marbles at the playground. How "
         "many more marbles did Ed have than Doug then?",
         "Ed had 29 more marbles at first. Losing 17 takes that lead down.\n\nAfter losing 17 "
         "marbles, Ed had 12 more marbles than Doug.", "12"),
        ("A farmer picks 9 boxes of apples a day. How long will it take to pick 36 boxes?",
         "Each day 9 boxes are picked, and 36 / 9 is 4.\nIt will take 4 days to pick 36 boxes "
         "of apples.", "4"),
        # The restated number comes first: the new one is the answer.
        ("Robin cut off 20 inches of his hair. If his hair is now 10 inches long how long was "
         "his hair before he cut?",
         "Therefore, after cutting off 20 inches, Robin's hair had been 30 inches long.", "30"),
        # A check after the conclusion states an equation: its result is what the check finds.
        ("Dave had 16 apps. After deleting some he had 5 left. How many apps did he delete?",
         "He deleted 11 apps. Check: 16 - 11 = 5.", "5"),
        # An equation split by prose ("50 chairs - 5 tables = 45") answers with its result.
        ("They have 5 sets of tables and each set has 10 chairs. How many more chairs than "
         "tables do they have?",
         "Therefore, they have 50 chairs - 5 tables = 45 more chairs than tables.", "45"),
        # The marker is followed by a narrative whose first number is not the result.
        ("Sam had 14 cards and gave 6 away. How many does he have left?",
         "The answer is: after giving 6 of his 14 cards away, Sam has 8 cards left.", "8"),
    ],
)  # fmt: skip
def test_number_conclusions_that_restate_the_question(
    question: str, text: str, number: str
) -> None:
    assert GSM8K.canonical(GSM8K.parse_answer(text, question=question) or "") == number
    assert SVAMP.is_correct(SVAMP.parse_answer(text, question=question), number)


def test_number_conclusion_without_the_question_reads_the_first_number() -> None:
    # With no question to compare against (serve), the conclusion's first number is read:
    # conclusions state their result before the numbers they repeat.
    text = "So it will take 4 days to pick 36 boxes of apples."
    assert GSM8K.parse_answer(text) == "4"


# NLI replies that frame the question in label words, or give their verdict only at the end.
@pytest.mark.parametrize(
    ("text", "label"),
    [
        ("It is inconclusive whether the claim that the bridge opened in 1937 is true or "
         "false.", "neutral"),
        ("Based on the premise, it is unclear whether the claim is true. The premise only "
         "says the shop opened, so it is inconclusive.", "neutral"),
        ("The premise says the race was held in Paris in 1990 and Tom won it. Tom is named "
         "as the winner. Therefore, the claim that Tom won the race is true.", "entailment"),
        ("We have to decide if the claim is true or false. The premise says the shop was "
         "closed all week. So the claim is false.", "contradiction"),
        # A sentence is not split at an initial: the verdict sentence is read whole.
        ("John F. Kennedy was born in 1917, as the premise states. Therefore, the claim is "
         "false.", "contradiction"),
    ],
)  # fmt: skip
def test_nli_framing_and_concluding_verdicts(text: str, label: str) -> None:
    assert ANLI.parse_answer(text) == label


def test_sentences_are_not_split_at_initials_or_titles() -> None:
    from mindmirror.tasks.spans import answer_span, sentences

    assert sentences("He met John F. Kennedy. Then Mr. Smith left.") == [
        "He met John F. Kennedy.",
        "Then Mr. Smith left.",
    ]
    assert answer_span("The answer is John F. Kennedy. He was president.") == "John F. Kennedy"
    assert answer_span("The answer is B. It fits best.") == "B"
