"""`yedge export`: checkpoint → ONNX in the `fpn` (Ascend recipe) or `head` layout, then proof
that the file is valid and computes what PyTorch computes on a real image."""
from __future__ import annotations

import resource
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ..choices import Layout
from ..console import stage
from ..errors import AccuracyError, UsageError
from ..provenance import onnx_metadata
from ..records import ExportRecord
from ..workspace import Workspace, atomic_path, sha256_file

SAMPLE_IMAGE = Path(__file__).resolve().parent.parent / "assets" / "sample.jpg"
DEFAULT_OPSET = 11


@dataclass
class ExportResult:
    onnx: str
    config: str
    layout: str
    batch: int | str
    opset: int
    inputs: list[dict] = field(default_factory=list)
    outputs: list[dict] = field(default_factory=list)
    op_types: list[str] = field(default_factory=list)
    max_abs_diff: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0
    peak_rss_mb: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)


def _io_contract(model) -> tuple[list[dict], list[dict]]:
    from onnx import helper

    def describe(value) -> dict:
        tensor = value.type.tensor_type
        dims = [d.dim_param or d.dim_value for d in tensor.shape.dim]
        return {"name": value.name, "shape": dims,
                "dtype": str(helper.tensor_dtype_to_np_dtype(tensor.elem_type))}

    return [describe(v) for v in model.graph.input], [describe(v) for v in model.graph.output]


def _declare_output_shapes(model, shapes: dict[str, tuple[int, ...]], dynamic: bool) -> None:
    """The tracer leaves made-up symbolic names on dynamic-batch outputs; write the real contract."""
    for value in model.graph.output:
        dims = value.type.tensor_type.shape.dim
        batch = dims[0].dim_param if dynamic else dims[0].dim_value
        del dims[:]
        first = dims.add()
        if dynamic:
            first.dim_param = batch or "batch"
        else:
            first.dim_value = batch
        for size in shapes[value.name]:
            dims.add().dim_value = size


def _highest_opset() -> int:
    """The newest opset PyTorch's TorchScript exporter (the one export uses) writes."""
    from torch.onnx import _constants

    return int(getattr(_constants, "ONNX_TORCHSCRIPT_EXPORTER_MAX_OPSET", 17))


def _keep_outputs(model, names: list[str]) -> None:
    """Drop the graph's other outputs, and the nodes that only they needed."""
    kept = [o for o in model.graph.output if o.name in names]
    del model.graph.output[:]
    model.graph.output.extend(kept)
    while True:
        needed = {o.name for o in model.graph.output} | {i for n in model.graph.node for i in n.input}
        unused = [n for n in model.graph.node if not any(o in needed for o in n.output)]
        if not unused:
            return
        for node in unused:
            model.graph.node.remove(node)


def _check_batch(image: np.ndarray, batch: int) -> np.ndarray:
    return np.ascontiguousarray(np.repeat(image[None], batch, axis=0))


def run(ws: Workspace, weights: Path, *, config: str = "auto", batch_size: int = 1,
        dynamic_batch: bool = False, opset: int = DEFAULT_OPSET, layout: str = "fpn",
        output: Path | None = None, check_images: list[Path] | None = None,
        input_dtype: str = "float32") -> ExportResult:
    import onnx
    import onnxruntime as ort
    import torch

    from ..data.preprocess import INPUT_DTYPES, prepare, read_image
    from ..model.checkpoint import load_model
    from ..model.config import get_config
    from ..model.contract import LAYOUTS, output_names, output_shapes
    from ..model.parity import Parity, compare_outputs
    from ..model.yolact import NETWORK_CHECK_OUTPUTS, export_module

    if layout not in LAYOUTS:
        raise UsageError(f"unknown layout {layout!r}", hint=f"use --layout {', '.join(LAYOUTS)}")
    if input_dtype not in INPUT_DTYPES:
        raise UsageError(f"unknown input dtype {input_dtype!r}", hint="use float32 or uint8")
    if batch_size < 1:
        raise UsageError(f"batch size must be ≥ 1, got {batch_size}", hint="pass --batch-size 1 or more")
    if dynamic_batch and batch_size != 1:
        raise UsageError(f"--batch-size {batch_size} and --dynamic-batch: a model has one or the other",
                         hint="drop --batch-size for a dynamic batch, or --dynamic-batch for a static one")
    if config != "auto":
        get_config(config)  # before anything is written
    highest = _highest_opset()
    if not 11 <= opset <= highest:
        raise UsageError(f"opset {opset} is not one this exporter writes",
                         hint=f"use --opset 11 (what atc accepts) up to {highest}")
    started = time.perf_counter()
    output = Path(output) if output else ws.default_onnx
    images = [prepare(read_image(path), input_dtype) for path in (check_images or [SAMPLE_IMAGE])]

    with atomic_path(output) as tmp:
        with stage(f"loading {weights}"):
            net = load_model(weights, config)
        # The detect layout's graph also gives the network's tensors while it is checked.
        detect = layout == Layout.DETECT.value
        module = export_module(net, layout, input_dtype, network_outputs=detect).eval()
        names = list(output_names(layout))
        checked = [*names, *(NETWORK_CHECK_OUTPUTS if detect else ())]
        dynamic_axes = {n: {0: "batch"} for n in ["image", *checked]} if dynamic_batch else None
        trace_batch = 1 if dynamic_batch else batch_size
        with stage(f"exporting {net.cfg.name} ({layout} layout, opset {opset})"), \
                warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                module, (torch.from_numpy(_check_batch(images[0], trace_batch)),), str(tmp),
                dynamo=False, opset_version=opset, input_names=["image"], output_names=checked,
                dynamic_axes=dynamic_axes, do_constant_folding=True,
            )
        check_batch = 2 if dynamic_batch else batch_size
        parity = Parity()
        with stage(f"comparing onnxruntime with PyTorch on {len(images)} real image(s) (batch {check_batch})"):
            session = ort.InferenceSession(str(tmp), providers=["CPUExecutionProvider"])
            for image in images:
                batch = _check_batch(image, check_batch)
                got = session.run(checked, {"image": batch})
                with torch.no_grad():
                    want = [t.numpy() for t in module(torch.from_numpy(batch))]
                compare_outputs(layout, checked, want, got, net.cfg, parity)
            del session
        if not parity.ok:
            shown = "; ".join(parity.problems[:3]) + (f" (+{len(parity.problems) - 3} more)"
                                                       if len(parity.problems) > 3 else "")
            raise AccuracyError(f"onnxruntime's outputs differ from PyTorch's: {shown}", path=output,
                                hint="nothing was written; report it with the checkpoint and --check-image")
        with stage("checking the ONNX graph"):
            model = onnx.load(str(tmp))
            _keep_outputs(model, names)
            _declare_output_shapes(model, output_shapes(layout, net.cfg), dynamic_batch)
            onnx.helper.set_model_props(model, onnx_metadata(weights))
            onnx.save(model, str(tmp))
            onnx.checker.check_model(str(tmp))
            inputs, outputs = _io_contract(model)
            op_types = sorted({node.op_type for node in model.graph.node})
        diffs = parity.max_abs_diff

    result = ExportResult(
        onnx=str(output), config=net.cfg.name, layout=layout,
        batch="dynamic" if dynamic_batch else batch_size, opset=opset, inputs=inputs,
        outputs=outputs, op_types=op_types, max_abs_diff=diffs,
        seconds=round(time.perf_counter() - started, 2),
        peak_rss_mb=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    )
    ws.save(ExportRecord(
        weights=str(Path(weights).absolute()), weights_sha256=sha256_file(weights),
        config=net.cfg.name, layout=layout, batch=result.batch, opset=opset, input_dtype=input_dtype,
        onnx=ws.relative(output), onnx_sha256=sha256_file(output),
        io={"inputs": inputs, "outputs": outputs}, op_types=op_types, max_abs_diff=diffs))
    return result
