"""Inference backends behind one small interface: `open_session(model)` → a Session whose
`run(batch)` returns the model's outputs as float32 numpy arrays, in output order."""
from __future__ import annotations

from pathlib import Path

from ..choices import Backend
from ..errors import InputError, UsageError
from ..model.config import KEYFRAME_INTERVAL
from .base import ModelInfo, RunTimes, Session, timed_run
from .temporal import TemporalSession

__all__ = ["ModelInfo", "RunTimes", "Session", "timed_run"]

BACKENDS = Backend.values()


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
                 input_dtype: str = "float32", config: str = "auto", compiled: bool = False,
                 keyframe_interval: int | None = None) -> Session:
    """The one factory: the session that runs `model` — .onnx in onnxruntime (or `backend`
    openvino), .pth/.pt in PyTorch (`layout`, `input_dtype` and `config` say what to build from
    the checkpoint), .om through ais_bench's InferSession on the NPU whose id `device` is — in
    `precision`, refused first where precision.py's table says no. A video model (docs/video.md)
    opens as a TemporalSession of its two passes, a keyframe every `keyframe_interval` frames
    (KEYFRAME_INTERVAL, the reference's 5, when None)."""
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
    interval = KEYFRAME_INTERVAL if keyframe_interval is None else keyframe_interval
    if backend == Backend.ASCEND.value:
        from .ascend import AscendApiSession

        npu = 0 if device == "cpu" else int(device)
        return _passes(Path(model), lambda path: AscendApiSession(path, npu), interval)
    if device not in ("cpu", "cuda"):
        raise UsageError(f"unknown device {device!r}", hint="use --device cpu or --device cuda")
    # refused before loading: e.g. fp16 convolutions on the CPU run minutes per image, not faster
    precisions.check(backend, device, precision, runners=backends_for(model))
    if backend == Backend.ONNXRUNTIME.value:
        from .onnxruntime import OrtSession

        return _passes(Path(model), lambda path: OrtSession(path, device, precision), interval)
    if backend == Backend.OPENVINO.value:
        from .openvino import OpenVinoSession

        return _passes(Path(model), lambda path: OpenVinoSession(path, device, precision), interval)
    from .torch import TorchSession

    torch_session = TorchSession(Path(model), config=config, layout=layout, input_dtype=input_dtype,
                                 device=device, precision=precision, batch_size=batch_size, compiled=compiled)
    return TemporalSession(torch_session, torch_session, interval) if torch_session.info.gives_key_state \
        else torch_session


def _passes(model: Path, open_graph, interval: int):
    """The model file's session; for a video model's keyframe graph, the TemporalSession of it
    and its non-keyframe graph beside it (refused when given that one alone)."""
    from ..model.contract import non_keyframe_graph

    session = open_graph(model)
    if session.info.takes_key_state:
        raise UsageError(f"{model.name} is a video model's non-keyframe graph", path=model,
                         hint=f"pass its keyframe graph, {model.name.replace('.nonkey', '')}")
    if not session.info.gives_key_state:
        return session
    companion = non_keyframe_graph(model)
    if not companion.is_file():
        raise InputError("a video model's keyframe graph, without its non-keyframe graph beside it",
                         path=companion, hint="export the video checkpoint again (`yedge export`)")
    return TemporalSession(session, open_graph(companion), interval)
