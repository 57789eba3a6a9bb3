"""`mindmirror predict` as a user runs it: results alone on stdout, progress on stderr, and the
default mode shared with `serve`."""

from __future__ import annotations

import json
from pathlib import Path

from mindmirror.config import ServeConfig, dump_recipe
from mindmirror.deployment.serve import load_served
from mindmirror.predict import Predictor, default_mode
from tests.cli.test_cli_errors import mindmirror
from tests.eval.conftest import Q_RIGHT, Q_WRONG, Fitted, write_run


def test_stdout_holds_only_the_answers(tmp_path: Path, fitted_causal: Fitted) -> None:
    _, run = write_run(tmp_path, fitted_causal)
    args = ["predict", str(run.root), "--mode", "cot", "--question", Q_RIGHT]
    result = mindmirror(*args, "--question", Q_WRONG, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    answers = [json.loads(line) for line in result.stdout.splitlines()]
    assert [a["canonical"] for a in answers] == ["7", "16"]
    assert "2/2" in result.stderr  # generation progress, as plain lines on the pipe
    quiet = mindmirror(*args, "-q", cwd=tmp_path)
    # Only a warning may remain: threads outnumbering the cores when llama.cpp servers of
    # other commands run on this machine (the suite's own teacher server, say).
    said = [line for line in quiet.stderr.splitlines() if not line.startswith("warning: threads:")]
    assert quiet.returncode == 0 and said == [], quiet.stderr


def test_predict_and_serve_default_to_the_same_mode(tmp_path: Path, fitted_causal: Fitted) -> None:
    assert default_mode("standard", ServeConfig(mode="mirror")) == "answer"
    assert default_mode("distill", ServeConfig()) == "answer"
    assert default_mode("mind_mirror", ServeConfig(mode="mirror")) == "mirror"
    assert default_mode(None, ServeConfig()) == "cot"
    recipe, run = write_run(tmp_path, fitted_causal)
    recipe.train.method = "standard"
    run.recipe.write_text(dump_recipe(recipe))
    assert Predictor.load(run.root).mode == "answer"
    assert load_served(run.root).serve.mode == "answer"
