"""`yedge export`: checkpoint → ONNX in the `fpn` (Ascend recipe) or `head` layout, then proof
that the file is valid and computes what PyTorch computes on a real image."""
from __future__ import annotations

import resource
import time
import warnings
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..choices import InputDtype, Layout
from ..console import stage
from ..errors import AccuracyError, UsageError
from ..provenance import onnx_metadata
from ..records import ExportRecord
from ..workspace import Workspace, atomic_path, sha256_file

if TYPE_CHECKING:
    import torch

SAMPLE_IMAGE = Path(__file__).resolve().parent.parent / "assets" / "sample.jpg"
DEFAULT_OPSET = 11
# ONNX's GridSample, which the video configs warp with, exists from opset 16 on.
VIDEO_OPSET = 16
# (down, right) pixels the non-keyframe graph's check images are moved by (the goldens' shift).
CHECK_SHIFT = (4, 6)


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
    # a video checkpoint's second graph: onnx, inputs, outputs, op_types, max_abs_diff
    non_keyframe: dict | None = None

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


@dataclass
class _Graph:
    """One graph to write: what is traced, what goes in, what comes out and is kept, and the
    inputs to check it on (one list of arrays per check image, batch 1)."""
    path: Path
    module: torch.nn.Module
    input_names: list[str]
    names: list[str]
    checked: list[str]
    shapes: dict[str, tuple[int, ...]]
    samples: list[list[np.ndarray]]


@dataclass
class _Written:
    inputs: list[dict]
    outputs: list[dict]
    op_types: list[str]
    max_abs_diff: dict[str, float]


def _opset_for(cfg, opset: int | None, highest: int) -> int:
    """11 (what the recipe's atc takes) for image configs; 16, GridSample's first, for video."""
    needed = VIDEO_OPSET if cfg.video is not None else DEFAULT_OPSET
    if opset is None:
        return needed
    if opset < needed:
        raise UsageError(f"opset {opset} has no GridSample, which {cfg.name} warps its features with",
                         hint=f"use --opset {needed} or later (or leave --opset out)")
    if opset > highest:
        raise UsageError(f"opset {opset} is not one this exporter writes",
                         hint=f"use --opset 11 (what atc accepts) up to {highest}")
    return opset


@dataclass(frozen=True)
class ExportOptions:
    """What `yedge export` makes of a checkpoint, with each default (the CLI reads them here)."""

    config: str = "auto"               # told from the checkpoint's keys
    layout: str = Layout.FPN.value     # the Ascend recipe's six outputs
    batch_size: int = 1                # static
    dynamic_batch: bool = False
    opset: int | None = None           # None: 11 (what atc accepts), 16 for a video checkpoint
    input_dtype: str = InputDtype.FLOAT32.value
    output: Path | None = None         # None: the workspace's models/yolact_edge.onnx
    check_images: tuple[Path, ...] | None = None  # None: the bundled photo


def run(ws: Workspace, weights: Path, options: ExportOptions = ExportOptions()) -> ExportResult:
    """Export, check and record the model: one graph, or for a video checkpoint its keyframe
    graph at `output` and its non-keyframe graph beside it (contract.non_keyframe_graph)."""
    config, layout, batch_size, dynamic_batch, opset, input_dtype, output, check_images = (
        options.config, options.layout, options.batch_size, options.dynamic_batch, options.opset,
        options.input_dtype, options.output, options.check_images)
    from ..data.preprocess import INPUT_DTYPES, prepare, read_image
    from ..model.checkpoint import load_model
    from ..model.config import get_config
    from ..model.contract import LAYOUTS, non_keyframe_graph

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
    if opset is not None and opset < DEFAULT_OPSET:
        raise UsageError(f"opset {opset} is not one this exporter writes",
                         hint=f"use --opset 11 (what atc accepts) up to {_highest_opset()}")
    started = time.perf_counter()
    output = Path(output) if output else ws.default_onnx
    frames = [read_image(path) for path in (check_images or [SAMPLE_IMAGE])]

    with stage(f"loading {weights}"):
        net = load_model(weights, config)
    opset = _opset_for(net.cfg, opset, _highest_opset())
    images = [prepare(frame, input_dtype) for frame in frames]
    shape = (batch_size, dynamic_batch)
    if net.cfg.video is None:
        graphs = [_image_graph(net, layout, input_dtype, output, images)]
    else:
        # The non-keyframe graph is checked on each check image moved by a few pixels, with the
        # key state of the image itself, so that its flows are not zero.
        moved = [prepare(np.roll(frame, CHECK_SHIFT, axis=(0, 1)), input_dtype) for frame in frames]
        graphs = _video_graphs(net, layout, input_dtype, output, non_keyframe_graph(output), images, moved)
    with ExitStack() as temporary:
        written = [_write(graph, temporary.enter_context(atomic_path(graph.path)), net.cfg, layout,
                          opset, shape, weights) for graph in graphs]
    main, *rest = written
    result = ExportResult(
        onnx=str(output), config=net.cfg.name, layout=layout,
        batch="dynamic" if dynamic_batch else batch_size, opset=opset, inputs=main.inputs,
        outputs=main.outputs, op_types=main.op_types, max_abs_diff=main.max_abs_diff,
        seconds=round(time.perf_counter() - started, 2),
        peak_rss_mb=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        non_keyframe=({"onnx": str(graphs[1].path), **asdict(rest[0])} if rest else None),
    )
    ws.save(ExportRecord(
        weights=str(Path(weights).absolute()), weights_sha256=sha256_file(weights),
        config=net.cfg.name, layout=layout, batch=result.batch, opset=opset, input_dtype=input_dtype,
        onnx=ws.relative(output), onnx_sha256=sha256_file(output),
        non_keyframe_onnx=ws.relative(graphs[1].path) if rest else "",
        non_keyframe_onnx_sha256=sha256_file(graphs[1].path) if rest else "",
        io={"inputs": main.inputs, "outputs": main.outputs}, op_types=main.op_types,
        max_abs_diff=main.max_abs_diff))
    return result


def _image_graph(net, layout: str, input_dtype: str, path: Path, images: list[np.ndarray]) -> _Graph:
    from ..model.contract import output_names, output_shapes
    from ..model.yolact import NETWORK_CHECK_OUTPUTS, export_module

    # The detect layout's graph also gives the network's tensors while it is checked.
    detect = layout == Layout.DETECT.value
    names = list(output_names(layout))
    return _Graph(path, export_module(net, layout, input_dtype, network_outputs=detect).eval(),
                  ["image"], names, [*names, *(NETWORK_CHECK_OUTPUTS if detect else ())],
                  output_shapes(layout, net.cfg), [[image] for image in images])


def _video_graphs(net, layout: str, input_dtype: str, keyframe_path: Path, nonkey_path: Path,
                  images: list[np.ndarray], moved: list[np.ndarray]) -> list[_Graph]:
    import torch

    from ..model.contract import KEY_STATE_NAMES, key_state_shapes, output_names, output_shapes
    from ..model.yolact import NETWORK_CHECK_OUTPUTS, VideoPass, export_module

    detect = layout == Layout.DETECT.value
    names = list(output_names(layout))
    network = list(NETWORK_CHECK_OUTPUTS if detect else ())
    keyframe = export_module(net, layout, input_dtype, network_outputs=detect,
                             video_pass=VideoPass.KEYFRAME).eval()
    non_keyframe = export_module(net, layout, input_dtype, network_outputs=detect,
                                 video_pass=VideoPass.NON_KEYFRAME).eval()
    states = []
    with torch.no_grad():
        for image in images:
            outputs = keyframe(torch.from_numpy(image[None]))
            states.append([t[0].numpy() for t in outputs[len(names):len(names) + len(KEY_STATE_NAMES)]])
    shapes = output_shapes(layout, net.cfg)
    return [
        _Graph(keyframe_path, keyframe, ["image"], [*names, *KEY_STATE_NAMES],
               [*names, *KEY_STATE_NAMES, *network], {**shapes, **key_state_shapes(net.cfg)},
               [[image] for image in images]),
        _Graph(nonkey_path, non_keyframe, ["image", *KEY_STATE_NAMES], names, [*names, *network],
               shapes, [[image, *state] for image, state in zip(moved, states)]),
    ]


def _write(graph: _Graph, tmp: Path, cfg, layout: str, opset: int, shape: tuple[int, bool],
           weights: Path) -> _Written:
    """Trace the graph to `tmp`, check onnxruntime against PyTorch on its samples, keep its
    outputs, declare their shapes and stamp the provenance."""
    import onnx
    import onnxruntime as ort
    import torch

    from ..model.parity import Parity, compare_outputs

    batch_size, dynamic_batch = shape
    dynamic_axes = ({n: {0: "batch"} for n in [*graph.input_names, *graph.checked]}
                    if dynamic_batch else None)
    trace_batch = 1 if dynamic_batch else batch_size
    example = tuple(torch.from_numpy(_check_batch(a, trace_batch)) for a in graph.samples[0])
    with stage(f"exporting {graph.path.name}: {cfg.name} ({layout} layout, opset {opset})"), \
            warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(graph.module, example, str(tmp), dynamo=False, opset_version=opset,
                          input_names=graph.input_names, output_names=graph.checked,
                          dynamic_axes=dynamic_axes, do_constant_folding=True)
    check_batch = 2 if dynamic_batch else batch_size
    parity = Parity()
    with stage(f"comparing onnxruntime with PyTorch on {len(graph.samples)} real image(s) "
               f"(batch {check_batch})"):
        session = ort.InferenceSession(str(tmp), providers=["CPUExecutionProvider"])
        for sample in graph.samples:
            batch = [_check_batch(a, check_batch) for a in sample]
            got = session.run(graph.checked, dict(zip(graph.input_names, batch)))
            with torch.no_grad():
                want = [t.numpy() for t in graph.module(*(torch.from_numpy(a) for a in batch))]
            compare_outputs(layout, graph.checked, want, got, cfg, parity)
        del session
    if not parity.ok:
        shown = "; ".join(parity.problems[:3]) + (f" (+{len(parity.problems) - 3} more)"
                                                   if len(parity.problems) > 3 else "")
        raise AccuracyError(f"onnxruntime's outputs differ from PyTorch's: {shown}", path=graph.path,
                            hint="nothing was written; report it with the checkpoint and --check-image")
    with stage("checking the ONNX graph"):
        model = onnx.load(str(tmp))
        _keep_outputs(model, graph.names)
        _declare_output_shapes(model, graph.shapes, dynamic_batch)
        onnx.helper.set_model_props(model, onnx_metadata(weights))
        onnx.save(model, str(tmp))
        onnx.checker.check_model(str(tmp))
        inputs, outputs = _io_contract(model)
    return _Written(inputs, outputs, sorted({node.op_type for node in model.graph.node}),
                    parity.max_abs_diff)
