"""No library progress bars (tqdm, carriage returns) in piped output unless ``--verbose``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from mindmirror import progress
from mindmirror.deployment.export_gguf import write_gguf
from tests.eval.tiny import tiny_model, tiny_tokenizer

SRC = Path(__file__).resolve().parents[2] / "src"


def _env(cache: Path) -> dict[str, str]:
    """This environment without the quiet switches (the CLI must set them itself)."""
    env = {k: v for k, v in os.environ.items() if k not in progress.LIBRARY_QUIET_ENV}
    env["MINDMIRROR_CACHE"] = str(cache)
    env["PYTHONPATH"] = os.pathsep.join([str(SRC), env.get("PYTHONPATH", "")])
    return env


def _export(tmp_path: Path, gguf: Path, *flags: str) -> str:
    """stderr of a piped ``mindmirror [flags] export GGUF --format hf`` (converts the GGUF)."""
    name = "verbose" if flags else "quiet"
    out = subprocess.run(
        [sys.executable, "-m", "mindmirror", *flags, "export", str(gguf), "-f", "hf",
         "-o", str(tmp_path / f"hf-{name}")],
        capture_output=True, env=_env(tmp_path / f"cache-{name}"), check=True,
    )  # fmt: skip
    stderr = out.stderr.decode()  # bytes: text mode would turn carriage returns into newlines
    assert "wrote" in stderr
    return stderr


def test_converting_a_gguf_student_prints_no_bars_into_a_pipe(tmp_path: Path) -> None:
    tok = tiny_tokenizer(seq2seq=False)
    gguf = write_gguf(tiny_model(False, len(tok)), tok, tmp_path / "tiny.gguf", "f32")
    quiet = _export(tmp_path, gguf)
    assert "\r" not in quiet and "it/s" not in quiet and "%|" not in quiet, quiet
    # The same command with --verbose shows the bars this test looks for (so it can fail).
    loud = _export(tmp_path, gguf, "--verbose")
    assert "\r" in loud and "Converting and de-quantizing GGUF tensors" in loud


@pytest.mark.parametrize("first", ["transformers", "huggingface_hub"])
def test_quiet_libraries_after_the_import_still_silences_the_bars(first: str) -> None:
    """A script that imported the libraries first (the benches) still gets none of their bars
    ("Loading weights", "Writing model shards", downloads)."""
    code = (
        f"import {first}; from mindmirror.progress import quiet_libraries; quiet_libraries(); "
        "from transformers.utils import logging; from huggingface_hub.utils import "
        "are_progress_bars_disabled; "
        "print(logging.is_progress_bar_enabled(), are_progress_bars_disabled())"
    )
    env = {k: v for k, v in os.environ.items() if k not in progress.LIBRARY_QUIET_ENV}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    )
    assert out.stdout.split() == ["False", "True"]


@pytest.mark.parametrize("env_bars", ["", "TQDM_MININTERVAL"])
def test_bare_tqdm_bars_imported_before_quiet_libraries_are_off(env_bars: str) -> None:
    """transformers' "Converting and de-quantizing GGUF tensors" is a bare ``tqdm.auto`` bar:
    a bench that imported tqdm before ``quiet_libraries`` must not print it; a bar that asks
    for ``disable=False`` still shows, and so does every bar without ``quiet_libraries``."""
    code = (
        "import sys; import transformers, tqdm.auto; quiet = sys.argv[1] == 'quiet'\n"
        "if quiet:\n"
        "    from mindmirror.progress import quiet_libraries as q; q(); q()  # twice: idempotent\n"
        "print(tqdm.auto.tqdm(range(3)).disable, tqdm.auto.tqdm(range(3), disable=False).disable)"
    )
    env = {k: v for k, v in os.environ.items() if k not in progress.LIBRARY_QUIET_ENV}
    if env_bars:
        env[env_bars] = "0.5"  # tqdm then wraps __init__ itself at import
    outs = [
        subprocess.run(
            [sys.executable, "-c", code, arg], capture_output=True, text=True, env=env, check=True
        ).stdout.split()
        for arg in ("quiet", "loud")
    ]
    assert outs == [["True", "False"], ["False", "False"]]
