"""`yedge convert`: the exported ONNX → `.om` files through atc, one per batch size (or one
dynamic-batch model), with the soc_version read from npu-smi. An INT8 (QDQ) model goes through
CANN's AMCT first, and atc converts AMCT's deploy model (docs/ascend.md §6)."""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from ..choices import InputDtype, InputLayout, Precision
from ..console import stage
from ..errors import InputError, UsageError
from ..provenance import model_origin
from ..records import ConvertRecord, ExportRecord, OmRecord, QuantizeRecord
from ..workspace import Workspace, atomic_write_text, sha256_file


@dataclass
class ConvertResult:
    soc_version: str
    argv: list[list[str]] = field(default_factory=list)
    models: list[dict] = field(default_factory=list)
    dry_run: bool = False

    def to_dict(self) -> dict:
        return asdict(self)


def _graph_of(onnx: Path):
    import onnx as onnx_lib

    return onnx_lib.load(str(onnx), load_external_data=False).graph


def _onnx_batch(graph) -> int | None:
    dim = graph.input[0].type.tensor_type.shape.dim[0]
    return dim.dim_value if dim.HasField("dim_value") else None


@dataclass(frozen=True)
class _NonKeyframe:
    """A video model's non-keyframe graph: converted beside the keyframe graph, with the key
    state as more inputs (docs/video.md §4)."""
    onnx: Path
    more_inputs: tuple[tuple[str, tuple[int, ...]], ...]
    op_types: frozenset[str]


def _non_keyframe_of(onnx: Path, graph) -> _NonKeyframe | None:
    """The non-keyframe graph of a keyframe graph (one that outputs the key state), or None."""
    from ..model.contract import KEY_STATE_NAMES, non_keyframe_graph

    if not set(KEY_STATE_NAMES) <= {o.name for o in graph.output}:
        return None
    companion = non_keyframe_graph(onnx)
    if not companion.is_file():
        raise InputError("a video model's keyframe graph, without its non-keyframe graph beside it",
                         path=companion, hint="export the video checkpoint again (`yedge export`)")
    twin = _graph_of(companion)
    more = tuple((i.name, tuple(d.dim_value for d in i.type.tensor_type.shape.dim[1:]))
                 for i in twin.input[1:])
    return _NonKeyframe(companion, more, frozenset(node.op_type for node in twin.node))


@dataclass(frozen=True)
class ConvertOptions:
    """What `yedge convert` asks of atc, with each default (the CLI reads them here)."""

    model: Path | None = None              # None: what export wrote
    soc_version: str = "auto"              # auto: npu-smi's
    batch_sizes: tuple[int, ...] = (1,)    # one .om per batch size
    dynamic_batch: tuple[int, ...] = ()    # one dynamic-batch .om of these instead
    precision_mode: str | None = None      # atc's --precision_mode (None: atc's force_fp16)
    precision: str | None = None           # int8: the INT8 model of `yedge quantize`, through AMCT
    aipp: bool = False                     # normalise on the device: the .om takes uint8 HWC pixels
    atc_args: tuple[str, ...] = ()         # passed to atc as they are
    dry_run: bool = False                  # print the atc command lines; run nothing


def run(ws: Workspace, options: ConvertOptions = ConvertOptions()) -> ConvertResult:
    from ..ascend import amct, cann, npu_smi
    from ..ascend import atc as atc_driver
    from ..model.contract import non_keyframe_graph

    model, soc_version, batch_sizes, dynamic_batch, precision_mode, precision, aipp, atc_args, dry_run = (
        options.model, options.soc_version, options.batch_sizes, options.dynamic_batch, options.precision_mode,
        options.precision, options.aipp, options.atc_args, options.dry_run)

    if precision not in (None, Precision.INT8.value):
        raise UsageError(f"convert --precision {precision}: atc's --precision-mode sets fp16, fp32 or bf16",
                         hint="use --precision-mode (e.g. force_fp32), or --precision int8 for AMCT")
    export = ws.load(ExportRecord) or ExportRecord()
    if model is None:
        export = ws.need(ExportRecord, "exported ONNX model", "yedge export --weights X.pth")
        model = ws.resolve(ws.need(QuantizeRecord, "INT8 model", "yedge quantize").onnx
                           if precision == Precision.INT8.value else export.onnx)
    onnx = Path(model)
    if not onnx.is_file():
        raise InputError("ONNX model not found", path=onnx, hint="run `yedge export` first")
    quantized = amct.is_quantized(onnx)
    if precision == Precision.INT8.value and not quantized:
        raise UsageError(f"--precision int8 converts a quantized model, and {onnx.name} has no "
                         "QuantizeLinear/DequantizeLinear pairs", path=onnx,
                         hint="run `yedge quantize` and drop --model, or pass the INT8 .onnx it wrote")
    graph = _graph_of(onnx)  # read once: its outputs, then its batch
    non_keyframe = _non_keyframe_of(onnx, graph)
    if non_keyframe and quantized:
        raise UsageError("an INT8 video model is not converted here", path=onnx,
                         hint="convert the float video model (drop --precision int8 and --model)")
    if quantized and aipp:
        raise UsageError("--aipp is not combined with an INT8 model here", path=onnx,
                         hint="drop --aipp (the INT8 .om takes the float32 prepared inputs)")
    if precision_mode and precision_mode not in atc_driver.PRECISION_MODES:
        raise UsageError(f"unknown precision mode {precision_mode!r}",
                         hint="one of " + ", ".join(atc_driver.PRECISION_MODES))
    if any(b < 1 for b in (*batch_sizes, *dynamic_batch)):
        raise UsageError("batch sizes must be ≥ 1", hint="e.g. --batch-size 1,4,8")
    static = _onnx_batch(graph)
    wanted = set(dynamic_batch or batch_sizes)
    if static is not None and wanted != {static}:
        raise UsageError(f"{onnx.name} has a static batch of {static}, atc cannot build batch "
                         f"{sorted(wanted)} from it",
                         hint="re-export with `yedge export --dynamic-batch` (what the recipe does)")
    if aipp and export.input_dtype != InputDtype.FLOAT32.value:
        raise UsageError("--aipp normalises on the device, but this ONNX already normalises uint8 input",
                         path=onnx, hint="export with the default --input-dtype float32 for --aipp")
    aipp_path = ws.aipp_config if aipp else None
    if soc_version == "auto":
        soc_version = npu_smi.detect_soc()
    elif not re.fullmatch(r"Ascend[0-9A-Za-z_-]+", soc_version):
        raise UsageError(f"--soc-version {soc_version!r} is not an Ascend SoC name",
                         hint="e.g. Ascend310P3, Ascend910B3 (npu-smi's Name column with 'Ascend' before it)")
    aipp_absolute = aipp_path.absolute() if aipp_path else None
    # what atc reads: the ONNX, or for an INT8 one AMCT's deploy model of it (made below)
    atc_input = (ws.amct_dir / f"{amct.SAVE_PREFIX}_deploy_model.onnx") if quantized else onnx

    def atc_job(batch_size: int | None) -> atc_driver.AtcJob:
        return atc_driver.AtcJob(atc_input.absolute(), ws.om_output(batch_size, quantized).absolute(), soc_version,
                                 batch_size=batch_size,
                                 dynamic_batch=tuple(dynamic_batch) if batch_size is None else (),
                                 precision_mode=precision_mode, extra=tuple(atc_args), aipp_config=aipp_absolute)

    jobs = [atc_job(None)] if dynamic_batch else [atc_job(b) for b in batch_sizes]
    # each job's non-keyframe twin, run right after it
    twins = [replace(job, onnx=non_keyframe.onnx.absolute(), output=non_keyframe_graph(job.output),
                     more_inputs=non_keyframe.more_inputs) if non_keyframe else None for job in jobs]
    result = ConvertResult(soc_version=soc_version, dry_run=dry_run)
    if dry_run:
        atc_driver.check_precision(precision_mode, tuple(atc_args), soc_version, None)
        result.argv = [each.argv() for job, twin in zip(jobs, twins) for each in (job, twin) if each]
        return result
    atc = cann.find_atc()
    env = cann.child_env(atc)
    version = cann.cann_version(env)
    atc_driver.check_precision(precision_mode, tuple(atc_args), soc_version, version)
    if non_keyframe:
        atc_driver.check_operators(set(non_keyframe.op_types), version, non_keyframe.onnx)
    ws.models_dir.mkdir(parents=True, exist_ok=True)
    if aipp_path:
        atomic_write_text(aipp_path, atc_driver.aipp_config())
    onnx_sha = sha256_file(onnx)
    origin = model_origin(ws, onnx, onnx_sha)
    if quantized:
        with stage(f"AMCT: the deploy model of {onnx.name} — log in logs/amct.log"):
            atc_input = amct.deploy_model(onnx, ws.amct_dir, ws.log("amct"))
        jobs = [replace(job, onnx=atc_input.absolute()) for job in jobs]
    for job, twin in zip(jobs, twins):
        label = f"bs{job.batch_size}" if job.batch_size else "dynamic"
        oms = []
        for each, log in ((job, label), (twin, f"{label}_nonkey")):
            if each is None:
                continue
            result.argv.append(each.argv(atc))
            with stage(f"atc: {each.output.name} ({soc_version}) — log in logs/atc_{log}.log"):
                oms.append(atc_driver.run(each, atc, env, ws.log(f"atc_{log}"), cwd=ws.logs_dir))
        om = oms[0]
        if twin:  # beside its keyframe .om, named as the runners look for it (atc may add _linux_<cpu>)
            oms[1] = oms[1].replace(non_keyframe_graph(om))
        result.models.append(asdict(OmRecord(
            om=ws.relative(om), soc_version=soc_version, batch_size=job.batch_size,
            dynamic_batch=list(job.dynamic_batch), precision_mode=precision_mode or "force_fp16",
            input_dtype=InputDtype.UINT8.value if aipp else export.input_dtype,
            input_layout=InputLayout.NHWC.value if aipp else InputLayout.NCHW.value, aipp=aipp,
            layout=export.layout, onnx=str(onnx.absolute()), onnx_sha256=onnx_sha,
            om_sha256=sha256_file(om), weights=origin.weights if origin else None,
            weights_sha256=origin.weights_sha256 if origin else None, cann_version=version,
            atc_args=list(atc_args), quantized=quantized,
            non_keyframe_om=ws.relative(oms[1]) if twin else "",
            non_keyframe_om_sha256=sha256_file(oms[1]) if twin else "")))
    previous = ws.load(ConvertRecord)
    kept = [m for m in (previous.models if previous else []) if m["om"] not in {n["om"] for n in result.models}]
    ws.save(ConvertRecord(onnx=str(onnx.absolute()), onnx_sha256=onnx_sha, soc_version=soc_version,
                          precision_mode=precision_mode, models=kept + result.models))
    return result
