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
        raise UsageError(f"unknown backend {name!r}", hint="use " + ", ".join(BACKENDS))
    if name != "auto":
        return name
    import shutil

    from ..ascend.aisbench import api_available

    return "ascend" if shutil.which("npu-smi") and api_available() else "onnxruntime"


CHECKPOINT_SUFFIXES = (".pth", ".pt")
# the backends that run a model file, by its suffix, the default first
RUNNERS = {".onnx": (Backend.ONNXRUNTIME.value, Backend.OPENVINO.value),
           **{suffix: (Backend.TORCH.value,) for suffix in CHECKPOINT_SUFFIXES},
           ".om": (Backend.ASCEND.value,)}


def backends_for(path: Path) -> tuple[str, ...]:
    """The backends that run a model file, from its suffix (as Ultralytics' AutoBackend does)."""
    runners = RUNNERS.get(Path(path).suffix.lower())
    if runners is None:
        raise UsageError(f"cannot tell which backend runs {Path(path).name}", path=path,
                         hint="pass an .onnx (onnxruntime, openvino), .pth (torch) or .om (ascend) file")
    return runners


def backend_of(path: Path) -> str:
    """The backend that runs a model file by default."""
    return backends_for(path)[0]


def open_session(model: Path, *, backend: str | None = None, device: str = "cpu", precision: str = "fp32",
                 batch_size: int | None = None, layout: str = "fpn",
                 input_dtype: str = "float32", config: str = "auto", compiled: bool = False) -> Session:
    """The one factory: the session that runs `model` — .onnx in onnxruntime (or `backend`
    openvino), .pth/.pt in PyTorch (`layout`, `input_dtype` and `config` say what to build from
    the checkpoint), .om through ais_bench's InferSession on the NPU whose id `device` is — in
    `precision`, refused first where precision.py's table says no."""
    from .. import precision as precisions

    backend = backend or backend_of(model)
    if backend not in backends_for(model):
        raise UsageError(f"--backend {backend} does not run {Path(model).name}", path=model,
                         hint=f"use --backend {' or '.join(backends_for(model))}")
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
    # refused before loading: e.g. fp16 convolutions on the CPU run minutes per image, not faster
    precisions.check(backend, device, precision)
    if backend == Backend.ONNXRUNTIME.value:
        from .onnxruntime import OrtSession

        return OrtSession(Path(model), device, precision)
    if backend == Backend.OPENVINO.value:
        from .openvino import OpenVinoSession

        return OpenVinoSession(Path(model), device, precision)
    from .torch import TorchSession

    return TorchSession(Path(model), config=config, layout=layout, input_dtype=input_dtype,
                        device=device, precision=precision, batch_size=batch_size, compiled=compiled)


def require_cuda() -> None:
    import torch

    if not torch.cuda.is_available():
        raise EnvironmentProblem("CUDA is not available on this machine",
                                 hint="use --device cpu, or install a CUDA build of torch on a GPU host")
