"""Which model file and which session a step gets, decided in one place: an explicit path wins
(its kind read from its suffix, as Ultralytics' AutoBackend does), else what export or convert
recorded; the layout, input dtype and config default to the export record's."""
from __future__ import annotations

import contextlib
import dataclasses
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from .backends import backends_for, open_session, resolve_backend
from .choices import AisBenchMode, Backend, Layout, Nms, Precision
from .errors import InputError, UsageError
from .host import HostSpec, missing_heads
from .model.config import DEFAULT_CONFIG, INPUT_SIZE
from .provenance import Origin, check_same_checkpoint, checkpoint_origin, model_origin
from .records import ConvertRecord, ExportRecord, OmRecord, PrepRecord, QuantizeRecord
from .workspace import Workspace


@dataclass(frozen=True)
class ModelChoice:
    """A model file and what the workspace knows of it."""

    path: Path
    export: ExportRecord  # defaults when the workspace has no export record
    om: OmRecord | None = None  # for an .om converted in this workspace
    backend: str | None = None  # None: the file's default runner
    precision: str = Precision.FP32.value

    def absolute(self) -> ModelChoice:
        """The same, its path absolute: for a session opened in another process or host (Ray)."""
        return dataclasses.replace(self, path=self.path.absolute())


def choose_backend(backend: str, model: Path | None) -> str:
    """--backend auto with --model: the file's kind decides; an explicit backend must run it."""
    if model is None:
        return resolve_backend(backend)
    runners = backends_for(model)
    if backend == Backend.AUTO.value:
        return runners[0]
    if backend not in runners:
        raise UsageError(f"--backend {backend} does not run {Path(model).name} (a model for "
                         f"{' or '.join(runners)})", path=model, hint=f"use --backend {runners[0]}, or auto")
    return backend


def host_model(ws: Workspace, backend: str, model: Path | None, precision: str = Precision.FP32.value) -> ModelChoice:
    """onnxruntime, openvino or torch: --model, else the ONNX (or the checkpoint) export recorded,
    or for int8 the QDQ model quantize recorded."""
    export = ws.load(ExportRecord)
    if model is not None:
        return ModelChoice(Path(model), export or ExportRecord(), backend=backend,
                           precision=file_precision(Path(model), precision))
    export = ws.need(ExportRecord, "exported model", "yedge export --weights X.pth")
    if precision == Precision.INT8.value:
        quantized = ws.need(QuantizeRecord, "INT8 model", "yedge quantize")
        return ModelChoice(ws.resolve(quantized.onnx), export, backend=backend, precision=precision)
    stored = export.weights if backend == Backend.TORCH.value else export.onnx
    return ModelChoice(ws.resolve(stored), export, backend=backend, precision=precision)


def file_precision(model: Path, precision: str, fix: str = "run `yedge quantize` and drop --model, or pass the "
                                                           "INT8 .onnx it wrote") -> str:
    """The precision an explicit ONNX file runs in: a QDQ file is int8 whatever was asked (fp32,
    the default, included), and a float one is never int8 — so no result is labelled with a
    precision it was not computed in."""
    from .ascend.amct import is_quantized

    if model.suffix.lower() != ".onnx" or not model.is_file():
        return precision  # the backend's own refusal says what is wrong
    if is_quantized(model):
        if precision not in (Precision.FP32.value, Precision.INT8.value):
            raise UsageError(f"{model.name} is an INT8 (QDQ) model; it runs in int8, not {precision}", path=model,
                             hint="drop --precision, or pass the float .onnx")
        return Precision.INT8.value
    if precision == Precision.INT8.value:
        raise UsageError(f"--precision int8 runs a quantized model, and {model.name} has no "
                         "QuantizeLinear/DequantizeLinear pairs", path=model,
                         hint=fix)
    return precision


def om_model(ws: Workspace, model: Path | None, batch_size: int | None,
             precision: str | None = None) -> ModelChoice:
    """ascend: --model, else the converted .om of that batch (or a dynamic one that allows it)
    and, when asked, that precision; else the first one converted."""
    export = ws.load(ExportRecord) or ExportRecord()
    convert = ws.load(ConvertRecord)
    oms = convert.oms if convert else []
    if model is not None:
        known = next((m for m in oms if ws.resolve(m.om).resolve() == Path(model).resolve()), None)
        return ModelChoice(Path(model), export, known, backend=Backend.ASCEND.value,
                           precision=known.precision if known else precision or Precision.FP16.value)
    if not oms:
        ws.need(ConvertRecord, "converted .om model", "yedge convert")
    for om in oms:
        fits = batch_size in (None, om.batch_size) or batch_size in om.dynamic_batch
        if fits and precision in (None, om.precision):
            return ModelChoice(ws.resolve(om.om), export, om, backend=Backend.ASCEND.value, precision=om.precision)
    wanted = " ".join(part for part in (f"of batch {batch_size}" if batch_size else "",
                                        f"in {precision}" if precision else "") if part)
    mode = {Precision.INT8.value: " --precision int8", Precision.FP32.value: " --precision-mode force_fp32",
            Precision.BF16.value: " --precision-mode allow_fp32_to_bf16"}.get(precision or "", "")
    fix = "yedge convert" + (f" --batch-sizes {batch_size}" if batch_size else "") + mode
    raise InputError(f"no converted .om {wanted}", path=ws.models_dir, hint=f"run `{fix}`")


def check_batch_size(batch_size: int | None) -> None:
    """A batch whose float32 inputs alone exceed this machine's memory is refused before anything
    is allocated (numpy would fail with a bare MemoryError)."""
    if batch_size is None:
        return
    if batch_size < 1:
        raise UsageError(f"--batch-size must be at least 1, got {batch_size}", hint="e.g. --batch-size 8")
    needed = batch_size * 3 * INPUT_SIZE * INPUT_SIZE * 4
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    if needed > memory:
        raise UsageError(f"--batch-size {batch_size} needs {needed / 2**30:,.0f} GiB for one batch's inputs; "
                         f"this machine has {memory / 2**30:,.0f} GiB", hint="pass a smaller --batch-size")


def model_for(ws: Workspace, backend: str, model: Path | None, batch_size: int | None,
              precision: str | None = None, device: str = "cpu") -> ModelChoice:
    """The model a step runs: which file, in which backend and precision (None: fp32, or on
    ascend the .om's own), that pair refused first where this backend or CPU lacks it."""
    from .precision import check

    check_batch_size(batch_size)
    check(backend, device, precision or Precision.FP32.value)
    if backend == Backend.ASCEND.value:
        return om_model(ws, model, batch_size, precision)
    return host_model(ws, backend, model, precision or Precision.FP32.value)


def parse_devices(device: str) -> list[int]:
    """NPU ids from --device ('cpu', the default, means NPU 0 for the ascend backend)."""
    value = "0" if device == "cpu" else device
    try:
        devices = [int(part) for part in value.split(",")]
    except ValueError:
        raise UsageError(f"--device {device!r} is not an NPU id list", hint="e.g. --device 0 or --device 0,1") from None
    twice = sorted({d for d in devices if devices.count(d) > 1})
    if twice:
        raise UsageError(f"--device {device}: NPU {twice[0]} is given twice",
                         hint="name each NPU once, e.g. --device 0,1")
    if not devices or min(devices) < 0:
        raise UsageError(f"--device {device!r} is not an NPU id list", hint="e.g. --device 0 or --device 0,1")
    return devices


@contextlib.contextmanager
def in_process(ws: Workspace, backend: str) -> Iterator[None]:
    """What running a backend's session in this process needs: for ascend, ais_bench's API (said
    clearly when it cannot load) with aclruntime's own stdout lines sent to the log. Every Ascend
    session of this process opens inside it; one in a process of its own opens through
    stream.stages.SessionRecipe.open_in_worker (the same log)."""
    if backend != Backend.ASCEND.value:
        yield
        return
    from .ascend import aisbench

    aisbench.resolve_mode(AisBenchMode.API.value)
    with aisbench.quiet_stdout(ws.log("ais_bench_api")):
        yield


def session_for(choice: ModelChoice, *, device: str = "cpu", batch_size: int | None = None,
                compiled: bool = False, keyframe_interval: int | None = None):
    """The session of a chosen model, in its backend and precision, with the export record's
    layout, dtype and config."""
    export = choice.export
    return open_session(choice.path, backend=choice.backend, device=device, precision=choice.precision,
                        batch_size=batch_size, compiled=compiled, layout=export.layout,
                        input_dtype=export.input_dtype, config=export.config or "auto",
                        keyframe_interval=keyframe_interval)


def annotations_for(ws: Workspace, annotations: Path | None) -> Path:
    """--annotations, else the file prep used."""
    if annotations is not None:
        return Path(annotations)
    return Path(ws.need(PrepRecord, "prepared inputs", "yedge prep --images DIR --annotations FILE").annotations)


def host_spec(ws: Workspace, layout: str, *, weights: Path | None = None, config: str | None = None,
              nms: str = "fast", score_threshold: float = 0.0, threads: int = 1,
              outputs_of: dict[str, Origin | None] | None = None, fix: str | None = None,
              iou: float | None = None) -> HostSpec:
    """The host part for outputs of `layout`: the fpn layout needs the checkpoint of the heads
    (--weights, else export's). That checkpoint must be the one that computed `outputs_of` (each
    a model or a run folder, by what made it: model_outputs, a run's side-car): checked here, for
    every command, with `fix` as the hint (default: pass --weights with the one it came from).
    The checkpoint export recorded was already matched to its config; only another one is read
    to find its config."""
    if iou is not None and layout == Layout.DETECT.value:
        raise UsageError(f"--iou {iou}: this model ends with Detect (the detect layout), its NMS IoU is "
                         "built into the graph", hint="drop --iou, or export with --layout fpn or --layout head")
    spec = dataclasses.replace(_host_spec(ws, layout, weights, config, nms, score_threshold, threads), iou=iou)
    if spec.weights is not None and outputs_of:
        heads = checkpoint_origin(spec.weights)
        for what, origin in outputs_of.items():
            check_same_checkpoint(what, origin, heads, fix=fix if fix is not None else (
                f"pass --weights {origin.weights} (the checkpoint it came from)" if origin else ""))
    return spec


def model_outputs(ws: Workspace, model: Path | None) -> dict[str, Origin | None]:
    """What host_spec checks for a model file's outputs: the checkpoint the model came from."""
    if model is None or not Path(model).is_file():
        return {}
    return {str(model): model_origin(ws, model)}


def _host_spec(ws: Workspace, layout: str, weights: Path | None, config: str | None, nms: str,
               score_threshold: float, threads: int) -> HostSpec:
    if layout == Layout.DETECT.value and nms != Nms.FAST.value:
        raise UsageError(f"--nms {nms} runs on the host, but this model ends with Detect (the detect layout)",
                         hint="use --nms fast, or export with --layout fpn or --layout head")
    export = ws.load(ExportRecord)
    recorded = export.config if export else None
    if layout != Layout.FPN.value:
        return HostSpec(layout, config or recorded or DEFAULT_CONFIG, None, nms, score_threshold, threads)
    if weights is None:
        if export is None:
            raise missing_heads()
        weights = Path(export.weights)
        if recorded and config in (None, recorded):
            return HostSpec(layout, recorded, str(weights), nms, score_threshold, threads)
    from .model.checkpoint import match_config, normalize_keys, read_state_dict

    matched = match_config(normalize_keys(read_state_dict(weights)), config or "auto", weights).name
    return HostSpec(layout, matched, str(weights), nms, score_threshold, threads)
