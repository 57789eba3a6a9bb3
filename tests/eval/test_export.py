"""`mindmirror export` on tiny students: the HF folder, the GGUF file, the Ollama Modelfile.

The GGUF files are read back two independent ways: the ``gguf`` package's reader (names, types,
tokenizer metadata) and transformers' own GGUF loader, which undoes llama.cpp's q/k layout, so
equal logits prove the tensor mapping and the permutation.
"""

from __future__ import annotations

import json
from pathlib import Path

import gguf
import pytest
import torch
from transformers import AutoModelForCausalLM
from typer.testing import CliRunner, Result

from mindmirror.cli import app
from mindmirror.deployment.export import export
from mindmirror.deployment.export_gguf import chat_template
from mindmirror.errors import UserError
from mindmirror.predict import Predictor
from mindmirror.student.answer_confidence import ANSWER_CONFIDENCE_FILE, AnswerCalibration
from mindmirror.student.confidence import CONFIDENCE_FILE, FEATURES, ConfidenceModel
from mindmirror.student.loading import judge_folder
from mindmirror.student.model import add_lora, load_student, save_student
from tests.eval.conftest import COT_RIGHT, Q_RIGHT, Q_WRONG, Fitted, fitted, write_run


@pytest.fixture(scope="module")
def fitted_t5(one_thread: None) -> Fitted:
    return fitted(True)


def saved(fit: Fitted, folder: Path) -> Path:
    s = fit.student
    return save_student(s.model, s.tokenizer, folder, kind=s.kind)  # type: ignore[arg-type]


def logits(model: torch.nn.Module, ids: list[int]) -> torch.Tensor:
    with torch.no_grad():
        return model(input_ids=torch.tensor([ids])).logits[0]


def test_gguf_round_trips_through_transformers(tmp_path: Path, fitted_causal: Fitted) -> None:
    student = saved(fitted_causal, tmp_path / "student")
    result = export(student, "gguf", tmp_path / "out")
    (path,) = result.files
    assert path.name == "mindmirror-student-F16.gguf"
    reader = gguf.GGUFReader(str(path))
    fields = {name: f.contents() for name, f in reader.fields.items() if name.startswith("tok")}
    tok = fitted_causal.student.tokenizer
    assert fields["tokenizer.ggml.model"] == "gpt2" and fields["tokenizer.ggml.pre"] == "gpt-2"
    assert fields["tokenizer.ggml.tokens"] == [
        tok.convert_ids_to_tokens(i) for i in range(len(tok))
    ]
    assert fields["tokenizer.ggml.add_bos_token"] is False  # the tiny tokenizer adds none
    assert fields["tokenizer.ggml.eos_token_id"] == tok.eos_token_id
    assert fields["tokenizer.chat_template"] == chat_template()
    types = {t.name: t.tensor_type.name for t in reader.tensors}
    assert types["blk.0.attn_q.weight"] == "F16" and types["blk.0.attn_norm.weight"] == "F32"
    assert "output.weight" in types  # the tiny Llama does not tie its head
    # transformers' own GGUF loader undoes llama.cpp's q/k layout.
    back = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name)
    ids = tok(f"explain: {Q_RIGHT}\n")["input_ids"]
    original = logits(fitted_causal.student.model, ids)
    assert torch.allclose(logits(back, ids), original, atol=2e-2)


def test_q8_0_is_written_with_the_gguf_package(tmp_path: Path, fitted_causal: Fitted) -> None:
    student = saved(fitted_causal, tmp_path / "student")
    (path,) = export(student, "gguf", tmp_path / "q8" / "tiny.gguf", quant="Q8_0").files
    assert path == tmp_path / "q8" / "tiny.gguf"
    types = {t.name: t.tensor_type.name for t in gguf.GGUFReader(str(path)).tensors}
    assert types["blk.1.ffn_down.weight"] == "Q8_0" and types["output_norm.weight"] == "F32"


def test_hf_export_of_a_run_predicts_like_the_run(tmp_path: Path, fitted_causal: Fitted) -> None:
    _, run = write_run(tmp_path, fitted_causal)
    result = export(run.root, "hf")
    folder = result.folder
    assert folder == run.root / "export" / "hf"
    assert {"config.json", "recipe.yaml", "README.md", "export.json"} <= {
        p.name for p in folder.iterdir()
    }
    card = (folder / "README.md").read_text()
    assert "`verdict: Question: <question>\\nAnswer: <chain of thought>`" in card
    exported = Predictor.load(folder).predict([Q_RIGHT, Q_WRONG], mode="cot")
    original = Predictor.load(run.root).predict([Q_RIGHT, Q_WRONG], mode="cot")
    assert [p.cot for p in exported] == [p.cot for p in original] and exported[0].cot == COT_RIGHT
    # Exporting again replaces the earlier export; a folder of other files is never replaced.
    export(run.root, "hf")
    with pytest.raises(UserError, match=r"exists and is not an earlier export"):
        export(run.root, "hf", run.root / "student")


def test_a_two_stage_run_exports_its_judge(tmp_path: Path, fitted_causal: Fitted) -> None:
    _, run = write_run(tmp_path, fitted_causal)
    saved(fitted_causal, run.stage("evaluation") / "best")
    stages = {"evaluation": {"best": "student/evaluation/best"}}
    summary = {"final": "student/stage2/best", "stages": stages}
    (run.student / "train.json").write_text(json.dumps(summary))
    exported = export(run.root, "hf", tmp_path / "exported")
    folder = exported.folder
    assert judge_folder(folder) == folder / "judge" and exported.left_out == []
    assert Predictor.load(folder).student.judge is not None
    # A GGUF file holds the final student's weights only: the judge is named as left out.
    (left,) = export(run.root, "gguf", tmp_path / "g1" / "student.gguf").left_out
    assert left == "the separate judge that mirror mode uses"
    assert export(folder, "gguf", tmp_path / "g2" / "student.gguf").left_out == [
        left
    ]  # from hf, too


def test_an_own_cot_judge_exports_with_its_confidence(
    tmp_path: Path, fitted_causal: Fitted
) -> None:
    """`train.own_judge`: the exported judge is the own-CoT one, its combined confidence beside
    it, and the exported student loads both."""
    _, run = write_run(tmp_path, fitted_causal)
    judge = saved(fitted_causal, run.stage("own_judge") / "best")
    unit = (0.5,) * len(FEATURES)
    fitted = ConfidenceModel(FEATURES, unit, unit, unit, 0.1, 0.6, 0.8, 40, 5)
    fitted.save(judge / CONFIDENCE_FILE)
    stages = {"evaluation": {"best": "student/evaluation/best"}}
    stages["own_judge"] = {"best": "student/own_judge/best"}
    summary = {"final": "student/stage2/best", "stages": stages}
    (run.student / "train.json").write_text(json.dumps(summary))
    folder = export(run.root, "hf", tmp_path / "exported").folder
    assert (folder / "judge" / CONFIDENCE_FILE).is_file()
    assert Predictor.load(folder).student.confidence == fitted


def test_lora_adapters_are_merged_into_the_base(tmp_path: Path, fitted_causal: Fitted) -> None:
    base = saved(fitted_causal, tmp_path / "base")
    model, tok, _ = load_student(base)
    lora = add_lora(model, "causal", r=4, alpha=8, dropout=0.0)
    torch.manual_seed(0)
    for name, param in lora.named_parameters():
        if "lora_B" in name:
            param.data.normal_(0, 0.5)  # an untrained adapter is a no-op
    lora.save_pretrained(tmp_path / "adapter")
    ids = tok(f"predict: {Q_RIGHT}\n")["input_ids"]
    expected = logits(lora.eval(), ids)
    assert not torch.allclose(expected, logits(load_student(base)[0], ids), atol=1e-3)
    folder = export(tmp_path / "adapter", "hf", tmp_path / "merged").folder
    merged, _, _ = load_student(folder)
    assert not any("lora" in name for name, _ in merged.named_parameters())
    assert torch.allclose(logits(merged, ids), expected, atol=1e-4)


def test_seq2seq_students_export_only_as_hf(tmp_path: Path, fitted_t5: Fitted) -> None:
    student = saved(fitted_t5, tmp_path / "t5")
    with pytest.raises(UserError, match=r"seq2seq students .* use --format hf"):
        export(student, "gguf", tmp_path / "new" / "gguf")
    assert not (tmp_path / "new").exists()  # a failed export leaves no folder behind
    folder = export(student, "hf", tmp_path / "hf").folder
    assert load_student(folder)[2] == "seq2seq"
    assert "pipeline_tag: text2text-generation" in (folder / "README.md").read_text()


def test_ollama_modelfile_carries_the_prompt_format(tmp_path: Path, fitted_causal: Fitted) -> None:
    student = saved(fitted_causal, tmp_path / "student")
    result = export(student, "ollama", tmp_path / "ollama", quant="q8_0")
    gguf_file, modelfile = result.files
    text = modelfile.read_text()
    assert f"FROM ./{gguf_file.name}" in text and gguf_file.name.endswith("-Q8_0.gguf")
    assert 'TEMPLATE """{{ .Prompt }}\n"""' in text  # the newline the student learnt
    for prefix in ("explain: <question>", "predict: <question>", "verdict: Question:"):
        assert prefix in text
    assert 'PARAMETER stop "</s>"' in text and "PARAMETER temperature 0" in text


def test_bad_options_fail_before_any_work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    missing = tmp_path / "no-such-student"
    with pytest.raises(UserError, match=r"--format onnx: choose from hf, gguf, ollama"):
        export(missing, "onnx")
    with pytest.raises(UserError, match=r"--quant q3: unknown GGUF type"):
        export(missing, "gguf", quant="q3")
    with pytest.raises(UserError, match=r"--quant applies to --format gguf and ollama"):
        export(missing, "hf", quant="q8_0")
    for repo in ("just-a-name", "a/b/c", "alice/bad name"):
        with pytest.raises(UserError, match=r"--push-to-hub"):
            export(missing, "hf", push_to_hub=repo)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(UserError, match=r"HF_HUB_OFFLINE is set"):
        export(missing, "hf", push_to_hub="alice/student")


def test_no_token_to_push_is_one_clear_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from huggingface_hub import get_token

    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.delenv("HF_TOKEN", raising=False)
    if get_token():
        pytest.skip("a Hugging Face token is configured on this machine")
    with pytest.raises(UserError, match=r"no Hugging Face token; run `hf auth login`"):
        export(tmp_path / "student", "hf", push_to_hub="alice/student")


def test_cli_export_and_its_errors(tmp_path: Path, fitted_causal: Fitted) -> None:
    student = saved(fitted_causal, tmp_path / "student")
    runner = CliRunner()
    out = tmp_path / "cli"
    result = runner.invoke(app, ["export", str(student), "--format", "gguf", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert (out / "mindmirror-student-F16.gguf").is_file()
    assert "left out" not in result.output  # a plain student: the weights are all of it
    # A student with answer mode's calibration: the GGUF cannot carry it, and says so.
    AnswerCalibration(1.0, 0.0, 0.7, 0.8, 61).save(student / ANSWER_CONFIDENCE_FILE)
    noted = runner.invoke(app, ["export", str(student), "-f", "ollama", "-o", str(out)])
    assert noted.exit_code == 0, noted.output
    assert "note: --format ollama carries the weights only; left out: answer mode's" in " ".join(
        noted.output.split()
    )
    assert ANSWER_CONFIDENCE_FILE in noted.output and "--format hf keeps them" in noted.output
    assert export(student, "hf", tmp_path / "hf").left_out == []
    failed = runner.invoke(app, ["export", str(student), "--format", "gguf", "--quant", "zz"])
    assert failed.exit_code == 2 and "unknown GGUF type" in failed.output
    assert "Traceback" not in failed.output


def one_line_error(result: Result, *needles: str) -> None:
    """A CLI failure as users must see it: exit code 2, one line naming the problem."""
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 2, result.output
    assert len(lines) == 1 and lines[0].startswith("error:"), result.output
    for needle in needles:
        assert needle in lines[0], lines[0]


def test_damaged_weights_are_one_line_everywhere(tmp_path: Path, fitted_causal: Fitted) -> None:
    student = saved(fitted_causal, tmp_path / "student")
    weights = student / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    runner = CliRunner()
    out = tmp_path / "out"
    for args in (
        ["export", str(student), "-o", str(out)],
        ["predict", str(student), "--task", "svamp", "--question", Q_RIGHT],
        ["serve", str(student), "--task", "svamp", "--port", "0"],
    ):
        result = runner.invoke(app, args)
        one_line_error(result, f"cannot load student '{student}'", "model.safetensors is damaged")
    assert not out.exists()


def test_a_run_without_a_student_says_train_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = tmp_path / "run"
    (run / "teacher").mkdir(parents=True)
    recipe = {"name": "run", "task": {"name": "generic", "family": "number"}}
    (run / "recipe.yaml").write_text(json.dumps(recipe))
    monkeypatch.chdir(tmp_path)  # where export's default output would go
    runner = CliRunner()
    for args in (
        ["export", str(run)],
        ["predict", str(run), "--question", "1 + 1?"],
        ["serve", str(run), "--port", "0"],
    ):
        result = runner.invoke(app, args)
        one_line_error(result, f"no trained student in {run}: train first (`mindmirror train")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def test_an_output_that_is_a_file_or_not_writable(tmp_path: Path, fitted_causal: Fitted) -> None:
    student = saved(fitted_causal, tmp_path / "student")
    taken = tmp_path / "taken.gguf"
    taken.write_text("keep me\n")
    for output in (taken, taken / "sub"):
        with pytest.raises(UserError, match=rf"--output {output}: {taken} is a file"):
            export(student, "hf", output)
    assert taken.read_text() == "keep me\n"
    # /proc takes no new folders, even from root (whom permission bits do not stop).
    with pytest.raises(UserError, match=r"--output /proc/mindmirror/x: .*choose another --output"):
        export(student, "hf", Path("/proc/mindmirror/x"))


def test_a_failed_export_leaves_nothing_behind(tmp_path: Path, fitted_causal: Fitted) -> None:
    """The judge of a two-stage run is damaged: the final student was written already."""
    _, run = write_run(tmp_path, fitted_causal)
    judge = saved(fitted_causal, run.stage("evaluation") / "best")
    (judge / "model.safetensors").write_bytes(b"cut short")
    stages = {"evaluation": {"best": "student/evaluation/best"}}
    summary = {"final": "student/stage2/best", "stages": stages}
    (run.student / "train.json").write_text(json.dumps(summary))
    with pytest.raises(UserError, match=r"model\.safetensors is damaged"):
        export(run.root, "hf", tmp_path / "new" / "exported")
    assert not (tmp_path / "new").exists()
