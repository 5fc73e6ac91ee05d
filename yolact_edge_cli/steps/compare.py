"""`yedge compare A B`: two models or two output folders on the same prepared inputs — per output
max abs/rel error and cosine similarity, and at the detection level matched detections with their
mean box and mask IoU. Finds what a conversion changed (fp16, precision mode, NMS, inputs)."""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ..backends import backends_for, open_session
from ..choices import Precision
from ..data import binio
from ..data.coco import image_info, load_coco
from ..data.preprocess import sample_shape
from ..errors import AccuracyError, InputError, UsageError
from ..host import HostPipeline
from ..metrics.matching import match_detections
from ..metrics.results import kept_detections
from ..model.contract import output_names, output_shapes
from ..provenance import Origin, check_same_inputs, model_origin, read_run
from ..records import ConvertRecord, ExportRecord, PrepRecord
from ..resolve import annotations_for, file_precision, host_spec, in_process
from ..workspace import Workspace, append_to_log


@dataclass
class OutputDiff:
    name: str
    max_abs: float
    max_rel: float
    cosine: float
    within_tolerance: bool


@dataclass
class CompareResult:
    a: str
    b: str
    samples: int
    layout: str
    # what each side was computed in (a run folder's as its side-car says; None where unknown)
    a_precision: str | None = None
    b_precision: str | None = None
    outputs: list[OutputDiff] = field(default_factory=list)
    detections: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return all(o.within_tolerance for o in self.outputs)

    def to_dict(self) -> dict:
        return {**asdict(self), "ok": self.ok}


def _read_run(folder: Path, positions: list[int]) -> tuple[str, list[list[np.ndarray]]]:
    layout = binio.run_layout(folder)
    shapes = list(output_shapes(layout).values())
    samples = []
    for pos in positions:
        dtype = binio.sample_dtype(folder, str(pos), layout)
        if dtype is None:
            raise InputError("output missing or of the wrong size",
                             path=binio.first_incomplete(folder, str(pos), layout),
                             hint="rerun `yedge infer` for this run")
        samples.append([np.fromfile(folder / f"{pos}_{k}.bin", dtype=dtype).astype(np.float32).reshape(1, *shape)
                        for k, shape in enumerate(shapes)])
    return layout, samples


@dataclass(frozen=True)
class Runner:
    """What runs a model file of the comparison: its backend (None: the file's default) and
    precision (--a-backend, --a-precision and the same for B)."""

    backend: str | None = None
    precision: str | None = None  # None: the model's own (fp32; a QDQ .onnx int8; an .om as converted)


def _run_model(ws: Workspace, source: Path, files: list[Path], runner: Runner,
               side: str) -> tuple[str, list[list[np.ndarray]], str]:
    """The model's layout, outputs and the precision they were computed in. A refusal names this
    side's options (--a-backend, not --backend)."""
    try:
        runners = backends_for(source)
        if runner.backend is not None and runner.backend not in runners:  # before any runtime loads
            raise UsageError(f"--backend {runner.backend} does not run {source.name}", path=source,
                             hint=f"use --backend {' or '.join(runners)}")
        if source.suffix.lower() == ".om":
            precision = _om_precision(ws, source, runner.precision)
        else:
            precision = file_precision(source, runner.precision or Precision.FP32.value, fix=(
                f"run `yedge quantize` and compare the INT8 .onnx it writes as {side.upper()}"))
        runner = Runner(runner.backend, precision)
        with in_process(ws, runner.backend or runners[0]):
            return (*_run_session(ws, source, files, runner), precision)
    except UsageError as exc:
        def per_side(text: str | None) -> str | None:
            return None if text is None else re.sub(r"--(backend|precision)\b", rf"--{side}-\1", text)

        raise UsageError(per_side(exc.message) or "", path=exc.path, hint=per_side(exc.hint)) from None


def _om_precision(ws: Workspace, om: Path, asked: str | None) -> str:
    """An .om computes in the precision it was converted in: what convert recorded for it; one
    asked for must be that one (a mix-up would label the comparison wrongly)."""
    convert = ws.load(ConvertRecord)
    known = next((m for m in (convert.oms if convert else []) if ws.resolve(m.om).resolve() == om.resolve()), None)
    if asked is None:
        return known.precision if known else Precision.FP16.value
    if known is None:
        raise UsageError(f"--precision {asked}: {om.name} was not converted in this workspace, so its precision "
                         "is unknown", path=om, hint="drop --precision (an .om's precision is fixed when converted)")
    if known.precision != asked:
        raise UsageError(f"--precision {asked}: {om.name} was converted in {known.precision}", path=om,
                         hint=f"drop --precision, or compare an .om converted in {asked} (yedge convert)")
    return asked


def _run_session(ws: Workspace, source: Path, files: list[Path],
                 runner: Runner) -> tuple[str, list[list[np.ndarray]]]:
    export = ws.load(ExportRecord) or ExportRecord()
    prep = ws.load(PrepRecord) or PrepRecord()
    session = open_session(source, backend=runner.backend, precision=runner.precision or Precision.FP32.value,
                           layout=export.layout,
                           input_dtype=prep.dtype, config=export.config or "auto")
    dtype, layout_in = prep.dtype, prep.layout
    batch = session.info.batch_size or 1
    samples = []
    try:
        session.info.check_inputs(dtype, source)
        for path in files:
            data = binio.read_batch(binio.Batch((path,), batch), np.dtype(dtype), sample_shape(layout_in))
            samples.append([np.asarray(o[:1], dtype=np.float32) for o in session.run(data)])
    finally:
        session.close()
    return session.info.layout, samples


def _load(ws: Workspace, source: Path, positions: list[int], files: list[Path], runner: Runner, side: str):
    source = Path(source)
    if source.is_dir():
        if runner != Runner():
            raise UsageError(f"{source} is a run folder: its outputs are computed already",
                             hint="set --a-backend/--a-precision (or --b-…) for model files only")
        record = read_run(source)
        return (*_read_run(source, positions), record.precision if record else None)
    if not source.is_file():
        raise InputError("nothing to compare here (not a run folder or model file)", path=source,
                         hint="pass outputs/<run> folders or model files")
    return _run_model(ws, source, files, runner, side)


def _origin(ws: Workspace, source: Path) -> Origin | None:
    """The checkpoint behind a run folder or model; a run must also be of the current inputs,
    since both sides are compared on them."""
    source = Path(source)
    if source.is_dir():
        record = read_run(source)
        check_same_inputs(str(source), record.inputs_fingerprint if record else None, ws,
                          fix=f"rerun `yedge infer --run {source.name} --overwrite`")
        return record.origin if record else None
    return model_origin(ws, source)


@dataclass(frozen=True)
class CompareOptions:
    """On how many inputs `yedge compare` compares, what runs each side and what it allows, with
    each default (the CLI reads them here)."""

    inputs: int = 4           # the first prepared inputs
    atol: float = 1e-4        # allowed absolute difference per output ...
    rtol: float = 1e-3        # ... plus this times B's largest magnitude
    runner_a: Runner = Runner()
    runner_b: Runner = Runner()


def run(ws: Workspace, a: Path, b: Path, options: CompareOptions = CompareOptions()) -> CompareResult:
    inputs, atol, rtol, runner_a, runner_b = (
        options.inputs, options.atol, options.rtol, options.runner_a, options.runner_b)
    if inputs < 1:
        raise UsageError(f"--num-inputs must be at least 1, got {inputs}", hint="e.g. --num-inputs 4")
    ids = ws.read_ids()[:inputs]
    files = binio.list_input_files(ws.bin_dir)[: len(ids)]
    positions = list(range(len(ids)))
    origins = {a: _origin(ws, a), b: _origin(ws, b)}
    layout_a, out_a, precision_a = _load(ws, a, positions, files, runner_a, "a")
    layout_b, out_b, precision_b = _load(ws, b, positions, files, runner_b, "b")
    if layout_a != layout_b:
        raise UsageError(f"{a} has the {layout_a} layout and {b} the {layout_b} layout",
                         hint="compare models or runs exported with the same --layout")
    names = output_names(layout_a)
    result = CompareResult(a=str(a), b=str(b), samples=len(ids), layout=layout_a, a_precision=precision_a,
                           b_precision=precision_b)
    for k, name in enumerate(names):
        x = np.concatenate([s[k].reshape(-1) for s in out_a]).astype(np.float64)
        y = np.concatenate([s[k].reshape(-1) for s in out_b]).astype(np.float64)
        diff = np.abs(x - y)
        norm = np.linalg.norm(x) * np.linalg.norm(y)
        result.outputs.append(OutputDiff(
            name=name, max_abs=float(diff.max()), max_rel=float((diff / (np.abs(y) + 1e-6)).max()),
            cosine=float(x @ y / norm) if norm else 1.0,
            within_tolerance=bool(diff.max() <= atol + rtol * np.abs(y).max())))
    # one checkpoint's heads turn both sides into detections
    spec = host_spec(ws, layout_a, outputs_of={str(side): origin for side, origin in origins.items()},
                     fix="compare models of the checkpoint exported in this workspace, "
                         "or compare their outputs only in a workspace of theirs")
    pipeline = HostPipeline(spec)
    coco = load_coco(annotations_for(ws, None))
    totals = {"a": 0, "b": 0, "matched": 0}
    box_ious, mask_ious = [], []
    for image_id, sa, sb in zip(ids, out_a, out_b):
        info = image_info(coco, image_id)
        # the detections eval writes (boxes of zero area are not): an empty box has no IoU to match
        det_a, det_b = (det.subset(kept_detections(det.boxes)) for det in (pipeline(sa, info.width, info.height),
                                                                       pipeline(sb, info.width, info.height)))
        matched, boxes, masks = match_detections(det_a, det_b)
        totals["a"] += len(det_a)
        totals["b"] += len(det_b)
        totals["matched"] += matched
        box_ious += boxes
        mask_ious += masks
    result.detections = {**totals, "mean_box_iou": float(np.mean(box_ious)) if box_ious else 0.0,
                         "mean_mask_iou": float(np.mean(mask_ious)) if mask_ious else 0.0}
    append_to_log(ws.compare_log, {**result.to_dict(), "atol": atol, "rtol": rtol,
                                   "a_backend": runner_a.backend, "b_backend": runner_b.backend})
    return result


def check(result: CompareResult, atol: float, rtol: float) -> None:
    bad = [o for o in result.outputs if not o.within_tolerance]
    if bad:
        listed = ", ".join(f"{o.name} max|Δ|={o.max_abs:.2e}" for o in bad)
        raise AccuracyError(f"{len(bad)} output(s) differ beyond atol {atol} + rtol {rtol}: {listed}",
                            hint="see the detection-level columns for what it changes")
