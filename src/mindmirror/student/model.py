"""Student models: load one (Hub id, local folder, GGUF file, run directory), add LoRA, save it.

Stable API (training, inference, eval and serve all go through it):

``load_student(source, *, dtype=None, cache_dir=None) -> (model, tokenizer, kind)``
    ``source`` is a Hub id, a local model folder, a ``.gguf`` file, ``"embedded"`` (the
    packaged SmolLM2-135M-Instruct GGUF), a trained student folder written by
    ``save_student``, or a run directory (then its final trained student, see
    ``find_student``). ``kind`` is ``"seq2seq"`` or ``"causal"``. Causal tokenizers come back
    with a pad token and ``padding_side="left"``, ready for batched generation.
``save_student(model, tokenizer, path, *, kind, info=None) -> Path``
    Writes a plain Hugging Face folder (LoRA merged in) plus ``student.json`` (kind, info),
    which ``load_student`` reads back in one call.
``find_student(path) -> Path``
    A run directory -> its final student folder (from ``student/train.json``); a student
    folder -> itself.
``add_lora(model, kind, *, r, alpha, dropout, targets) -> PeftModel``
    Wrap a model with LoRA adapters (peft).
``base_model(model) -> model``
    The model under a LoRA wrapper (or the model itself).
``student_kind(config) -> "seq2seq" | "causal"``
    Which head a config calls for (encoder-decoder configs are seq2seq).

GGUF files: transformers (with ``gguf``) de-quantizes them to a float32 model that still
counts as quantized, so ``save_pretrained`` and ``Trainer`` refuse it. We clear the quantizer
marks, save the model once to a cache folder and load from there afterwards (well under a
second instead of ~15 s of de-quantizing, identical logits).
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import shutil
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

import torch
from safetensors import SafetensorError
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoModelForSeq2SeqLM,
    AutoTokenizer,
    PretrainedConfig,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from mindmirror.errors import UserError

StudentKind = Literal["seq2seq", "causal"]
STUDENT_INFO = "student.json"
EMBEDDED = "embedded"


def student_kind(config: PretrainedConfig) -> StudentKind:
    """``seq2seq`` for encoder-decoder configs (T5, Flan-T5, BART), ``causal`` otherwise."""
    return "seq2seq" if getattr(config, "is_encoder_decoder", False) else "causal"


def cache_root(cache_dir: str | Path | None = None) -> Path:
    """Where converted GGUF folders live: ``cache_dir``, ``$MINDMIRROR_CACHE`` or
    ``~/.cache/mindmirror``."""
    if cache_dir is not None:
        return Path(cache_dir)
    env = os.environ.get("MINDMIRROR_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "mindmirror"


def _gguf_cache_folder(gguf: Path, cache_dir: str | Path | None) -> Path:
    # Keyed by path, size and mtime, so a replaced file is converted again.
    stat = gguf.stat()
    key = hashlib.sha1(f"{gguf.resolve()}|{stat.st_size}|{stat.st_mtime_ns}".encode()).hexdigest()
    return cache_root(cache_dir) / "gguf" / f"{gguf.stem}-{key[:12]}"


def _clear_quantization_marks(model: PreTrainedModel) -> None:
    """Make a de-quantized GGUF model a plain float model that saves and trains normally."""
    model.hf_quantizer = None
    model.is_quantized = False
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config


def convert_gguf(gguf: Path, cache_dir: str | Path | None = None) -> Path:
    """De-quantize a GGUF file once into a plain Hugging Face folder; return that folder.

    The folder is written under a temporary name and renamed into place, so concurrent
    processes (e.g. ``accelerate launch``) and kills never leave half a folder.
    """
    target = _gguf_cache_folder(gguf, cache_dir)
    if (target / "config.json").is_file():
        return target
    config = AutoConfig.from_pretrained(gguf.parent, gguf_file=gguf.name)
    auto = AutoModelForSeq2SeqLM if student_kind(config) == "seq2seq" else AutoModelForCausalLM
    model = auto.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    _clear_quantization_marks(model)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    try:
        os.replace(tmp, target)
    except OSError:
        # Another process finished the same conversion first; theirs is as good as ours.
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def find_student(path: str | Path) -> Path:
    """Resolve a run directory to its final trained student; a model folder stays as it is.

    Raises:
        UserError: a run directory (``recipe.yaml``, ``teacher/`` or ``student/`` in it) whose
            training never finished, with the command that trains it.
    """
    path = Path(path)
    summary = path / "student" / "train.json"
    if summary.is_file():
        final = json.loads(summary.read_text()).get("final")
        if not final:
            raise UserError(f"{summary}: training did not finish; run `mindmirror train` again")
        return path / final
    run_parts = (path / "recipe.yaml", path / "teacher", path / "student")
    if not (path / "config.json").is_file() and any(p.exists() for p in run_parts):
        raise UserError(
            f"no trained student in {path}: train first (`mindmirror train RECIPE`, the recipe "
            "of this run)"
        )
    return path


def resolve_source(source: str | Path, cache_dir: str | Path | None = None) -> str:
    """A loadable Hub id or folder for ``source`` (``embedded``/GGUF files are converted once)."""
    if str(source) == EMBEDDED:
        from mindmirror.embedded import embedded_gguf

        source = embedded_gguf()
    path = Path(source)
    if path.suffix == ".gguf":
        if not path.is_file():
            raise UserError(f"student GGUF file not found: {path}")
        return str(convert_gguf(path, cache_dir))
    if path.exists():
        return str(find_student(path))
    if str(source).startswith((".", "/", "~")):
        raise UserError(f"student model not found: {source} (give a Hub id, folder or .gguf)")
    return str(source)


def _prepare_tokenizer(tokenizer: PreTrainedTokenizerBase, kind: StudentKind) -> None:
    if tokenizer.pad_token is None:
        # Causal LMs often ship without a pad token; padding is masked out everywhere anyway.
        tokenizer.pad_token = tokenizer.eos_token
    if kind == "causal":
        # Batched generation continues every prompt from its last token: pad on the left.
        tokenizer.padding_side = "left"


def load_student(
    source: str | Path,
    *,
    dtype: torch.dtype | None = None,
    cache_dir: str | Path | None = None,
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase, StudentKind]:
    """Load a student and its tokenizer; see the module docstring for what ``source`` may be.

    Raises:
        UserError: missing file or folder, a run directory without a trained student, damaged
            weights, or a model that cannot be loaded offline.
    """
    resolved = resolve_source(source, cache_dir)
    try:
        config = AutoConfig.from_pretrained(resolved)
        kind = student_kind(config)
        auto = AutoModelForSeq2SeqLM if kind == "seq2seq" else AutoModelForCausalLM
        model = auto.from_pretrained(resolved, dtype=dtype or torch.float32)
        tokenizer = AutoTokenizer.from_pretrained(resolved)
    except SafetensorError as error:
        raise UserError(
            f"cannot load student '{source}': its model.safetensors is damaged or cut short "
            f"({error}); copy it again, or train again"
        ) from None
    except (OSError, ValueError) as error:
        # OSError: not found / offline; ValueError: a folder that is not a model.
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise UserError(
            f"cannot load student '{source}': {first} (check the Hub id or path; offline, "
            "use a local folder, a .gguf file or `embedded`)"
        ) from None
    _prepare_tokenizer(tokenizer, kind)
    return model, tokenizer, kind


def add_lora(
    model: PreTrainedModel,
    kind: StudentKind,
    *,
    r: int = 16,
    alpha: int = 32,
    dropout: float = 0.05,
    targets: list[str] | str = "all-linear",
) -> Any:
    """Wrap ``model`` with LoRA adapters on ``targets`` (peft's ``all-linear`` by default)."""
    from peft import LoraConfig, TaskType, get_peft_model

    task_type = TaskType.SEQ_2_SEQ_LM if kind == "seq2seq" else TaskType.CAUSAL_LM
    config = LoraConfig(
        task_type=task_type, r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=targets
    )
    with quiet_peft():
        return get_peft_model(model, config)


def base_model(model: torch.nn.Module) -> torch.nn.Module:
    """The model under a LoRA wrapper, or ``model`` itself: the one whose ``forward`` names
    the arguments transformers accepts (peft's wrapper takes them as ``**kwargs``)."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


@contextmanager
def quiet_peft() -> Iterator[None]:
    """Hide the FutureWarning peft raises when it wraps a model: peft reads transformers'
    deprecated `is_gradient_checkpointing` property, a warning about peft's code, not the
    user's, that only clutters the progress output."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", ".*is_gradient_checkpointing", FutureWarning)
        yield


def save_student(
    model: Any,
    tokenizer: PreTrainedTokenizerBase,
    path: str | Path,
    *,
    kind: StudentKind,
    info: dict[str, Any] | None = None,
) -> Path:
    """Save a student that ``load_student(path)`` restores in one call.

    LoRA adapters are merged first, so the folder is a plain model any tool can load. Writes to
    a temporary folder and renames it into place (a kill never leaves half a student).
    """
    from peft import PeftModel

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(model, PeftModel):
        # Merging mutates the wrapped weights: merge a copy so training can go on unchanged.
        model = copy.deepcopy(model).merge_and_unload()
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}-", dir=path.parent))
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    (tmp / STUDENT_INFO).write_text(json.dumps({"kind": kind, **(info or {})}, indent=2) + "\n")
    if path.exists():
        shutil.rmtree(path)
    os.replace(tmp, path)
    return path


def student_info(path: str | Path) -> dict[str, Any]:
    """The ``student.json`` written next to a saved student ({} for other folders)."""
    file = find_student(path) / STUDENT_INFO
    return json.loads(file.read_text()) if file.is_file() else {}
