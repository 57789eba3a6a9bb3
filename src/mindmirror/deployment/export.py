"""``mindmirror export``: a trained student in the forms users deploy.

- ``hf``: a plain Hugging Face folder (LoRA adapters merged into the base weights) with the
  run's ``recipe.yaml`` (so ``predict`` and ``serve`` know the task and settings), a model card
  (``README.md``) giving the prompt format, and, for a two-stage ``mind_mirror`` run, the
  self-evaluation student in ``judge/`` (``mirror`` mode uses it, as it does in the run), and
  ``answer`` mode's calibration (``answer_confidence.json``) when the run fitted one.
- ``gguf``: one GGUF file for llama.cpp (``export_gguf``: causal Llama-architecture students;
  f16 by default, ``--quant q8_0``, ``q4_k_m``, ... on request): the weights only; what the
  student has beside them (a separate judge, ``answer`` mode's calibration) is named in
  ``Exported.left_out``, which ``mindmirror export`` prints.
- ``ollama``: that GGUF file and a ``Modelfile`` carrying the prompt format the student was
  trained on (``ollama create NAME -f Modelfile``).

``--push-to-hub NAMESPACE/NAME`` uploads the folder with ``huggingface_hub.upload_folder``;
the repository id, offline mode and the token are checked before any work is done.

The source is whatever ``load_student`` takes (a run directory, a student folder, ``embedded``,
a ``.gguf`` file) or a folder holding only a LoRA adapter (``adapter_config.json``), which is
merged into its base model. An output folder is replaced only when it is empty or an earlier
export (``export.json``), never a folder of other files; it is checked before any work, and
the folders an export created are removed again when it fails.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mindmirror.config import Recipe, dump_recipe
from mindmirror.errors import UserError
from mindmirror.student.formats import CAUSAL_SEPARATOR, CRITIQUE, EXPLAIN, PREDICT, VERDICT

FORMATS = ("hf", "gguf", "ollama")
MARKER = "export.json"
DEFAULT_NAME = "mindmirror-student"


@dataclass
class Exported:
    """What an export wrote: its folder, the main files, and the Hub URL when pushed;
    ``left_out``: what the student has that the format cannot carry (GGUF and Ollama)."""

    format: str
    folder: Path
    files: list[Path] = field(default_factory=list)
    hub_url: str | None = None
    left_out: list[str] = field(default_factory=list)


def weights_only_left_out(source: str | Path) -> list[str]:
    """What a weights-only export (GGUF, Ollama) of ``source`` leaves behind: its separate
    judge (``mirror`` mode, and the combined confidence fitted beside an own-CoT judge) and
    ``answer`` mode's calibration, each where the student has one."""
    from mindmirror.student.answer_confidence import ANSWER_CONFIDENCE_FILE
    from mindmirror.student.loading import judge_folder
    from mindmirror.student.model import find_student

    if not Path(source).exists():
        return []
    final = find_student(source)
    left = []
    if judge_folder(final) is not None:
        left.append("the separate judge that mirror mode uses")
    if (final / ANSWER_CONFIDENCE_FILE).is_file():
        left.append(f"answer mode's calibration and abstention ({ANSWER_CONFIDENCE_FILE})")
    return left


def prompt_format(separator_note: str) -> list[str]:
    """The student's prompt format as lines (model card and Modelfile)."""
    return [
        f"Each prompt is `<prefix>: <input>` followed by {separator_note}:",
        f"- `{EXPLAIN}: <question>` -> a chain of thought ending in the answer",
        f"- `{PREDICT}: <question>` -> the answer",
        f"- `{VERDICT}: Question: <question>\\nAnswer: <chain of thought>` -> "
        "`the given answer is correct|wrong|uncertain` (students trained with self-evaluation)",
        f"- `{CRITIQUE}: Question: <question>\\nAnswer: <chain of thought>` -> a critique "
        "(two-stage mind_mirror students)",
    ]


def check_hub_repo(repo: str) -> None:
    """UserError unless ``repo`` is a valid ``namespace/name`` and pushing can work here."""
    from huggingface_hub import get_token
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    if repo.count("/") != 1:
        raise UserError(f"--push-to-hub {repo!r}: give NAMESPACE/NAME, e.g. alice/svamp-student")
    try:
        validate_repo_id(repo)
    except HFValidationError as error:
        first = str(error).splitlines()[0]
        raise UserError(f"--push-to-hub {repo!r}: {first}") from None
    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on"):
        raise UserError("--push-to-hub: HF_HUB_OFFLINE is set; unset it to upload")
    if not get_token():
        raise UserError(
            "--push-to-hub: no Hugging Face token; run `hf auth login` or export HF_TOKEN"
        )


def push_folder(folder: Path, repo: str) -> str:
    """Create ``repo`` if needed and upload ``folder`` to it; return the repository URL."""
    from huggingface_hub import create_repo, upload_folder

    url = create_repo(repo, repo_type="model", exist_ok=True)
    upload_folder(
        repo_id=repo,
        folder_path=folder,
        repo_type="model",
        commit_message="Upload a mindmirror student",
    )
    return str(url)


def load_merged(source: str | Path) -> tuple[Any, Any, str]:
    """(model, tokenizer, kind) of ``source``, a LoRA adapter folder merged into its base."""
    from mindmirror.student.model import load_student, quiet_peft

    path = Path(source)
    adapter = (path / "adapter_config.json").is_file() and not (path / "config.json").is_file()
    if not adapter:
        return load_student(source)
    from peft import PeftConfig, PeftModel
    from transformers import AutoTokenizer

    base = PeftConfig.from_pretrained(path).base_model_name_or_path
    if not base:
        raise UserError(f"{path}/adapter_config.json names no base model")
    model, tokenizer, kind = load_student(base)
    with quiet_peft():
        model = PeftModel.from_pretrained(model, path).merge_and_unload()
    if (path / "tokenizer_config.json").is_file():
        tokenizer = AutoTokenizer.from_pretrained(path)
    return model, tokenizer, kind


def check_output(folder: Path) -> None:
    """UserError, before any work and without creating anything, unless ``folder`` can take
    the export: it must be empty, an earlier export, or a new folder under a writable one."""
    if folder.is_dir() and any(folder.iterdir()) and not (folder / MARKER).is_file():
        raise UserError(
            f"{folder} exists and is not an earlier export: choose another --output or delete it"
        )
    existing = next(p for p in (folder, *folder.parents) if p.exists())
    if not existing.is_dir():
        raise UserError(f"--output {folder}: {existing} is a file; give a folder path")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UserError(
            f"--output {folder}: cannot write in {existing} (permission denied); choose "
            "another --output"
        )


@contextmanager
def output_folder(folder: Path) -> Iterator[None]:
    """Create ``folder`` for the export and, when the export fails, remove every folder this
    created (an earlier export stays), so a failure leaves nothing behind."""
    new = [p for p in (folder, *folder.parents) if not p.exists()]
    try:
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as error:  # perhaps after making some of the parents
            raise UserError(
                f"--output {folder}: cannot create it ({error.strerror or error}); choose "
                "another --output"
            ) from None
        yield
    except BaseException:
        if new:
            shutil.rmtree(new[-1], ignore_errors=True)
        raise


def default_output(source: str | Path, fmt: str) -> Path:
    """``RUN/export/<format>`` for a run directory, ``exports/<name>-<format>`` otherwise."""
    path = Path(source)
    if (path / "student" / "train.json").is_file():
        return path / "export" / fmt
    return Path("exports") / f"{path.name or DEFAULT_NAME}-{fmt}"


def _source_recipe(source: str | Path) -> Recipe | None:
    from mindmirror.predict import run_recipe

    path = Path(source)
    return run_recipe(path) if path.exists() else None


def _model_card(
    name: str, recipe: Recipe | None, kind: str, judge: bool, calibration: str | None = None
) -> str:
    tags = "\n".join(f"- {t}" for t in ("mindmirror", "distillation", "chain-of-thought"))
    pipeline = "text2text-generation" if kind == "seq2seq" else "text-generation"
    lines = [
        "---",
        "library_name: transformers",
        f"pipeline_tag: {pipeline}",
        "tags:",
        tags,
        "---",
        "",
        f"# {name}",
        "",
        "A student distilled with [mindmirror](https://arxiv.org/abs/2311.09214) (Mind's "
        "Mirror: chains of thought and the teacher's self-evaluation of them).",
        "",
    ]
    if recipe is not None:
        lines += [
            f"- task: `{recipe.task.name}`; method: `{recipe.train.method}`; teacher: "
            f"`{recipe.teacher.model}`",
            "",
        ]
    separator = "nothing" if kind == "seq2seq" else f"a newline ({json.dumps(CAUSAL_SEPARATOR)})"
    lines += ["## Prompt format", "", *prompt_format(separator), ""]
    if judge:
        lines += [
            "`judge/` holds the self-evaluation student of the first stage; `mirror` mode "
            "lets it judge the sampled chains of thought.",
            "",
        ]
    if calibration:
        lines += [
            f"`{calibration}` recalibrates the `answer` mode's confidence (fitted on "
            "validation); `answer` abstains under its threshold.",
            "",
        ]
    lines += [
        "## Use",
        "",
        "```bash",
        "mindmirror predict THIS_FOLDER --question 'Tom has 3 apples ...'",
        "mindmirror serve THIS_FOLDER      # OpenAI-compatible API",
        "```",
        "",
    ]
    return "\n".join(lines)


def _export_hf(
    model: Any,
    tokenizer: Any,
    kind: str,
    source: str | Path,
    folder: Path,
    recipe: Recipe | None,
) -> list[Path]:
    from mindmirror.student.answer_confidence import ANSWER_CONFIDENCE_FILE
    from mindmirror.student.confidence import CONFIDENCE_FILE
    from mindmirror.student.loading import judge_folder
    from mindmirror.student.model import find_student, load_student, save_student, student_info

    name = recipe.serve.model_name if recipe is not None else DEFAULT_NAME
    info = student_info(source) if Path(source).exists() else {}
    info = {k: v for k, v in info.items() if k != "kind"} | {"exported_from": str(source)}
    save_student(model, tokenizer, folder, kind=kind, info=info)  # type: ignore[arg-type]
    judge = judge_folder(Path(source)) if Path(source).exists() else None
    if judge is not None:
        j_model, j_tok, j_kind = load_student(judge)
        save_student(j_model, j_tok, folder / "judge", kind=j_kind)
        # The combined confidence fitted beside an own-CoT judge travels with it.
        if (judge / CONFIDENCE_FILE).is_file():
            shutil.copyfile(judge / CONFIDENCE_FILE, folder / "judge" / CONFIDENCE_FILE)
    # answer mode's calibration (train.answer_confidence) travels with the student.
    final = find_student(source) if Path(source).exists() else None
    calibration = None
    if final is not None and (final / ANSWER_CONFIDENCE_FILE).is_file():
        shutil.copyfile(final / ANSWER_CONFIDENCE_FILE, folder / ANSWER_CONFIDENCE_FILE)
        calibration = ANSWER_CONFIDENCE_FILE
    if recipe is not None:
        (folder / "recipe.yaml").write_text(dump_recipe(recipe), encoding="utf-8")
    (folder / "README.md").write_text(
        _model_card(name, recipe, kind, judge is not None, calibration), encoding="utf-8"
    )
    return [folder]


def modelfile(gguf_name: str, eos: str | None, recipe: Recipe | None) -> str:
    """An Ollama Modelfile for the GGUF file ``gguf_name`` in the same folder."""
    about = f" (task {recipe.task.name}, method {recipe.train.method})" if recipe else ""
    comments = [f"mindmirror student{about}", *prompt_format("a newline (the template adds it)")]
    lines = [f"# {line}" for line in comments]
    lines += [
        "# Greedy decoding, as mindmirror's answer and cot modes; raise temperature to sample.",
        f"FROM ./{gguf_name}",
        'TEMPLATE """{{ .Prompt }}',
        '"""',
        "PARAMETER temperature 0",
        "PARAMETER repeat_penalty 1",
        "PARAMETER num_predict 256",
    ]
    if eos:
        lines.append(f"PARAMETER stop {json.dumps(eos)}")
    return "\n".join(lines) + "\n"


def export(
    source: str | Path,
    fmt: str,
    output: str | Path | None = None,
    *,
    quant: str = "f16",
    push_to_hub: str | None = None,
) -> Exported:
    """Export the student at ``source`` as ``fmt`` (hf, gguf or ollama); see the module doc.

    Raises:
        UserError: unknown format or type, a quant type with ``hf``, a bad Hub repository or
            no way to push, a student that cannot be loaded, a non-Llama or seq2seq student
            for GGUF, or an output that is a file, a folder of other files or not writable.
    """
    from mindmirror.deployment.export_gguf import check_gguf_student, quant_type, write_gguf

    if fmt not in FORMATS:
        raise UserError(f"--format {fmt}: choose from {', '.join(FORMATS)}")
    kind_name = quant_type(quant)
    if fmt == "hf" and kind_name != "f16":
        raise UserError("--quant applies to --format gguf and ollama (hf keeps the weights)")
    if push_to_hub is not None:
        check_hub_repo(push_to_hub)
    out = Path(output) if output is not None else default_output(source, fmt)
    single = fmt == "gguf" and out.suffix == ".gguf"
    folder = out.parent if single else out
    check_output(folder)
    model, tokenizer, kind = load_merged(source)
    if fmt != "hf":
        check_gguf_student(model)
    recipe = _source_recipe(source)
    name = recipe.serve.model_name if recipe is not None else DEFAULT_NAME
    with output_folder(folder):
        if fmt == "hf":
            files = _export_hf(model, tokenizer, kind, source, folder, recipe)
        else:
            target = out if single else folder / f"{name}-{kind_name.upper()}.gguf"
            files = [write_gguf(model, tokenizer, target, kind_name, name)]
            if fmt == "ollama":
                text = modelfile(target.name, tokenizer.eos_token, recipe)
                (folder / "Modelfile").write_text(text, encoding="utf-8")
                files.append(folder / "Modelfile")
        marker = {
            "format": fmt,
            "quant": kind_name if fmt != "hf" else None,
            "source": str(source),
        }
        (folder / MARKER).write_text(json.dumps(marker, indent=2) + "\n", encoding="utf-8")
    left_out = weights_only_left_out(source) if fmt != "hf" else []
    result = Exported(fmt, folder, files, left_out=left_out)
    if push_to_hub is not None:
        result.hub_url = push_folder(folder, push_to_hub)
    return result
