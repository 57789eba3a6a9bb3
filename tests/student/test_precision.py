"""The training precision: bf16 only where the hardware runs it natively, and the record of it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mindmirror.config import TrainConfig, recipe_from_dict
from mindmirror.errors import UserError
from mindmirror.records import write_records
from mindmirror.rundir import RunDir
from mindmirror.student import precision
from mindmirror.student.precision import (
    CPUINFO,
    choose,
    cpu_flags,
    cpu_hardware,
    cuda_hardware,
    probe,
    resolve_precision,
    torch_cpu_flags,
)
from mindmirror.student.train import train
from mindmirror.student.train_args import use_bf16

# The flags lines of two real machines (trimmed): an AVX2-only AMD EPYC, where bf16 is
# emulated, and an Intel Sapphire Rapids with AVX512-BF16 and AMX.
EPYC = "processor\t: 0\nvendor_id\t: AuthenticAMD\nflags\t\t: fpu sse sse2 avx avx2 fma bmi2\n"
SAPPHIRE = (
    "processor\t: 0\nvendor_id\t: GenuineIntel\n"
    "flags\t\t: fpu avx avx2 avx512f avx512_bf16 amx_bf16 amx_tile amx_int8\n"
)
SLOW_CPU = cpu_hardware(cpu_flags(EPYC))
FAST_CPU = cpu_hardware(cpu_flags(SAPPHIRE))


def test_cpu_flags_decide_native_bf16() -> None:
    assert not SLOW_CPU.native_bf16 and "without" in SLOW_CPU.detail
    assert FAST_CPU.native_bf16 and "amx_bf16" in FAST_CPU.detail
    assert cpu_flags("model name\t: Apple M2\n") == frozenset()  # no flags line: no bf16
    assert not cpu_hardware(frozenset({"avx512f", "avx512_vnni"})).native_bf16
    assert cpu_hardware(frozenset({"avx512_bf16"})).native_bf16


def test_gpus_from_ampere_on_have_native_bf16() -> None:
    assert cuda_hardware("NVIDIA A100", (8, 0)).native_bf16
    assert cuda_hardware("NVIDIA H200", (9, 0)).native_bf16
    assert not cuda_hardware("Tesla T4", (7, 5)).native_bf16


@pytest.mark.parametrize(
    ("setting", "hardware", "used", "warns"),
    [
        ("auto", SLOW_CPU, "fp32", False),
        ("auto", FAST_CPU, "bf16", False),
        ("bf16", SLOW_CPU, "fp32", True),
        ("bf16", FAST_CPU, "bf16", False),
        ("bf16_force", SLOW_CPU, "bf16", False),
        ("fp32", FAST_CPU, "fp32", False),
        ("auto", cuda_hardware("NVIDIA A100", (8, 0)), "bf16", False),
        ("bf16", cuda_hardware("Tesla T4", (7, 5)), "fp32", True),
    ],
)
def test_choice_of_precision(setting: str, hardware, used: str, warns: bool) -> None:
    chosen, warning = choose(setting, hardware)  # type: ignore[arg-type]
    assert chosen == used
    assert (warning is not None) == warns
    if warning:
        assert "bf16_force" in warning and hardware.detail in warning


def test_a_bf16_fallback_warns_once_on_stderr(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(precision, "_warned", set())
    assert resolve_precision("bf16", SLOW_CPU) == "fp32"
    assert resolve_precision("bf16", SLOW_CPU) == "fp32"
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and "training in fp32" in lines[0]


def test_the_probe_reads_this_machine() -> None:
    hardware = probe()
    if hardware.device == "cpu" and CPUINFO.is_file():
        flags = cpu_flags(CPUINFO.read_text())
        assert hardware.native_bf16 == bool(flags & {"avx512_bf16", "amx_bf16"})
        assert resolve_precision("auto") == ("bf16" if hardware.native_bf16 else "fp32")


def test_torch_probe_fallback_without_proc_cpuinfo() -> None:
    class Cpu:
        @staticmethod
        def _is_avx512_bf16_supported() -> bool:
            return True

    class Torch:
        cpu = Cpu()

    assert torch_cpu_flags(Torch()) == {"avx512_bf16"}
    assert torch_cpu_flags(object()) == frozenset()  # private probes gone: fp32


def test_train_uses_the_decision(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(precision, "probe", lambda: SLOW_CPU)
    monkeypatch.setattr(precision, "_warned", set())
    assert not use_bf16(TrainConfig(precision="auto"))
    assert not use_bf16(TrainConfig(precision="bf16"))
    assert use_bf16(TrainConfig(precision="bf16_force"))
    monkeypatch.setattr(precision, "probe", lambda: FAST_CPU)
    assert use_bf16(TrainConfig(precision="auto"))
    assert not use_bf16(TrainConfig(precision="fp32"))


def test_the_precision_used_is_recorded(
    tmp_path: Path, records, tiny_llama, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(precision, "probe", lambda: SLOW_CPU)
    monkeypatch.setattr(precision, "_warned", set())
    run = RunDir(tmp_path / "run")
    write_records(run.records, records)
    settings = {
        "student": str(tiny_llama),
        "method": "step_by_step",
        "precision": "bf16",
        "max_steps": 1,
        "batch_size": 4,
        "eval_max_new_tokens": 4,
    }
    resolved = recipe_from_dict({"run_dir": str(run.root), "train": settings})
    summary = train(resolved, run, quiet=True)
    assert summary["precision"] == "fp32"  # asked for bf16, fell back on this "CPU"
    saved = json.loads((run.student / "train.json").read_text())
    assert saved["precision"] == "fp32"
    # Where it trained, so that cells trained on a GPU and on a CPU are told apart.
    assert (saved["device"], saved["device_name"]) == ("cpu", SLOW_CPU.detail)
    result = json.loads((run.stage("reasoning") / "result.json").read_text())
    assert (result["precision"], result["bf16"]) == ("fp32", False)
    assert (result["device"], result["device_name"]) == ("cpu", SLOW_CPU.detail)


def test_a_loss_that_is_not_finite_stops_training_with_a_clear_error(
    tmp_path: Path, records, tiny_llama, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mindmirror.student import trainer

    def nan_sums(*args, **kwargs):  # the loss of a diverged step
        sums, tokens = real_sums(*args, **kwargs)
        return sums * float("nan"), tokens

    real_sums = trainer.row_token_sums
    monkeypatch.setattr(trainer, "row_token_sums", nan_sums)
    run = RunDir(tmp_path / "run")
    write_records(run.records, records)
    settings = {"student": str(tiny_llama), "method": "step_by_step", "max_steps": 2}
    resolved = recipe_from_dict({"run_dir": str(run.root), "train": settings})
    with pytest.raises(UserError, match=r"training loss is not finite at step 1 \(.* on cpu\)"):
        train(resolved, run, quiet=True)


def test_training_on_a_gpu_turns_off_the_cudnn_attention_kernel() -> None:
    import torch

    was = torch.backends.cuda.cudnn_sdp_enabled()
    try:
        torch.backends.cuda.enable_cudnn_sdp(True)
        assert not precision.avoid_cudnn_attention(SLOW_CPU)
        assert torch.backends.cuda.cudnn_sdp_enabled()  # nothing to avoid on a CPU
        h200 = precision.cuda_hardware("NVIDIA H200", (9, 0))
        assert precision.avoid_cudnn_attention(h200)
        assert not torch.backends.cuda.cudnn_sdp_enabled()
    finally:
        torch.backends.cuda.enable_cudnn_sdp(was)
