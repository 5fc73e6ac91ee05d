"""`yedge quantize`: an INT8 model of the workspace's exported ONNX, with QuantizeLinear /
DequantizeLinear pairs (per-channel Conv weights, one scale and zero point per pair), then checked
against float32 on images it was not calibrated on (docs/quantization.md).

The quantizer is onnxruntime's `quantize_static`: it is already a dependency, writes the QDQ
form that onnxruntime, OpenVINO and TensorRT read and CANN's AMCT converts, and measured as fast
and more accurate than NNCF's on this model (docs/quantization.md, "Why onnxruntime's
quantizer"). By default the backbone and protonet are quantized and the FPN and prediction heads kept float, as
YolactEdge's own TensorRT recipe does (its INT8/FP16 split).
"""
from __future__ import annotations

import fnmatch
import functools
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ..choices import QuantMethod
from ..console import progress_bar, stage
from ..errors import AccuracyError, InputError, UsageError
from ..metrics.agreement import Agreement, AgreementSummary
from ..records import ExportRecord, PrepRecord, QuantizeRecord
from ..workspace import Workspace, atomic_path, sha256_file

# Per-channel QDQ needs opset 13 (DequantizeLinear's axis); what atc and AMCT take for it too.
QDQ_OPSET = 13
# Conv nodes kept float unless --all: the FPN and the prediction heads (YolactEdge's recipe).
DEFAULT_KEEP_FLOAT = ("*fpn_phase*", "*prediction_layers*")


@dataclass(frozen=True)
class QuantizeOptions:
    """How `yedge quantize` calibrates, what it keeps float and when it fails, with each default
    (the CLI reads them here)."""

    images: Path | None = None             # photos to calibrate on; None: the prepared images
    num_images: int = 100                  # at most this many calibrate (the rest check)
    method: str = QuantMethod.MINMAX.value
    keep_float: tuple[str, ...] | None = None  # Conv name patterns; None: DEFAULT_KEEP_FLOAT
    quantize_all: bool = False             # every Conv, the FPN and heads too
    min_cosine: float = 0.999              # fail below this cosine with fp32 on any output
    max_map_drop: float | None = None      # fail when the mAP drops more (annotated check images)
    output: Path | None = None             # None: the workspace's models/


@dataclass
class QuantizeResult:
    source: str
    onnx: str
    method: str
    calibration_images: int
    check_images: int
    quantized_convs: int
    float_convs: int
    # against float32 on the check images: outputs, detections, and mAP where they are annotated
    agreement: AgreementSummary = field(default_factory=AgreementSummary)
    seconds: float = 0.0

    def to_dict(self) -> dict:
        fields = {k: v for k, v in asdict(self).items() if k != "agreement"}
        return fields | {"outputs": self.agreement.outputs, "detections": self.agreement.detections()}


def run(ws: Workspace, options: QuantizeOptions = QuantizeOptions()) -> QuantizeResult:
    import onnx

    images, num_images, method, keep_float, quantize_all, min_cosine, max_map_drop, output = (
        options.images, options.num_images, options.method, options.keep_float, options.quantize_all,
        options.min_cosine, options.max_map_drop, options.output)

    if method not in QuantMethod.values():
        raise UsageError(f"unknown method {method!r}", hint="use --method minmax, entropy or percentile")
    if num_images < 1:
        raise UsageError(f"--num-images must be at least 1, got {num_images}", hint="e.g. --num-images 100")
    if quantize_all and keep_float:
        raise UsageError("--all quantizes every Conv, --keep-float keeps some float", hint="pass one of them")
    export = ws.need(ExportRecord, "exported model", "yedge export --weights X.pth")
    source = ws.resolve(export.onnx)
    if not source.is_file():
        raise InputError("the exported model is gone", path=source, hint="rerun `yedge export`")
    if export.non_keyframe_onnx:
        raise UsageError(f"INT8 of a video model ({export.config}: two graphs) is not made here yet",
                         path=source, hint="run it in fp32, or bf16 where the backend has it (`yedge doctor`)")
    started = time.perf_counter()
    sources, coco = _sources(ws, images, export.input_dtype)
    if max_map_drop is not None and coco is None:
        raise UsageError("--max-map-drop needs annotated check images", hint="calibrate on the prepared "
                         "inputs (`yedge prep --images DIR --annotations FILE`, no --images), or drop it")
    if len(sources) < 2:
        raise InputError("quantize needs at least 2 images: some to calibrate on, one to check against float32",
                         path=images or ws.bin_dir, hint="pass --images with a folder of photos")
    # only the images used are read: prepared COCO val2017 alone is 18 GB of inputs
    held_out = min(4, max(1, len(sources) // 5))
    calibration, check = [load for load, _ in sources[:-held_out][:num_images]], sources[-held_out:]
    model = onnx.load(str(source))
    if model.opset_import[0].version < QDQ_OPSET:
        from onnx import version_converter

        model = version_converter.convert_version(model, QDQ_OPSET)
    convs = [n.name for n in model.graph.node if n.op_type == "Conv"]
    patterns = [] if quantize_all else list(keep_float or DEFAULT_KEEP_FLOAT)
    kept = [name for name in convs if any(fnmatch.fnmatchcase(name, p) for p in patterns)]
    if len(kept) == len(convs):
        raise UsageError(f"--keep-float {' '.join(patterns)} keeps every Conv float: nothing to quantize",
                         hint="name fewer layers, or pass --all")
    output = Path(output) if output else ws.int8_onnx
    with atomic_path(output) as tmp:
        _quantize(model, tmp, calibration, method, kept)
        result = QuantizeResult(source=ws.relative(source), onnx=str(output), method=method,
                                calibration_images=len(calibration), check_images=len(check),
                                quantized_convs=len(convs) - len(kept), float_convs=len(kept))
        result.agreement = _check(ws, source, tmp, check, export.layout, coco)
        result.seconds = round(time.perf_counter() - started, 2)
        _gate(result.agreement, min_cosine, max_map_drop, output)
    ws.save(QuantizeRecord(
        source=ws.relative(source), source_sha256=export.onnx_sha256, weights_sha256=export.weights_sha256,
        method=method, calibration=str(images) if images else ws.relative(ws.bin_dir),
        calibration_images=len(calibration), keep_float=patterns, onnx=ws.relative(output),
        onnx_sha256=sha256_file(output), quantized_convs=result.quantized_convs, float_convs=result.float_convs,
        agreement=result.agreement.outputs, detections=result.agreement.detections()))
    return result


def _gate(agreement: AgreementSummary, min_cosine: float, max_map_drop: float | None, output: Path) -> None:
    fix = ("keep more layers float (--keep-float), try another --method, or calibrate on more images; "
           "nothing was written")
    if agreement.worst_cosine < min_cosine:
        worst = min(agreement.outputs, key=lambda n: agreement.outputs[n]["cosine"])
        raise AccuracyError(f"INT8 output {worst} has cosine {agreement.worst_cosine:.5f} against float32, "
                            f"below --min-cosine {min_cosine}", path=output, hint=fix)
    drop = agreement.map_drop
    if max_map_drop is not None and drop is not None and drop > max_map_drop:
        raise AccuracyError(f"INT8 box mAP {agreement.map_other:.2f} is {drop:.2f} points below float32's "
                            f"{agreement.map_float32:.2f}, over --max-map-drop {max_map_drop}", path=output, hint=fix)


def _sources(ws: Workspace, images: Path | None, input_dtype: str):
    """A loader per model input ([3, 550, 550]) with its COCO id where known: --images' photos,
    else the prepared .bin files; and the prepared images' annotations (None for --images)."""
    from ..data import binio
    from ..data.coco import load_coco
    from ..data.preprocess import sample_shape
    from ..data.sources import IMAGE_SUFFIXES

    if images is not None:
        if not Path(images).is_dir():
            raise InputError("image folder not found", path=images, hint="pass --images with a folder of photos")
        files = sorted(p for p in Path(images).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        return [(functools.partial(_photo, f, input_dtype), None) for f in files], None
    prep = ws.load(PrepRecord)
    if prep is None:
        raise InputError("no images to calibrate on: nothing is prepared in this workspace", path=ws.root,
                         hint="pass --images DIR (any photos), or run `yedge prep` first")
    if prep.layout != "nchw" or prep.dtype != input_dtype:
        raise InputError(f"the prepared inputs are {prep.dtype} {prep.layout}; the model takes {input_dtype} nchw",
                         path=ws.bin_dir, hint="pass --images DIR, or rerun `yedge prep`")
    files = binio.list_input_files(ws.bin_dir)
    ids = ws.read_ids()
    coco = load_coco(prep.annotations) if prep.annotations and Path(prep.annotations).is_file() else None
    return [(functools.partial(_prepared, f, np.dtype(prep.dtype), sample_shape()), ids[pos] if coco else None)
            for pos, f in enumerate(files)], coco


def _photo(path: Path, input_dtype: str) -> np.ndarray:
    """A photo of --images, prepared; one that cannot be read is named with quantize's fix."""
    from ..data.preprocess import prepare, read_image

    try:
        return prepare(read_image(path), input_dtype)
    except InputError as exc:
        raise InputError(exc.message, path=exc.path, hint="replace it, or move it out of the --images folder "
                                                          "(quantize reads every photo there)") from None


def _prepared(path: Path, dtype: np.dtype, shape: tuple[int, ...]) -> np.ndarray:
    return np.fromfile(path, dtype=dtype).reshape(shape)


def _quantize(model, path: Path, calibration: list[Callable[[], np.ndarray]], method: str,
              kept: list[str]) -> None:
    import logging

    import onnx
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    class Reader(CalibrationDataReader):
        def __init__(self, advance):
            self.images, self.advance = iter(calibration), advance

        def get_next(self):
            load = next(self.images, None)
            if load is None:
                return None
            self.advance(1)
            return {model.graph.input[0].name: np.ascontiguousarray(load()[None])}

    methods = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
               "percentile": CalibrationMethod.Percentile}
    float_model = path.with_name(path.name + ".float.onnx")
    onnx.save(model, str(float_model))
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # quantize_static's advice to pre-process the model, on every run
    try:
        with progress_bar(len(calibration), f"calibrating ({method})") as advance:
            quantize_static(str(float_model), str(path), Reader(advance), quant_format=QuantFormat.QDQ,
                            per_channel=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                            op_types_to_quantize=["Conv"], nodes_to_exclude=kept,
                            calibrate_method=methods[method], extra_options={"ActivationSymmetric": False})
    finally:
        root.setLevel(level)
        float_model.unlink(missing_ok=True)
        for leftover in path.parent.glob(f"{path.name}*augmented*"):
            leftover.unlink()
    quantized = onnx.load(str(path))  # the source's metadata (the checkpoint it came from) kept
    del quantized.metadata_props[:]
    quantized.metadata_props.extend(model.metadata_props)
    onnx.save(quantized, str(path))


def _check(ws: Workspace, source: Path, quantized: Path, images: list, layout: str, coco) -> AgreementSummary:
    """Both models on the held-out images, compared (metrics/agreement.py)."""
    import onnxruntime as ort

    from ..data.coco import image_info
    from ..host import HostPipeline
    from ..model.contract import output_names
    from ..resolve import host_spec

    sessions = [ort.InferenceSession(str(p), providers=["CPUExecutionProvider"]) for p in (source, quantized)]
    agreement = Agreement(HostPipeline(host_spec(ws, layout)), output_names(layout), coco)
    with stage(f"checking INT8 against float32 on {len(images)} held-out image(s)"):
        for load, image_id in images:
            image = load()
            feed = {sessions[0].get_inputs()[0].name: np.ascontiguousarray(image[None])}
            want, got = (s.run(None, feed) for s in sessions)
            info = image_info(coco, image_id) if image_id is not None else None
            width, height = (info.width, info.height) if info else image.shape[-1:-3:-1]
            agreement.add(want, got, width, height, image_id)
    return agreement.finish()
