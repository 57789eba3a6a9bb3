"""The student generating and judging through a real llama.cpp server answers as transformers.

The tiny fitted causal student is exported to GGUF and served on loopback (``eval.engine``
``llama_cpp``), or served by hand and reached as any OpenAI-compatible server (``openai``).
"""

from __future__ import annotations

import asyncio
import importlib.util
import sys
from dataclasses import replace
from pathlib import Path

import httpx
import pytest

from mindmirror.config import EvalConfig
from mindmirror.deployment.export import export
from mindmirror.embedded import EMBEDDED_MODEL, llama_server
from mindmirror.errors import UserError
from mindmirror.evaluate import evaluate
from mindmirror.student.engines import generation_engine, servers_peak_rss_mb
from mindmirror.student.formats import VERDICT, causal_prompt, evaluation_input
from mindmirror.student.infer import Student, infer_modes
from mindmirror.student.model import load_student, save_student
from mindmirror.student.server import ServerGenerator, open_cache
from mindmirror.tasks.arith_problems import generate_problems
from tests.eval.conftest import (
    COT_RIGHT,
    COT_WRONG,
    Q_RIGHT,
    Q_WRONG,
    Fitted,
    memorised_pairs,
    write_run,
)
from tests.eval.test_export_gguf_server import answer_rows
from tests.eval.tiny import fit_tiny, tiny_model, tiny_tokenizer
from tests.gguf_agreement import agreement

pytestmark = [
    pytest.mark.server,
    pytest.mark.skipif(
        importlib.util.find_spec("llama_cpp") is None,
        reason="needs llama-cpp-python[server] (pip install -e '.[embedded]')",
    ),
]

# Every (question, CoT) pair: two the student memorised verdicts for, two it never saw, where
# its verdict distribution is not saturated.
VERDICT_INPUTS = [
    evaluation_input(VERDICT, q, c) for q in (Q_RIGHT, Q_WRONG) for c in (COT_RIGHT, COT_WRONG)
]


def test_greedy_answers_and_verdicts_agree_with_transformers(fitted_causal: Fitted) -> None:
    student = fitted_causal.student
    inputs = [source for source, _ in memorised_pairs()]
    expected = student.generator.generate(inputs, max_new_tokens=24)
    verdicts = student.generator.verdict_probs(VERDICT_INPUTS)
    cfg = EvalConfig(engine="llama_cpp", max_new_tokens=24)
    with generation_engine(student, cfg) as served:
        assert served.server is not None and student.server is None
        got = served.generator.generate(inputs, max_new_tokens=24)
        judged = served.generator.verdict_probs(VERDICT_INPUTS)
        counted = prompt_tokens(served, inputs)
    tok = student.tokenizer
    assert counted == [len(tok(causal_prompt(text))["input_ids"]) for text in inputs]
    assert [s[0].text for s in got] == [s[0].text for s in expected]
    for (mine,), (theirs,) in zip(got, expected, strict=True):
        assert mine.logprob == pytest.approx(theirs.logprob, abs=0.01)
    for mine, theirs in zip(judged, verdicts, strict=True):
        assert mine == pytest.approx(theirs, abs=0.01)
    assert judged[0]["correct"] > 0.9 and judged[3]["wrong"] > 0.9


def test_a_tokenizer_that_adds_bos_gets_it_once_from_the_server() -> None:
    # Llama-style: training rows start with <s>; the GGUF says so and llama.cpp adds it.
    tok = tiny_tokenizer(seq2seq=False, bos=True)
    assert tok("a")["input_ids"][0] == tok.bos_token_id
    model = fit_tiny(tiny_model(False, len(tok)), tok, memorised_pairs(), steps=150)
    student = Student(model, tok, "causal")
    inputs = [source for source, _ in memorised_pairs()]
    expected = [s[0].text for s in student.generator.generate(inputs, max_new_tokens=24)]
    assert expected == [target for _, target in memorised_pairs()]  # it learnt them
    with generation_engine(student, EvalConfig(engine="llama_cpp", max_new_tokens=24)) as served:
        got = [s[0].text for s in served.generator.generate(inputs, max_new_tokens=24)]
        counted = prompt_tokens(served, inputs)
    assert got == expected
    assert counted == [len(tok(causal_prompt(text))["input_ids"]) for text in inputs]


def test_generates_from_inside_a_running_event_loop(fitted_causal: Fitted) -> None:
    # A notebook runs an event loop in the caller's thread: asyncio.run would be refused.
    inputs = [source for source, _ in memorised_pairs()][:2]
    cfg = EvalConfig(engine="llama_cpp", max_new_tokens=24)
    with generation_engine(fitted_causal.student, cfg) as served:

        async def caller() -> list[str]:
            return [s[0].text for s in served.generator.generate(inputs, max_new_tokens=24)]

        assert asyncio.run(caller()) == [target for _, target in memorised_pairs()][:2]


def prompt_tokens(served: Student, inputs: list[str]) -> list[int]:
    """How many tokens the student's server reads for each input (BOS included)."""
    url = served.server.urls[0]  # type: ignore[union-attr]
    counts = []
    for text in inputs:
        reply = httpx.post(
            f"{url}/completions",
            json={"prompt": causal_prompt(text), "max_tokens": 1, "temperature": 0.0},
            timeout=60,
        )
        counts.append(reply.json()["usage"]["prompt_tokens"])
    return counts


def test_sampled_modes_match_and_resume_from_the_cache(
    tmp_path: Path, fitted_causal: Fitted
) -> None:
    student, task = fitted_causal.student, fitted_causal.task
    questions = [Q_RIGHT, Q_WRONG]
    cfg = EvalConfig(engine="llama_cpp", num_samples=3, temperature=0.5, max_new_tokens=24)
    reference = infer_modes(student, task, questions, ["vote", "mirror"], cfg, seed=1)
    cache = tmp_path / "samples.sqlite"
    runs = []
    for _ in range(2):  # the second session finds every sample and verdict in the cache
        with generation_engine(student, cfg, cache=cache) as served:
            runs.append(infer_modes(served, task, questions, ["vote", "mirror"], cfg, seed=1))
    # Two servers, no cache: every sample is drawn again, with the same per-request seeds.
    spread = cfg.model_copy(update={"engine_servers": 2})
    with generation_engine(student, spread) as served:
        assert served.server is not None and len(set(served.server.urls)) == 2  # type: ignore[attr-defined]
        runs.append(infer_modes(served, task, questions, ["vote", "mirror"], spread, seed=1))
    first, again, twice = runs
    for mode in ("vote", "mirror"):
        assert [p.to_dict() for p in twice[mode].predictions] == [
            p.to_dict() for p in first[mode].predictions
        ]
        got = [p.canonical for p in first[mode].predictions]
        assert got == [p.canonical for p in reference[mode].predictions], mode
        assert [p.to_dict() for p in again[mode].predictions] == [
            p.to_dict() for p in first[mode].predictions
        ]
    assert all(len(p.samples) == 3 for p in first["mirror"].predictions)
    right, wrong = first["mirror"].predictions
    assert right.samples[0].p_correct > 0.9 and wrong.samples[0].verdict == "wrong"


def test_any_openai_compatible_server_hosting_the_student(
    tmp_path: Path, fitted_causal: Fitted
) -> None:
    student = fitted_causal.student
    folder = save_student(student.model, student.tokenizer, tmp_path / "student", kind="causal")
    (path,) = export(folder, "gguf", tmp_path / "gguf").files
    inputs = [source for source, _ in memorised_pairs()]
    expected = [s[0].text for s in student.generator.generate(inputs, max_new_tokens=24)]
    with llama_server(path, alias="tiny-student", n_ctx=512, log_path=tmp_path / "log") as url:
        cfg = EvalConfig(engine="openai", engine_url=url, max_new_tokens=24)
        with generation_engine(student, cfg) as served:
            assert served.server is not None and served.server.model == "tiny-student"
            got = served.generator.generate(inputs, max_new_tokens=24)
            # The server ignores `n`: the engine notices and asks once per sample.
            sampled = served.generator.generate(
                inputs[:1], num_samples=3, sample=True, max_new_tokens=24, logprobs=False
            )
            # Not mindmirror's server: its memory is unknown, not zero.
            assert servers_peak_rss_mb(served) is None
    assert [s[0].text for s in got] == expected
    assert len(sampled[0]) == 3 and all(s.text for s in sampled[0])


def test_a_separate_judge_gets_a_server_of_its_own(fitted_causal: Fitted) -> None:
    student = fitted_causal.student
    # A two-stage run's stage-1 student judges; a stand-in with the same weights.
    pair = replace(student, judge=replace(student))
    expected = pair.judge_or_self.generator.verdict_probs(VERDICT_INPUTS)
    with generation_engine(pair, EvalConfig(engine="llama_cpp", max_new_tokens=24)) as served:
        assert served.judge is not None and served.judge.server is not None
        assert served.judge.server.urls != served.server.urls  # type: ignore[union-attr]
        judged = served.judge_or_self.generator.verdict_probs(VERDICT_INPUTS)
        alone = servers_peak_rss_mb(replace(served, judge=None))
        both = servers_peak_rss_mb(served)
    if sys.platform == "linux":  # each server's peak counts once
        assert alone is not None and both is not None and both > alone > 0
    for mine, theirs in zip(judged, expected, strict=True):
        assert mine == pytest.approx(theirs, abs=0.01)


@pytest.mark.slow
def test_demo_sized_student_answers_and_judges_as_transformers(gguf_path: Path) -> None:
    # SmolLM2-135M, the demo's student, a few steps into the answer format (as the export
    # test trains it); never trained to judge, so its verdict words sit far down its list and
    # its end token after them is far from sure. mindmirror's server scores the verdicts
    # itself (no input handed to transformers); asked as other servers are (a top list), it
    # hands those inputs to transformers. Both must agree with transformers.
    model, tokenizer, kind = load_student("embedded")
    problems = generate_problems(28, seed=7)
    model = fit_tiny(model, tokenizer, answer_rows(problems[:4]), steps=3, lr=3e-4)
    student = Student(model, tokenizer, kind)
    inputs = [source for source, _ in answer_rows(problems[4:])]  # 24 unseen questions
    judged = [
        evaluation_input(VERDICT, p.question, f"The answer is {p.equation}.")
        for p in problems[4:10]
    ]
    expected = [s[0].text for s in student.generator.generate(inputs, max_new_tokens=16)]
    verdicts = student.generator.verdict_probs(judged)
    with generation_engine(student, EvalConfig(engine="llama_cpp")) as served:
        got = [s[0].text for s in served.generator.generate(inputs, max_new_tokens=16)]
        probs = served.generator.verdict_probs(judged)
        assert served.server.judged_by_fallback == 0  # type: ignore[union-attr]
        listed = ServerGenerator(
            served.server.urls,  # type: ignore[union-attr]
            served.server.model,  # type: ignore[union-attr]
            tokenizer,
            cache=open_cache(None),
            fallback=student.generator,
            llama_cpp=False,
        )
        handed = listed.verdict_probs(judged)
    assert 0 < listed.judged_by_fallback <= len(judged)
    assert agreement(expected, got) >= 0.95, list(zip(expected, got, strict=True))
    for mine, other, theirs in zip(probs, handed, verdicts, strict=True):
        assert mine == pytest.approx(theirs, abs=0.01)
        assert other == pytest.approx(theirs, abs=0.01)


def test_eval_records_the_engine_that_ran_and_keeps_its_samples(
    tmp_path: Path, fitted_causal: Fitted
) -> None:
    recipe, run = write_run(tmp_path, fitted_causal)
    served = evaluate(recipe, run, ["answer"], quiet=True)
    assert served["engine"] == "llama_cpp"  # auto
    assert served["verdict_fallbacks"] == {"student": 0}  # answer mode asks no verdicts
    if sys.platform == "linux":  # the server's own peak, counted apart from the scoring's
        assert served["server_peak_rss_mb"] > 0
    assert (run.evaluation / "samples.sqlite").is_file()
    reference = recipe.model_copy(
        update={"eval": recipe.eval.model_copy(update={"engine": "transformers"})}
    )
    local = evaluate(reference, run, ["answer"], quiet=True)
    assert local["engine"] == "transformers"
    assert local["verdict_fallbacks"] == {"student": None}
    assert local["server_peak_rss_mb"] is None  # no server ran


def test_verdicts_asked_of_a_server_that_does_not_score_them_fail_in_one_line(
    gguf_path: Path, tmp_path: Path
) -> None:
    # llama-cpp-python's own server ignores mindmirror's `continuations`: a student's server
    # mistaken for mindmirror's must say so, not judge from nothing.
    from transformers import AutoTokenizer

    from mindmirror.student.model import resolve_source

    tok = AutoTokenizer.from_pretrained(resolve_source("embedded"))
    model, _, kind = load_student("embedded")
    fallback = Student(model, tok, kind).generator
    with llama_server(gguf_path, n_ctx=512, n_threads=1, log_path=tmp_path / "log") as url:
        server = ServerGenerator(
            [url], EMBEDDED_MODEL, tok, cache=open_cache(None), fallback=fallback, llama_cpp=True
        )
        with pytest.raises(UserError, match="did not score the verdicts"):
            server.verdict_probs(VERDICT_INPUTS[:1])
