"""Which engine generates for a student (``eval.engine``), and the settings that choose it."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import pytest
from pydantic import ValidationError

from mindmirror.config import EvalConfig
from mindmirror.errors import UserError
from mindmirror.predict import with_engine
from mindmirror.requests.completions import CompletionsBackend, SpreadBackend
from mindmirror.student.engines import choose_engine
from mindmirror.student.generate import TransformersGenerator
from mindmirror.student.infer import Student
from mindmirror.student.server import (
    ServerGenerator,
    open_cache,
    verdict_distribution,
    verdict_words,
)
from tests.cli.test_cli_errors import mindmirror
from tests.eval.conftest import Fitted, write_run
from tests.eval.tiny import tiny_model, tiny_tokenizer


def tiny_student(seq2seq: bool) -> Student:
    tok = tiny_tokenizer(seq2seq)
    return Student(tiny_model(seq2seq, len(tok)), tok, "seq2seq" if seq2seq else "causal")


def test_seq2seq_students_stay_on_transformers() -> None:
    student = tiny_student(seq2seq=True)
    assert choose_engine(EvalConfig(), student) == "transformers"
    assert choose_engine(EvalConfig(engine="transformers"), student) == "transformers"
    with pytest.raises(UserError, match="seq2seq"):
        choose_engine(EvalConfig(engine="llama_cpp"), student)


def test_auto_picks_llama_cpp_for_causal_llama_students_where_installed() -> None:
    installed = importlib.util.find_spec("llama_cpp") is not None
    expected = "llama_cpp" if installed else "transformers"
    assert choose_engine(EvalConfig(), tiny_student(seq2seq=False)) == expected


def test_engine_settings_are_checked() -> None:
    with pytest.raises(ValidationError, match="needs engine_url"):
        EvalConfig(engine="openai")
    with pytest.raises(ValidationError, match="engine openai only"):
        EvalConfig(engine="llama_cpp", engine_url="http://127.0.0.1:8000/v1")
    url = "http://127.0.0.1:8000/v1"
    assert with_engine(EvalConfig(), None, url).engine == "openai"
    assert with_engine(EvalConfig(), "transformers", None).engine == "transformers"
    with pytest.raises(UserError, match="--engine vllm"):
        with_engine(EvalConfig(), "vllm", None)
    with pytest.raises(UserError, match="needs engine_url"):
        with_engine(EvalConfig(), "openai", None)


def test_a_tokenizer_that_splits_a_verdict_word_judges_with_transformers_elsewhere(
    fitted_causal: Fitted,
) -> None:
    assert verdict_words(fitted_causal.student.tokenizer) == (
        "the given answer is",
        [" correct", " wrong", " uncertain"],
    )
    # A vocabulary of bytes and a few merges: " uncertain" is several tokens.
    tok = tiny_tokenizer(seq2seq=False, vocab_size=270)
    assert verdict_words(tok) is None
    model = tiny_model(False, len(tok))
    fallback = TransformersGenerator(model, tok)
    inputs = ["verdict: Question: 1 + 1?\nAnswer: 2. The answer is (1 + 1)."]
    # No server listens at this URL: the verdicts must not be asked of it. (mindmirror's own
    # llama.cpp server scores multi-token verdicts itself: this is the other servers' path.)
    server = ServerGenerator(
        ["http://127.0.0.1:9/v1"],
        "none",
        tok,
        cache=open_cache(None),
        fallback=fallback,
        llama_cpp=False,
    )
    assert server.verdict_probs(inputs) == fallback.verdict_probs(inputs)
    assert server.judged_by_fallback == 1


def test_predict_refuses_an_unknown_engine_in_one_line(
    tmp_path: Path, fitted_causal: Fitted
) -> None:
    _, run = write_run(tmp_path, fitted_causal)
    result = mindmirror(
        "predict", str(run.root), "--engine", "vllm", "--question", "1 + 1?", cwd=tmp_path
    )
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "--engine vllm" in result.stderr


def test_a_spread_keeps_each_prompt_on_one_server_and_uses_all() -> None:
    backends = [CompletionsBackend("m", f"http://127.0.0.1:{9 + i}/v1") for i in range(2)]
    spread = SpreadBackend(backends)
    prompts = [f"explain: question {i}\n" for i in range(20)]
    picks = [spread.pick(p) for p in prompts]
    assert picks == [spread.pick(p) for p in prompts]
    assert {id(b) for b in picks} == {id(b) for b in backends}
    with pytest.raises(ValueError, match="same model"):
        SpreadBackend(
            [CompletionsBackend("a", "http://x/v1"), CompletionsBackend("b", "http://x/v1")]
        )


def test_verdicts_from_the_top_log_probabilities_or_none_when_too_uncertain() -> None:
    words = [" correct", " wrong", " uncertain"]
    top = {" correct": math.log(0.6), " wrong": math.log(0.3), " uncertain": math.log(0.1)}
    assert verdict_distribution(top, words) == pytest.approx(
        {"correct": 0.6, "wrong": 0.3, "uncertain": 0.1}
    )
    # " uncertain" is missing but at most e^-12 likely: its bound moves nothing.
    far = {" correct": -0.1, " wrong": -2.5, " the": -12.0}
    assert verdict_distribution(far, words)["uncertain"] < 1e-4  # type: ignore[index]
    # Missing words that may be as likely as the listed ones: transformers must judge.
    near = {" ": -0.6, " correct": -6.1, " the": -6.2}
    assert verdict_distribution(near, words) is None
    assert verdict_distribution({" ": -0.1, " (": -2.0}, words) is None
    assert verdict_distribution(None, words) is None
