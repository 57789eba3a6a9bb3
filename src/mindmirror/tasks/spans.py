"""Where a free-text reply states its answer: answer sentences, bare answers, first sentences.

These helpers only cut text; the answer families in :mod:`mindmirror.tasks.families` decide
what the cut-out text means. Every helper reads a bounded slice of its input, so a hostile or
runaway reply (100k parentheses, a megabyte of prose) costs linear time at most.
"""

from __future__ import annotations

import re

# Replies are read from their end (where answers are) and at most this much of it: real CoTs
# are a few thousand characters, and the parsers must never be handed unbounded text.
MAX_TEXT_CHARS = 20_000
# How much of a reply's start its first sentence is looked for in.
MAX_SENTENCE_CHARS = 400
BARE_MAX_CHARS = 80
# How much of a reply's end its conclusion is looked for in.
MAX_CONCLUSION_CHARS = 1_500

# Whitespace holding at most one line break: an answer marker never reaches across a blank line.
_GAP = r"[^\S\n]*(?:\n[^\S\n]*)?"
_WS = r"[^\S\n]+"
# "The answer is", "So the answer is", "The final answer is", "Answer:", "**Answer:**",
# "The correct answer would likely be", "the answer is probably".
_MARKER = re.compile(
    rf"answer\**[^\S\n]*(?:"
    rf"(?:(?:would|should|must|will|could|might|may){_WS})?"
    rf"(?:(?:most{_WS})?(?:likely|probably){_WS})?"
    rf"(?:is|be)\b(?:{_WS}(?:most{_WS})?(?:likely|probably)\b)?[^\S\n]*:?"
    rf"|:){_GAP}\**[^\S\n]*",
    re.IGNORECASE,
)
_SENTENCE_END = re.compile(r"\.(?=\s|$)")
_SENTENCE_BREAK = re.compile(r"(?<=[.!?])\s+|\n")
# A full stop after a middle initial ("John F. Kennedy") or a title ("Mr. Smith") ends no
# sentence.
_NO_END = re.compile(r"(?:\b[A-Z][a-z]+\s+[A-Z]|\b(?:Mr|Mrs|Ms|Dr|St|vs))\.$")
# Quoted text is the question's words repeated (a claim, a choice), never the reply's verdict.
_QUOTED = re.compile(r"\"[^\"\n]*\"|“[^”\n]*”|‘[^’\n]*’")


def clip(text: str) -> str:
    """The last :data:`MAX_TEXT_CHARS` characters of ``text``: the part answers are read from."""
    return text[-MAX_TEXT_CHARS:]


def answer_span(text: str) -> str | None:
    """The text after the last "The answer is" (or "Answer:") up to the end of that sentence.

    None when the text has no such marker, or nothing follows the last one on its line.
    """
    marks = list(_MARKER.finditer(clip(text)))
    if not marks:
        return None
    rest = clip(text)[marks[-1].end() :].split("\n", 1)[0]
    for end in _SENTENCE_END.finditer(rest):
        if not _NO_END.search(rest[: end.end()]):
            rest = rest[: end.start()]
            break
    span = rest.strip().strip("*\"'`").strip()
    return span or None


def bare(text: str) -> str | None:
    """The whole text when it is short enough to be a bare answer (one line), else None."""
    stripped = text.strip()
    if not stripped or "\n" in stripped or len(stripped) > BARE_MAX_CHARS:
        return None
    return stripped.rstrip(".").strip()


def without_quotes(text: str) -> str:
    """``text`` with every quoted passage (on one line) replaced by a space."""
    return _QUOTED.sub(" ", text)


def sentences(text: str) -> list[str]:
    """The non-empty sentences (or lines) of ``text``, in order, stripped.

    A break after an initial or a title ("John F. Kennedy", "Mr. Smith") is no sentence end.
    """
    found: list[str] = []
    joined = False
    for piece in _SENTENCE_BREAK.split(text):
        if joined:
            found[-1] = f"{found[-1]} {piece.strip()}".strip()
        elif piece.strip():
            found.append(piece.strip())
        joined = bool(found) and bool(_NO_END.search(found[-1]))
    return found


_ASIDE = re.compile(r"\([^()]*\)\W*")


def conclusion(text: str) -> str | None:
    """The sentence a reply concludes with: the last sentence holding a digit, read from the
    last :data:`MAX_CONCLUSION_CHARS` characters, that is not a parenthesised aside ("Each
    bag has 2 cookies. (14 divided by 7)"); None when there is none."""
    numbered = [s for s in sentences(text[-MAX_CONCLUSION_CHARS:]) if any(c.isdigit() for c in s)]
    plain = [s for s in numbered if not _ASIDE.fullmatch(s)]
    return (plain or numbered or [None])[-1]


def first_sentence(text: str) -> str | None:
    """The reply's first non-empty sentence (or line), read from its first characters only."""
    found = sentences(text[:MAX_SENTENCE_CHARS])
    return found[0] if found else None


def last_sentence(text: str) -> str | None:
    """The reply's last non-empty sentence (or line), read from its last characters only."""
    found = sentences(text[-MAX_SENTENCE_CHARS:])
    return found[-1] if found else None
