"""Which precision each backend runs, on which device, and what this CPU has for it: one table
(docs/quantization.md, "Which backend runs which precision"). fp32 stays the default everywhere, because fp32 is what
reproduces the reference exactly; a pair the table lacks is refused before any model is loaded."""
from __future__ import annotations

import functools
from pathlib import Path

from .choices import Backend, Precision
from .errors import UsageError

FP32, BF16, FP16, INT8 = (p.value for p in Precision)
NPU = "npu"  # the ascend backend's device kind, whatever NPU ids --device names

SUPPORTED: dict[tuple[str, str], tuple[str, ...]] = {
    (Backend.ONNXRUNTIME.value, "cpu"): (FP32, INT8),
    (Backend.ONNXRUNTIME.value, "cuda"): (FP32, FP16, INT8),  # fp16 and int8 through TensorRT
    (Backend.OPENVINO.value, "cpu"): (FP32, BF16, FP16, INT8),
    (Backend.TORCH.value, "cpu"): (FP32, BF16),  # bf16: CPU autocast
    (Backend.TORCH.value, "cuda"): (FP32, FP16),
    # fixed when converted: atc's precision mode (bf16 on Atlas A2/A3), AMCT then atc for int8
    (Backend.ASCEND.value, NPU): (FP32, BF16, FP16, INT8),
}
# /proc/cpuinfo flags reduced precision uses, with the names doctor prints
CPU_ISA = {"amx_int8": "AMX-INT8", "amx_bf16": "AMX-BF16", "amx_fp16": "AMX-FP16",
           "avx512_vnni": "AVX-512 VNNI", "avx_vnni": "AVX-VNNI", "avx512_bf16": "AVX-512 BF16",
           "avx512_fp16": "AVX-512 FP16", "avx2": "AVX2"}
# on the CPU, a precision the runtimes only emulate (slower than fp32) without one of these
NEEDS_ISA = {BF16: ("amx_bf16", "avx512_bf16"), FP16: ("amx_fp16", "avx512_fp16")}
HALF_ON_CPU = "--half on the CPU is not supported: fp16 on the CPU is far slower than fp32"


@functools.cache
def cpu_flags() -> frozenset[str]:
    """This CPU's feature flags (Linux's /proc/cpuinfo; none known elsewhere)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith(("flags", "Features")):
            return frozenset(line.partition(":")[2].split())
    return frozenset()


def cpu_isa() -> list[str]:
    """The instructions of this CPU that reduced precision uses, by name."""
    flags = cpu_flags()
    return [name for flag, name in CPU_ISA.items() if flag in flags]


def device_kind(backend: str, device: str) -> str:
    return NPU if backend == Backend.ASCEND.value else device


def offered(backend: str, device: str) -> tuple[str, ...]:
    """The precisions `backend` runs on `device` in the table, this CPU's instructions aside."""
    return SUPPORTED.get((backend, device_kind(backend, device)), ())


def runs_here(backend: str, device: str, precision: str) -> bool:
    return precision in offered(backend, device) and not missing_isa(device, precision)


def missing_isa(device: str, precision: str) -> bool:
    needed = NEEDS_ISA.get(precision)
    return device == "cpu" and needed is not None and not cpu_flags() & set(needed)


def check(backend: str, device: str, precision: str, runners: tuple[str, ...] | None = None) -> None:
    """Refuse, in one line naming what would work, a precision this backend or CPU lacks;
    `runners`: the backends that run the model file, the only ones the hint may name."""
    if precision not in Precision.values():
        raise UsageError(f"unknown precision {precision!r}", hint="use " + ", ".join(Precision.values()))
    kind = device_kind(backend, device)
    if not offered(backend, device):
        devices = [d for (b, d), _ in SUPPORTED.items() if b == backend]
        raise UsageError(f"{backend} does not run on {device}", hint=f"use --device {' or '.join(devices)}")
    if precision not in offered(backend, device):
        if (backend, kind, precision) == (Backend.TORCH.value, "cpu", FP16):
            raise UsageError(HALF_ON_CPU, hint="drop --half, or use --device cuda")
        others = [b for (b, d), ps in SUPPORTED.items() if d == kind and precision in ps
                  and (runners is None or b in runners)]
        raise UsageError(f"{backend} on {kind} runs {', '.join(offered(backend, device))}, not {precision}",
                         hint=f"use --backend {' or '.join(others)}" if others else "use --precision fp32")
    if missing_isa(device, precision):
        needed = " or ".join(CPU_ISA[flag] for flag in NEEDS_ISA[precision])
        raise UsageError(f"--precision {precision} needs a CPU with {needed}; this one has "
                         f"{', '.join(cpu_isa()) or 'none of them'} (yedge doctor lists them)",
                         hint="use --precision fp32, or int8 (yedge quantize)")
