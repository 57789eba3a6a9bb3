"""Versioned prompt templates and the pure functions that render and read them.

Templates live in ``teacher/prompts/<name>_v<N>.txt`` (package data): a ``#`` header that
documents the placeholders, then ``=== section ===`` blocks (``system``, ``user`` and, for
few-shot prompts, ``shot_user`` with ``shot_assistant``, or with ``shot_correct`` /
``shot_wrong`` for worked evaluations). A recipe names a template by its stem
(``cot_v1``) or by the path of a user's own ``.txt`` file; that name (plus a content hash for
user files) is the ``prompt_version`` in the cache key, so an edited template never reuses
answers cached for the old one.
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from mindmirror.errors import UserError
from mindmirror.records import Verdict
from mindmirror.requests.types import Messages
from mindmirror.tasks.base import Example, Task
from mindmirror.teacher.eval_shots import worked_evaluations

_SECTION = re.compile(r"^=== (\w+) ===\s*$", re.MULTILINE)
_NAME = re.compile(r"^(?P<name>[a-z]+)_v(?P<version>\d+)$")

# The paper's verdict sentence; "incorrect" is read as wrong because gpt-style graders use it,
# and "right" as correct because small models write it. The label may be followed by a
# shortened sentence ("Evaluation result: the answer is wrong", "Evaluation result: correct").
_WORD = r"\W{0,3}(?P<neg>not\s+)?(?P<word>correct|incorrect|wrong|right|uncertain)\b"
_VERDICT = re.compile(
    r"evaluation\s+result\W{0,6}(?:(?:the\s+)?(?:given\s+|final\s+)?answer\s+is\s+)?" + _WORD,
    re.IGNORECASE,
)
# Fallbacks when the "Evaluation result" label is missing: the verdict sentence anywhere, or a
# bare "The answer is correct." only as the text's last sentence, where it cannot be a remark.
_VERDICT_SENTENCE = re.compile(r"the\s+(?:given|final)\s+answer\s+is\s+" + _WORD, re.IGNORECASE)
_VERDICT_LAST = re.compile(r"(?:^|[.!\n]\s*)the\s+answer\s+is\s+" + _WORD + r"\W*$", re.IGNORECASE)
# What follows a verdict word when a text lists the options instead of choosing one.
_OPTIONS = re.compile(r"\s*(?:/|,|\bor\b)\s*\W{0,3}(?:correct|incorrect|wrong|right|uncertain)\b")
_VERDICT_WORDS: dict[str, Verdict] = {
    "correct": "correct",
    "incorrect": "wrong",
    "wrong": "wrong",
    "right": "correct",
    "uncertain": "uncertain",
}
# "is not correct" is wrong and "is not wrong" correct; "not uncertain" states neither.
_NEGATED: dict[Verdict, Verdict | None] = {
    "correct": "wrong",
    "wrong": "correct",
    "uncertain": None,
}


@dataclass(frozen=True)
class Template:
    """A parsed prompt template: its version string and its sections by name."""

    version: str
    sections: dict[str, str]

    def render(self, section: str, **values: str) -> str:
        """Fill one section's placeholders; a missing section or placeholder is a UserError."""
        if section not in self.sections:
            raise UserError(f"prompt template {self.version} has no '=== {section} ===' section")
        try:
            return self.sections[section].format_map(values)
        except KeyError as error:
            known = ", ".join(sorted(values))
            raise UserError(
                f"prompt template {self.version}: unknown placeholder {{{error.args[0]}}} "
                f"in section {section} (known: {known})"
            ) from None


def available_templates() -> list[str]:
    """Stems of the packaged templates, e.g. ``['cot_v1', 'eval_v1']``."""
    folder = resources.files("mindmirror.teacher") / "prompts"
    return sorted(p.name.removesuffix(".txt") for p in folder.iterdir() if p.name.endswith(".txt"))


def parse_template(text: str, version: str) -> Template:
    """Split template text into sections; the ``#`` header before the first section is dropped."""
    parts = _SECTION.split(text)
    sections = {name: body.strip("\n") for name, body in zip(parts[1::2], parts[2::2], strict=True)}
    if not sections:
        raise UserError(f"prompt template {version} has no '=== section ===' lines")
    return Template(version=version, sections=sections)


@functools.cache
def load_template(name: str) -> Template:
    """Load a template by stem (``cot_v1``: packaged) or by the path of a user's ``.txt`` file.

    Raises:
        UserError: unknown name (the message lists the packaged ones) or unreadable file.
    """
    if name.endswith(".txt"):
        path = Path(name)
        if not path.is_file():
            raise UserError(f"prompt template file not found: {path}")
        text = path.read_text(encoding="utf-8")
        digest = hashlib.sha256(text.encode()).hexdigest()[:8]
        return parse_template(text, f"{path.stem}@{digest}")
    if not _NAME.match(name) or name not in available_templates():
        raise UserError(
            f"unknown prompt template {name!r} (packaged: {', '.join(available_templates())}; "
            "or give the path of a .txt file)"
        )
    text = (resources.files("mindmirror.teacher") / "prompts" / f"{name}.txt").read_text("utf-8")
    return parse_template(text, name)


def format_cot_messages(
    task: Task, example: Example, shots: list[Example], version: str = "cot_v1"
) -> Messages:
    """Chat messages asking for step-by-step reasoning that ends in the task's answer sentence.

    Each shot (a train example with gold) becomes one user/assistant turn pair whose reply is
    the gold answer sentence (``{answer_text}``), so the teacher sees exactly the final
    sentence it must write, or the shot's worked solution (``{solution}``: its rationale when
    it has one, else the answer sentence), so the teacher sees the reasoning it must write.
    """
    template = load_template(version)
    common = {
        "answer_format": task.answer_format(),
        "answer_sentence": task.answer_sentence,
    }
    messages: Messages = [{"role": "system", "content": template.render("system", **common)}]
    for shot in shots:
        if shot.gold is None:
            continue
        answer_text = task.answer_text(shot.gold)
        solution = shot.rationale or answer_text
        messages.append(
            {
                "role": "user",
                "content": template.render("shot_user", question=shot.question, **common),
            }
        )
        messages.append(
            {
                "role": "assistant",
                "content": template.render(
                    "shot_assistant",
                    question=shot.question,
                    answer_text=answer_text,
                    solution=solution,
                    **common,
                ),
            }
        )
    user = template.render("user", question=example.question, **common)
    messages.append({"role": "user", "content": user})
    return messages


def format_eval_messages(
    task: Task,
    example: Example,
    cot_text: str,
    version: str = "eval_v1",
    shots: Sequence[Example] = (),
) -> Messages:
    """Chat messages showing the question and ONE CoT, asking for a critique and a verdict.

    A template with ``shot_user``, ``shot_correct`` and ``shot_wrong`` sections first shows
    worked evaluations built from the ``shots`` that have rationales (see
    :func:`mindmirror.teacher.eval_shots.worked_evaluations`); placed before the question so
    that every prompt of a run shares them as a prefix. Other templates ignore ``shots``.
    """
    template = load_template(version)
    answer_format = task.answer_format()
    values = {"question": example.question, "cot": cot_text, "answer_format": answer_format}
    messages: Messages = [{"role": "system", "content": template.render("system", **values)}]
    if {"shot_user", "shot_correct", "shot_wrong"} <= template.sections.keys():
        for worked in worked_evaluations(task, list(shots)):
            shot = {"question": worked.question, "cot": worked.cot, "answer_format": answer_format}
            critique = {"needed": worked.needed, "given": worked.given, "answer": worked.answer}
            section = "shot_correct" if worked.verdict == "correct" else "shot_wrong"
            messages.append({"role": "user", "content": template.render("shot_user", **shot)})
            messages.append(
                {"role": "assistant", "content": template.render(section, **shot, **critique)}
            )
    messages.append({"role": "user", "content": template.render("user", **values)})
    return messages


def parse_verdict(text: str) -> Verdict | None:
    """The verdict of an evaluation: the last ``Evaluation result: ... correct|wrong|uncertain``.

    Case-insensitive, tolerant of markdown and trailing text; ``incorrect`` reads as ``wrong``,
    ``right`` as ``correct``, ``is not correct`` as ``wrong``. Without the ``Evaluation
    result`` label, the last ``the given (or final) answer is X`` counts, then a last sentence
    ``The answer is X.``. Returns None when no verdict is stated: a word such as "correct"
    elsewhere in the text is not one, nor is a list of the options (``correct/wrong/uncertain``,
    ``correct or wrong``).
    """
    for pattern in (_VERDICT, _VERDICT_SENTENCE, _VERDICT_LAST):
        matches = [m for m in pattern.finditer(text) if not _OPTIONS.match(text, m.end("word"))]
        if matches:
            verdict = _VERDICT_WORDS[matches[-1].group("word").lower()]
            if matches[-1].group("neg") is None:
                return verdict
            return _NEGATED[verdict]
    return None
