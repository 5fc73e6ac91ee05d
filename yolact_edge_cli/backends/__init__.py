"""Inference backends behind one small interface: `open_session(model)` → a Session whose
`run(batch)` returns the model's outputs as float32 numpy arrays, in output order."""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from ..choices import Backend
from ..errors import EnvironmentProblem, InputError, UsageError

BACKENDS = Backend.values()


@dataclass(frozen=True)
class ModelInfo:
    """What a loaded model takes and gives, independent of the backend."""

    batch_size: int | None  # None: dynamic batch
    input_dtype: str        # "float32" or "uint8"
    layout: str             # "fpn", "head" or "detect"
    output_names: tuple[str, ...]
    output_dtype: str = "float32"  # an .om built with --output_type FP16 gives float16
    sample_shape: tuple[int, ...] = (3, 550, 550)  # one sample's input (HWC for an AIPP .om)

    def check_inputs(self, input_dtype: str, source: Path) -> None:
        """Inputs prepared as `input_dtype` are what this model takes (same byte size or not)."""
        if self.input_dtype != input_dtype:
            raise InputError(f"the model takes {self.input_dtype} input but the inputs were prepared as "
                             f"{input_dtype}", path=source,
                             hint=f"rerun `yedge prep --dtype {self.input_dtype}` or export with "
                                  f"--input-dtype {input_dtype}")


class Session(Protocol):
    """A session whose device times its own work (the NPU: execute apart from the copies) also
    has `last_times`, the RunTimes of its latest `run`."""

    info: ModelInfo
    device: str

    def run(self, batch: np.ndarray) -> list[np.ndarray]: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class RunTimes:
    """One run's time as ais_bench splits it (docs/ascend.md §1.4): `compute_ms` is the model's
    execution alone on an NPU, the whole call on the host backends; the copies to and from the
    device apart, where the device reports them."""

    compute_ms: float
    h2d_ms: float | None = None
    d2h_ms: float | None = None


def timed_run(session: Session, batch: np.ndarray) -> tuple[list[np.ndarray], RunTimes]:
    """Run a batch and say how long it took, the device's own figures where it has them."""
    started = time.perf_counter()
    outputs = session.run(batch)
    wall_ms = (time.perf_counter() - started) * 1000
    own = getattr(session, "last_times", None)
    return outputs, own if own is not None else RunTimes(wall_ms)


def resolve_backend(name: str) -> str:
    """`auto` is ascend where an NPU (npu-smi) and ais_bench are present, else onnxruntime."""
    if name not in BACKENDS:
        raise UsageError(f"unknown backend {name!r}", hint="use auto, onnxruntime, torch or ascend")
    if name != "auto":
        return name
    import shutil

    from ..ascend.aisbench import api_available

    return "ascend" if shutil.which("npu-smi") and api_available() else "onnxruntime"


CHECKPOINT_SUFFIXES = (".pth", ".pt")


def backend_of(path: Path) -> str:
    """The backend that runs a model file, from its suffix (as Ultralytics' AutoBackend does)."""
    suffix = Path(path).suffix.lower()
    if suffix == ".onnx":
        return Backend.ONNXRUNTIME.value
    if suffix in CHECKPOINT_SUFFIXES:
        return Backend.TORCH.value
    if suffix == ".om":
        return Backend.ASCEND.value
    raise UsageError(f"cannot tell which backend runs {Path(path).name}", path=path,
                     hint="pass an .onnx (onnxruntime), .pth (torch) or .om (ascend) file")


def open_session(model: Path, *, device: str = "cpu", half: bool = False,
                 batch_size: int | None = None, layout: str = "fpn", input_dtype: str = "float32",
                 config: str = "auto", compiled: bool = False) -> Session:
    """The one factory: the session that runs `model`, chosen by its suffix — .onnx in
    onnxruntime, .pth/.pt in PyTorch (`layout`, `input_dtype` and `config` say what to build from
    the checkpoint), .om through ais_bench's InferSession on the NPU whose id `device` is."""
    backend = backend_of(model)
    if compiled and (backend != Backend.TORCH.value or device != "cuda"):
        # on the CPU inductor compiles for minutes and onnxruntime is the faster path anyway
        missing = " and ".join(([] if backend == Backend.TORCH.value else ["--backend torch"])
                               + ([] if device == "cuda" else ["--device cuda"]))
        raise UsageError("--compile applies to the torch backend on CUDA", hint=f"drop --compile, or add {missing}")
    if backend == Backend.ASCEND.value:
        from .ascend import AscendApiSession

        return AscendApiSession(Path(model), 0 if device == "cpu" else int(device))
    if device not in ("cpu", "cuda"):
        raise UsageError(f"unknown device {device!r}", hint="use --device cpu or --device cuda")
    if backend == Backend.ONNXRUNTIME.value:
        from .onnxruntime import OrtSession

        if half:
            raise UsageError("--half applies to the torch backend", hint="drop --half or use --backend torch")
        return OrtSession(Path(model), device)
    if half and device == "cpu":
        # refused before loading: fp16 convolutions on the CPU run minutes per image, not faster
        raise UsageError("--half on the CPU is not supported: fp16 on the CPU is far slower than fp32",
                         hint="drop --half, or use --device cuda")
    from .torch import TorchSession

    return TorchSession(Path(model), config=config, layout=layout, input_dtype=input_dtype,
                        device=device, half=half, batch_size=batch_size, compiled=compiled)


def require_cuda() -> None:
    import torch

    if not torch.cuda.is_available():
        raise EnvironmentProblem("CUDA is not available on this machine",
                                 hint="use --device cpu, or install a CUDA build of torch on a GPU host")
