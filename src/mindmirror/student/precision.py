"""Training precision: bf16 only where the hardware runs it natively, fp32 elsewhere.

bf16 on hardware without bf16 instructions is emulated and can be hundreds of times slower than
fp32 (an AVX2-only AMD EPYC: a 2048x2048 matmul at 80.9 GFLOP/s in fp32, 0.3 GFLOP/s in bf16),
so ``train.precision`` means:

- ``auto``: bf16 where it is native, else fp32, silently;
- ``bf16``: bf16 where it is native, else fp32 with one warning;
- ``bf16_force``: bf16 even where it is emulated (the recipe insists);
- ``fp32``: fp32.

Native bf16 is a CUDA GPU of compute capability 8.0 or later (Ampere on), or a CPU with
AVX512-BF16 or AMX-BF16 (``avx512_bf16`` / ``amx_bf16`` among the flags of /proc/cpuinfo on
Linux, which is reliable; torch's own CPU probe elsewhere). Other CPUs (Arm, Apple) count as
without. ``torch.backends.cpu.get_cpu_capability()`` cannot tell: it says ``AVX512`` with or
without bf16. Training runs on the GPU whenever there is one, so the GPU decides when present.
``resolve_precision`` names the precision a setting trains in on this machine (benchmarks call
it to label their figures).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from rich.console import Console

PrecisionSetting = Literal["auto", "fp32", "bf16", "bf16_force"]
Precision = Literal["bf16", "fp32"]
#: CPU flags (as Linux names them) of instructions that run bf16 matmuls natively.
NATIVE_BF16_CPU_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})
CPUINFO = Path("/proc/cpuinfo")

_warned: set[str] = set()


@dataclass(frozen=True)
class Hardware:
    """Where training runs and whether it does bf16 natively there (``detail`` names it)."""

    device: Literal["cuda", "cpu"]
    native_bf16: bool
    detail: str


def cpuinfo_field(cpuinfo: str, key: str) -> str | None:
    """The value of the first ``key`` line of a /proc/cpuinfo text (None if there is none)."""
    for line in cpuinfo.splitlines():
        name, sep, value = line.partition(":")
        if sep and name.strip() == key:
            return value.strip()
    return None


def cpu_flags(cpuinfo: str) -> frozenset[str]:
    """The feature flags of the first ``flags`` line of a /proc/cpuinfo text (empty if none)."""
    return frozenset((cpuinfo_field(cpuinfo, "flags") or "").split())


def cpu_hardware(flags: Iterable[str]) -> Hardware:
    """The CPU as a training device, from its flags."""
    native = sorted(NATIVE_BF16_CPU_FLAGS.intersection(flags))
    detail = f"CPU with {', '.join(native)}" if native else "CPU without avx512_bf16 or amx_bf16"
    return Hardware("cpu", bool(native), detail)


def cuda_hardware(name: str, capability: tuple[int, int]) -> Hardware:
    """A CUDA GPU as a training device: native bf16 from compute capability 8.0 (Ampere)."""
    major, minor = capability
    return Hardware("cuda", major >= 8, f"{name} (compute capability {major}.{minor})")


@functools.cache
def probe() -> Hardware:
    """This machine's training device (the GPU when there is one), asked once per process."""
    import torch

    if torch.cuda.is_available():
        return cuda_hardware(torch.cuda.get_device_name(), torch.cuda.get_device_capability())
    try:
        return cpu_hardware(cpu_flags(CPUINFO.read_text(encoding="utf-8", errors="replace")))
    except OSError:
        return cpu_hardware(torch_cpu_flags(torch))


def torch_cpu_flags(torch: Any) -> frozenset[str]:
    """The native-bf16 flags as torch's own CPU probe sees them, for systems without
    /proc/cpuinfo. Those probes are private torch functions: when they are gone, no flags
    (fp32, which is never emulated, so never the slow choice)."""
    probes = {"avx512_bf16": "_is_avx512_bf16_supported", "amx_bf16": "_is_amx_tile_supported"}
    cpu = getattr(torch, "cpu", None)
    return frozenset(
        flag
        for flag, name in probes.items()
        if callable(getattr(cpu, name, None)) and getattr(cpu, name)()
    )


def choose(setting: PrecisionSetting, hardware: Hardware) -> tuple[Precision, str | None]:
    """The precision ``setting`` trains in on ``hardware``, and a warning when it differs from
    what the recipe asked for (see the module docstring)."""
    if setting == "fp32":
        return "fp32", None
    if setting == "bf16_force" or hardware.native_bf16:
        return "bf16", None
    if setting == "bf16":
        return "fp32", (
            f"train.precision bf16 on a {hardware.detail}: bf16 would be emulated (many times "
            "slower), training in fp32; set train.precision: bf16_force to insist"
        )
    return "fp32", None


def resolve_precision(
    setting: PrecisionSetting = "auto", hardware: Hardware | None = None
) -> Precision:
    """The precision ``setting`` trains in on this machine (or ``hardware``); warns once per
    process on stderr when a bf16 request falls back to fp32."""
    precision, warning = choose(setting, hardware or probe())
    if warning is not None and warning not in _warned:
        _warned.add(warning)
        Console(stderr=True).print(
            f"[yellow]warning[/]: {warning}", highlight=False, soft_wrap=True
        )
    return precision


def avoid_cudnn_attention(hardware: Hardware | None = None) -> bool:
    """Turn off the cuDNN kernel of ``scaled_dot_product_attention`` when training on a GPU;
    whether it did.

    Its backward pass returns NaN gradients on Hopper GPUs (H100, H200) when a mask is passed
    and the sequence length is 64 more than a multiple of 128 (pytorch/pytorch#196678, from
    torch 2.11; huggingface/trl#7181). Training always passes a padding mask and its lengths
    vary per batch, so some batches can hit it: the likely cause of the 8 of 11 SVAMP protocol
    trainings that collapsed on an H200 with torch 2.11 (docs/benchmarks.md; not run again on
    a GPU with it off yet). The memory-efficient and flash kernels take over.
    """
    import torch

    if (hardware or probe()).device != "cuda":
        return False
    torch.backends.cuda.enable_cudnn_sdp(False)
    return True
