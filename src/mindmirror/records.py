"""The teacher record: the contract between teaching and training.

``teacher/records.jsonl`` holds one JSON object per question. The student side reads only this
file (never the teacher package), so any source of rationales (a live teacher, a local model,
imported PaLM or gpt-3.5 files) trains the same way. Bump ``SCHEMA`` on incompatible changes.

Example line (wrapped)::

    {"schema": "mindmirror.record/1", "id": "svamp-train-0001", "split": "train",
     "question": "...", "gold": "( 84.0 / 2.0 )", "choices": null,
     "cots": [{"text": "... The answer is (84 / 2).", "answer": "(84 / 2)", "parsed": true,
               "correct": true, "status": "ok",
               "evaluations": [{"text": "...", "verdict": "correct", "parsed": true}]}],
     "teacher": {"model": "...", "backend": "openai", "temperature": 0.7,
                 "prompt_version": "cot_v1", "eval_prompt_version": "eval_v1",
                 "evaluator": "teacher"}}
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from mindmirror.errors import UserError
from mindmirror.files import open_atomic

SCHEMA = "mindmirror.record/1"
Verdict = Literal["correct", "wrong", "uncertain"]
VERDICTS: tuple[Verdict, ...] = ("correct", "wrong", "uncertain")


class Evaluation(BaseModel):
    """One self-evaluation of one CoT: a short critique and its parsed verdict."""

    model_config = ConfigDict(extra="forbid")
    text: str = Field(description="The critique text ('' for the gold evaluator).")
    verdict: Verdict | None = Field(description="Parsed verdict; None when it did not parse.")
    parsed: bool = Field(description="Whether a verdict was found in the text.")
    source: Literal["teacher", "gold"] = Field("teacher", description="Who produced it.")


class Cot(BaseModel):
    """One chain of thought sampled from the teacher, with its parsed answer."""

    model_config = ConfigDict(extra="forbid")
    text: str = Field(description="The rationale as the teacher wrote it.")
    answer: str | None = Field(description="The answer parsed from the text, None if none.")
    parsed: bool = Field(description="Whether an answer was parsed.")
    correct: bool | None = Field(description="Answer matches gold; None when there is no gold.")
    status: Literal["ok", "unparsed", "error"] = Field(
        "ok", description="ok; unparsed (no answer found); error (the request failed for good)."
    )
    evaluations: list[Evaluation] = Field(default_factory=list)


class TeacherInfo(BaseModel):
    """Where a record's CoTs came from."""

    model_config = ConfigDict(extra="forbid")
    model: str
    backend: str
    temperature: float | None = None
    prompt_version: str | None = None
    eval_prompt_version: str | None = None
    evaluator: str | None = None


class Record(BaseModel):
    """All the teacher produced for one question."""

    model_config = ConfigDict(extra="forbid")
    schema_: str = Field(SCHEMA, alias="schema")
    id: str
    split: Literal["train", "validation", "test"]
    question: str = Field(description="The question as rendered for the models (with choices).")
    gold: str | None = Field(description="Gold answer in the task's canonical form.")
    choices: list[str] | None = None
    cots: list[Cot] = Field(default_factory=list)
    teacher: TeacherInfo

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    def to_json(self) -> str:
        """One JSONL line (no trailing newline)."""
        return json.dumps(self.model_dump(mode="json", by_alias=True), ensure_ascii=False)


#: The teacher judging CoTs it did not write (``teacher.judge_cots.cot_judge``), handed to the
#: student side, which never imports the teacher: records with CoTs in, the same records with
#: the teacher's evaluations of each CoT and the requests' usage out.
CotJudge = Callable[[list[Record]], tuple[list[Record], dict[str, Any]]]


def write_records(path: Path, records: Iterable[Record]) -> int:
    """Write records atomically (temp file + rename), so a kill never leaves half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    with open_atomic(path) as handle:
        for record in records:
            handle.write(record.to_json() + "\n")
            count += 1
    return count


def iter_records(path: Path) -> Iterator[Record]:
    """Read records lazily; a malformed line raises UserError naming the file and line."""
    if not path.is_file():
        raise UserError(f"teacher records not found: {path} (run `mindmirror teach` first)")
    with path.open(encoding="utf-8") as handle:
        for lineno, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                record = Record.model_validate_json(line)
            except ValidationError as error:
                first = error.errors()[0]
                where = ".".join(str(p) for p in first["loc"])
                raise UserError(f"{path}:{lineno}: bad record ({where}: {first['msg']})") from None
            if record.schema_ != SCHEMA:
                raise UserError(f"{path}:{lineno}: schema {record.schema_!r}, expected {SCHEMA!r}")
            yield record


def read_records(path: Path) -> list[Record]:
    """All records of a file (see ``iter_records``)."""
    return list(iter_records(path))
