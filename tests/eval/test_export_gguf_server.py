"""Exported GGUF students served by the real llama.cpp server answer as the PyTorch student.

The tiny fitted student checks every prompt of the format (``predict:``, ``explain:``,
``verdict:`` and the chat template) in seconds; the demo-sized student (SmolLM2-135M, the
embedded model, briefly trained on the answer format) checks greedy agreement on a few dozen
unseen questions at f16 (``bench/export_agreement.py`` measures every quantized type).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import gguf
import httpx
import pytest

from mindmirror.deployment.export import export
from mindmirror.embedded import llama_server
from mindmirror.student.formats import EXPLAIN, PREDICT, reasoning_input
from mindmirror.student.model import load_student, save_student
from mindmirror.tasks.arith_problems import Problem, generate_problems
from tests.eval.conftest import COT_RIGHT, Fitted, memorised_pairs
from tests.eval.tiny import fit_tiny
from tests.gguf_agreement import agreement, llama_greedy, torch_greedy

pytestmark = [
    pytest.mark.server,
    pytest.mark.skipif(
        importlib.util.find_spec("llama_cpp") is None,
        reason="needs llama-cpp-python[server] (pip install -e '.[embedded]')",
    ),
]


def test_tiny_student_gives_the_same_answers_and_verdicts(
    tmp_path: Path, fitted_causal: Fitted
) -> None:
    s = fitted_causal.student
    folder = save_student(s.model, s.tokenizer, tmp_path / "student", kind="causal")
    (path,) = export(folder, "gguf", tmp_path / "gguf").files
    inputs = [source for source, _ in memorised_pairs()]
    expected = torch_greedy(s.model, s.tokenizer, inputs, max_tokens=24)
    assert expected == [target for _, target in memorised_pairs()]  # it learnt them
    with llama_server(path, log_path=tmp_path / "server.log", n_ctx=512) as url:
        assert llama_greedy(url, inputs, max_tokens=24) == expected
        verdicts = [text for text in expected if text.startswith("the given answer is")]
        assert verdicts == ["the given answer is correct", "the given answer is wrong"]
        # The GGUF's chat template sends a bare question as `explain: <question>`.
        question = inputs[0].removeprefix(f"{EXPLAIN}: ")
        chat = httpx.post(
            f"{url}/chat/completions",
            json={
                "messages": [{"role": "user", "content": question}],
                "max_tokens": 24,
                "temperature": 0.0,
            },
            timeout=60,
        ).json()
        assert chat["choices"][0]["message"]["content"].strip() == COT_RIGHT


def test_llama_cpp_quantizer_writes_k_quants(tmp_path: Path, fitted_causal: Fitted) -> None:
    s = fitted_causal.student
    folder = save_student(s.model, s.tokenizer, tmp_path / "student", kind="causal")
    (path,) = export(folder, "gguf", tmp_path / "q4", quant="Q4_K_M").files
    reader = gguf.GGUFReader(str(path))
    assert reader.fields["general.file_type"].contents() == gguf.LlamaFileType.MOSTLY_Q4_K_M
    assert path.name.endswith("-Q4_K_M.gguf") and not list(path.parent.glob(".*tmp"))


def answer_rows(problems: list[Problem]) -> list[tuple[str, str]]:
    """``predict:`` rows with the answers a trained student gives (``The answer is (...)``)."""
    return [
        (reasoning_input(PREDICT, p.question), f"The answer is {p.equation}.") for p in problems
    ]


@pytest.mark.slow
def test_demo_sized_student_agrees_with_pytorch_at_f16(tmp_path: Path, gguf_path: Path) -> None:
    # The demo's student (SmolLM2-135M) after a few steps on the answer format: an untrained
    # model's chatter is full of near-ties that f16 rounding alone flips, a student's is not.
    model, tokenizer, kind = load_student("embedded")
    problems = generate_problems(28, seed=7)
    model = fit_tiny(model, tokenizer, answer_rows(problems[:4]), steps=3, lr=3e-4)
    folder = save_student(model, tokenizer, tmp_path / "student", kind=kind)
    (path,) = export(folder, "gguf", tmp_path / "gguf").files
    inputs = [source for source, _ in answer_rows(problems[4:])]  # 24 unseen questions
    expected = torch_greedy(model, tokenizer, inputs, max_tokens=16)
    assert sum(text.startswith("The answer is") for text in expected) >= 20  # it learnt them
    with llama_server(path, log_path=tmp_path / "server.log", n_ctx=512) as url:
        got = llama_greedy(url, inputs, max_tokens=16)
    assert agreement(expected, got) >= 0.95, list(zip(expected, got, strict=True))
