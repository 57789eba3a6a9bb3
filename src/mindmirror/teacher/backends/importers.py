"""The ``import`` backend: existing teacher outputs read from files instead of requested.

Four formats (``ImportConfig.format``):

- ``jsonl``: one object per line with ``id`` and/or ``question`` (or ``premise`` and
  ``hypothesis``; with ``choices`` for multiple choice), ``cots: [str]`` and optionally
  ``evaluations: [[str]]`` (the evaluations of each CoT, aligned with ``cots``).
- ``dss``: Distilling Step-by-Step PaLM files: ``llm/{split}_CoT_{k}.json`` are JSON lists of
  raw completions, entry j of file k being row ``chunk*k + j`` of the split file
  ``*_{split}.json`` next to ``llm/`` (chunk = length of file 0: 500 for SVAMP, 1000 for CQA).
  Each completion runs on into the next few-shot exemplar, so it is cut at the first
  ``"\\n\\nQ:"`` or ``"\\n\\nPremise:"``.
- ``mcc_kd``: MCC-KD files: JSON lists of ``{instruction, output: [CoT, ...], label}``.
- ``tot``: Mind's Mirror Tree-of-Thoughts files: ``steps[0].x`` holds the question,
  ``steps[0].new_ys`` the CoTs and ``steps[0].value_outputs_list[i]`` the evaluations of CoT i.

Entries are matched to the task's examples by id, else by normalized question text (case,
whitespace and punctuation ignored): first the question as the built-in tasks render it
(choices, premise and hypothesis), then "the task's question starts with / contains the
imported texts" for other renderings. Entries that match no example are counted, never
silently dropped, and an import that matches too little (``ImportConfig.min_match``) is a
UserError showing what the task's ids and questions look like.
"""

from __future__ import annotations

import bisect
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mindmirror.config import ImportConfig
from mindmirror.errors import UserError
from mindmirror.tasks.base import Example
from mindmirror.tasks.loaders import render_choices, render_nli

_CUT_MARKERS = ("\n\nQ:", "\n\nPremise:")
_NON_WORD = re.compile(r"[\W_]+")


@dataclass(frozen=True)
class RawEntry:
    """One question's outputs as a file holds them, before matching.

    ``parts`` are the texts that identify the question (the question itself; for NLI the
    premise and the hypothesis; for multiple choice the stem and the choices); ``rendered`` is
    the question as the built-in task renders those parts; ``id`` is tried first when the file
    gives an example id.
    """

    parts: tuple[str, ...]
    cots: list[str]
    evaluations: list[list[str]] | None = None
    id: str | None = None
    rendered: str | None = None


@dataclass
class Imported:
    """Imported CoTs of one example, with the evaluations of each CoT when the file has them."""

    cots: list[str] = field(default_factory=list)
    evaluations: list[list[str]] | None = None


@dataclass
class ImportResult:
    """CoTs per example id, and the counts that make unmatched data visible."""

    by_id: dict[str, Imported]
    entries: int
    matched_entries: int
    unmatched_entries: int
    has_evaluations: bool
    unmatched_examples: list[str] = field(default_factory=list)
    examples: int = 0

    @property
    def matched_examples(self) -> int:
        """Task questions that got at least one imported CoT."""
        return self.examples - len(self.unmatched_examples)

    def summary(self) -> dict[str, Any]:
        """Counts for ``teacher/summary.json``."""
        return {
            "entries_read": self.entries,
            "entries_matched": self.matched_entries,
            "entries_unmatched": self.unmatched_entries,
            "examples": self.examples,
            "examples_matched": self.matched_examples,
            "examples_without_import": len(self.unmatched_examples),
            "has_evaluations": self.has_evaluations,
        }

    def match_share(self) -> float:
        """The larger of: the share of entries matched, the share of questions matched.

        A file may hold more questions than the task uses (a limit, other splits) or fewer (a
        sample); only a file that matches little on *both* sides is the wrong file.
        """
        entries = self.matched_entries / self.entries if self.entries else 0.0
        examples = self.matched_examples / self.examples if self.examples else 0.0
        return max(entries, examples)


def normalize(text: str) -> str:
    """Lower-case words separated by single spaces: the key questions are matched on."""
    return _NON_WORD.sub(" ", text.lower()).strip()


def cut_completion(text: str) -> str:
    """A raw few-shot completion up to the start of the next exemplar the model invented."""
    cut = min((i for i in (text.find(m) for m in _CUT_MARKERS) if i >= 0), default=len(text))
    return text[:cut].strip()


# ---------------------------------------------------------------------------- file readers


#: Why a JSON value nested thousands of levels deep (json's recursion limit) is refused.
TOO_DEEP = "JSON nested too deeply to be an entry (thousands of levels); fix or remove it"


def _load_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as error:
        raise UserError(f"cannot read {path}: {error}") from None
    except json.JSONDecodeError as error:
        raise UserError(f"{path}: not valid JSON (line {error.lineno}: {error.msg})") from None
    except RecursionError:
        raise UserError(f"{path}: {TOO_DEEP}") from None


def _load_jsonl(path: Path) -> Iterator[tuple[int, Any]]:
    try:
        # Not splitlines(): JSON strings may hold U+2028 and other breaks it splits on.
        lines = path.read_text(encoding="utf-8").split("\n")
    except (OSError, UnicodeDecodeError) as error:
        raise UserError(f"cannot read {path}: {error}") from None
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            yield lineno, json.loads(line)
        except json.JSONDecodeError as error:
            raise UserError(f"{path}:{lineno}: not valid JSON ({error.msg})") from None
        except RecursionError:
            raise UserError(f"{path}:{lineno}: {TOO_DEEP}") from None


def _str_list(value: Any, where: str, what: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise UserError(f"{where}: `{what}` must be a list of strings")
    return value


def _selected_files(cfg: ImportConfig, root: Path, pattern: str) -> list[Path]:
    """The files to read: ``cfg.files`` values inside ``path``, the file ``path``, or a glob."""
    if cfg.files:
        paths = [root / name for name in cfg.files.values()]
        for path in paths:
            if not path.is_file():
                raise UserError(f"import file not found: {path} (check teacher.import.files)")
        return paths
    if root.is_file():
        return [root]
    found = sorted(root.rglob(pattern))
    if not found:
        raise UserError(f"no {pattern} files under {root} (check teacher.import.path)")
    return found


def _jsonl_question(row: dict[str, Any], where: str) -> tuple[tuple[str, ...], str | None]:
    """The parts identifying a JSONL entry's question, and its rendering by the built-ins."""
    if row.get("premise") is not None and row.get("hypothesis") is not None:
        premise, hypothesis = str(row["premise"]), str(row["hypothesis"])
        return (premise, hypothesis), render_nli(premise, hypothesis)
    if row.get("question") is None:
        return (), None
    question = str(row["question"])
    if row.get("choices") is None:
        return (question,), None
    choices = _str_list(row["choices"], where, "choices")
    return (question, *choices), render_choices(question, choices)


def read_jsonl(cfg: ImportConfig) -> Iterator[RawEntry]:
    """Generic JSONL: ``{"id"?, "question" | "premise" + "hypothesis", "choices"?, "cots":
    [...], "evaluations"?: [[...]]}`` (an ``id`` alone is enough)."""
    for path in _selected_files(cfg, Path(cfg.path), "*.jsonl"):
        for lineno, row in _load_jsonl(path):
            where = f"{path}:{lineno}"
            if not isinstance(row, dict):
                raise UserError(f"{where}: each line needs `question` (or `id`) and `cots`")
            parts, rendered = _jsonl_question(row, where)
            if not parts and row.get("id") is None:
                raise UserError(
                    f"{where}: each line needs `question` (or `premise` and `hypothesis`, or "
                    "`id`) and `cots`"
                )
            cots = _str_list(row.get("cots"), where, "cots")
            evaluations = None
            if row.get("evaluations") is not None:
                raw = row["evaluations"]
                if not isinstance(raw, list) or len(raw) != len(cots):
                    raise UserError(f"{where}: `evaluations` needs one list per CoT")
                evaluations = [_str_list(e, where, "evaluations[i]") for e in raw]
            yield RawEntry(
                parts=parts,
                cots=cots,
                evaluations=evaluations,
                id=str(row["id"]) if row.get("id") is not None else None,
                rendered=rendered,
            )


def _dss_parts(row: dict[str, Any], where: str) -> tuple[tuple[str, ...], str | None]:
    """The parts identifying a DSS row's question, and its rendering by the built-ins."""
    if "input" in row:
        return (row["input"],), None
    if "premise" in row and "hypothesis" in row:
        return (row["premise"], row["hypothesis"]), render_nli(row["premise"], row["hypothesis"])
    if "question" in row:
        choices = [str(c) for c in row.get("choices", [])]
        return (row["question"], *choices), render_choices(row["question"], choices)
    raise UserError(f"{where}: a DSS row needs `input`, `question` or `premise`+`hypothesis`")


def read_dss(cfg: ImportConfig) -> Iterator[RawEntry]:
    """Distilling Step-by-Step PaLM CoTs, aligned with the rows of their split files."""
    root = Path(cfg.path)
    if not (root / "llm").is_dir():
        raise UserError(f"{root}: a DSS folder holds llm/{{split}}_CoT_{{k}}.json (not found)")
    if cfg.files:
        split_files = {split: root / name for split, name in cfg.files.items()}
    else:
        splits = sorted({p.name.split("_CoT_")[0] for p in (root / "llm").glob("*_CoT_*.json")})
        split_files = {}
        for split in splits:
            found = sorted(root.glob(f"*_{split}.json"))
            if not found:
                raise UserError(f"{root}: CoTs for split {split!r} but no *_{split}.json rows")
            split_files[split] = found[0]
    for split, rows_path in split_files.items():
        if not rows_path.is_file():
            raise UserError(f"import file not found: {rows_path} (check teacher.import.files)")
        rows = [row for _, row in _load_jsonl(rows_path)]
        chunks = sorted(
            (root / "llm").glob(f"{split}_CoT_*.json"), key=lambda p: int(p.stem.split("_")[-1])
        )
        completions: list[str] = []
        for chunk in chunks:
            completions.extend(_str_list(_load_json(chunk), str(chunk), "the file"))
        if len(completions) > len(rows):
            raise UserError(
                f"{root}: {len(completions)} CoTs for split {split!r} but {rows_path.name} has "
                f"only {len(rows)} rows; the files do not belong together"
            )
        for index, (row, text) in enumerate(zip(rows, completions, strict=False)):
            parts, rendered = _dss_parts(row, f"{rows_path}:{index + 1}")
            yield RawEntry(parts=parts, cots=[cut_completion(text)], rendered=rendered)


def read_mcc_kd(cfg: ImportConfig) -> Iterator[RawEntry]:
    """MCC-KD: ``instruction`` = question, ``output`` = list of CoTs (empty in dev/test)."""
    for path in _selected_files(cfg, Path(cfg.path), "*.json"):
        data = _load_json(path)
        if not isinstance(data, list):
            raise UserError(f"{path}: an MCC-KD file is a JSON list of rows")
        for index, row in enumerate(data):
            where = f"{path}[{index}]"
            if not isinstance(row, dict) or "instruction" not in row:
                raise UserError(f"{where}: an MCC-KD row needs `instruction` and `output`")
            output = row.get("output")
            # dev/test rows carry an empty string: no CoTs, nothing to import from them.
            cots = [output] if isinstance(output, str) and output.strip() else []
            if isinstance(output, list):
                cots = _str_list(output, where, "output")
            if cots:
                yield RawEntry(parts=(row["instruction"],), cots=cots)


def _tot_question(x: str) -> str:
    """``steps[0].x`` is a JSON fragment ``"input":"..."``; fall back to the raw text."""
    try:
        value = json.loads("{" + x.strip().rstrip(",") + "}")
    except json.JSONDecodeError:
        return x
    return str(value.get("input", x)) if isinstance(value, dict) else x


def read_tot(cfg: ImportConfig) -> Iterator[RawEntry]:
    """Mind's Mirror Tree-of-Thoughts logs: CoTs and their teacher evaluations."""
    for path in _selected_files(cfg, Path(cfg.path), "*_CoT_*.json"):
        data = _load_json(path)
        if not isinstance(data, list):
            raise UserError(f"{path}: a Tree-of-Thoughts file is a JSON list of tasks")
        for index, item in enumerate(data):
            try:
                step = item["steps"][0]
                cots = _str_list(step["new_ys"], f"{path}[{index}]", "new_ys")
                values = step.get("value_outputs_list")
            except (KeyError, IndexError, TypeError):
                raise UserError(
                    f"{path}[{index}]: expected steps[0].x and steps[0].new_ys"
                ) from None
            evaluations = None
            if isinstance(values, list) and len(values) == len(cots):
                evaluations = [
                    _str_list(v, f"{path}[{index}]", "value_outputs_list") for v in values
                ]
            yield RawEntry(parts=(_tot_question(step["x"]),), cots=cots, evaluations=evaluations)


READERS = {"jsonl": read_jsonl, "dss": read_dss, "mcc_kd": read_mcc_kd, "tot": read_tot}


# ---------------------------------------------------------------------------- matching


class _Matcher:
    """Finds the examples an entry belongs to: by id, by exact text, by prefix, by containment."""

    def __init__(self, examples: list[Example]) -> None:
        self.by_id = {ex.id: ex for ex in examples}
        self.by_text: dict[str, list[Example]] = {}
        for ex in examples:
            self.by_text.setdefault(normalize(ex.question), []).append(ex)
        self.keys = sorted(self.by_text)

    def match(self, entry: RawEntry) -> list[Example]:
        if entry.id is not None and entry.id in self.by_id:
            return [self.by_id[entry.id]]
        norms = [normalize(part) for part in entry.parts if part.strip()]
        if not norms:
            return []
        head, rest = norms[0], norms[1:]
        rendered = self.by_text.get(normalize(entry.rendered)) if entry.rendered else None
        exact = rendered or self.by_text.get(" ".join(norms)) or self.by_text.get(head)
        if exact:
            return exact
        # The task may render more than the file holds (choices, "Premise:" labels), so a
        # task question that starts with, or else contains, every imported part also matches.
        start = bisect.bisect_left(self.keys, head)
        hits: list[str] = []
        for key in self.keys[start:]:
            if not key.startswith(head):
                break
            hits.append(key)
        if not hits:
            hits = [key for key in self.keys if head in key]
        hits = [key for key in hits if all(part in key for part in rest)]
        return [ex for key in hits for ex in self.by_text[key]]


def import_outputs(cfg: ImportConfig, examples: list[Example], num_cots: int) -> ImportResult:
    """Read the configured teacher outputs and assign them to ``examples``.

    Each example keeps at most ``num_cots`` CoTs (in file order); evaluations come
    along when the file has them. Raises UserError for a missing path or a malformed file.
    """
    if not Path(cfg.path).exists():
        raise UserError(f"import path not found: {cfg.path} (check teacher.import.path)")
    matcher = _Matcher(examples)
    by_id: dict[str, Imported] = {}
    entries = matched = 0
    has_evaluations = False
    seen: set[tuple[str, tuple[str, ...]]] = set()
    for entry in READERS[cfg.format](cfg):
        entries += 1
        targets = matcher.match(entry)
        if not targets:
            continue
        matched += 1
        has_evaluations = has_evaluations or entry.evaluations is not None
        for ex in targets:
            # The same question read twice (two copies of one file) must not double its CoTs;
            # repeated CoTs *within* an entry are kept, as sampling produced them.
            if (ex.id, tuple(entry.cots)) in seen:
                continue
            seen.add((ex.id, tuple(entry.cots)))
            _add(by_id.setdefault(ex.id, Imported()), entry, num_cots)
    missing = [ex.id for ex in examples if not by_id.get(ex.id, Imported()).cots]
    result = ImportResult(
        by_id=by_id,
        entries=entries,
        matched_entries=matched,
        unmatched_entries=entries - matched,
        has_evaluations=has_evaluations,
        unmatched_examples=missing,
        examples=len(examples),
    )
    if examples and result.match_share() < cfg.min_match:
        raise UserError(_mismatch_line(cfg, result, examples))
    return result


def _mismatch_line(cfg: ImportConfig, result: ImportResult, examples: list[Example]) -> str:
    """One line: how little matched, and what an entry must look like to match."""
    unmatched = set(result.unmatched_examples)
    expected = next((ex for ex in examples if ex.id in unmatched), examples[0])
    question = " ".join(expected.question.split())
    question = question if len(question) <= 120 else question[:117] + "..."
    return (
        f"{cfg.path}: the {cfg.format} import matched {result.matched_entries} of "
        f"{result.entries} entries and {result.matched_examples} of {result.examples} task "
        f"questions (below teacher.import.min_match={cfg.min_match}); entries match by id or "
        f"question text, e.g. id {expected.id!r} question {question!r} (see docs/records.md): "
        "check task and import belong together, or lower teacher.import.min_match"
    )


def _add(target: Imported, entry: RawEntry, num_cots: int) -> None:
    """Append an entry's CoTs (and evaluations) to an example, up to ``num_cots``."""
    for index, cot in enumerate(entry.cots):
        if len(target.cots) >= num_cots:
            return
        if entry.evaluations is not None:
            if target.evaluations is None:
                target.evaluations = [[] for _ in target.cots]
            target.evaluations.append(entry.evaluations[index])
        elif target.evaluations is not None:
            target.evaluations.append([])
        target.cots.append(cot)
