"""Typed manifest entries: one small dataclass per step, its defaults written once.

On disk `yedge.json` keeps the layout earlier versions wrote — `{"steps": {name: {"inputs": {…},
"options": {…}, "outputs": {…}, …}}}` — each field says which section it lives in, and a field
an older workspace lacks reads as its default. `Workspace.load`/`need`/`save` read and write them.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

from .choices import InputDtype, InputLayout, Layout, Nms, Precision
from .model.config import SHOW_SCORE_THRESHOLD
from .workspace import BBOX_RESULTS, MASK_RESULTS, METRICS

R = TypeVar("R", bound="Record")
TOP = ""  # fields stored at the entry's top level rather than in a section


def _in(section: str, default: Any = None, factory: Any = None) -> Any:
    if factory is not None:
        return field(default_factory=factory, metadata={"section": section})
    return field(default=default, metadata={"section": section})


@dataclass
class Record:
    STEP: ClassVar[str]

    def to_entry(self) -> dict[str, Any]:
        entry: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            section = f.metadata["section"]
            if section == TOP:
                entry[f.name] = value
            else:
                entry.setdefault(section, {})[f.name] = value
        return entry

    @classmethod
    def from_entry(cls: type[R], entry: dict[str, Any]) -> R:
        values = {}
        for f in dataclasses.fields(cls):
            section = f.metadata["section"]
            holder = entry if section == TOP else entry.get(section) or {}
            if f.name in holder:
                values[f.name] = holder[f.name]
        return cls(**values)


@dataclass
class ExportRecord(Record):
    STEP = "export"
    weights: str = _in("inputs", "")
    weights_sha256: str = _in("inputs", "")
    config: str = _in("options", "")
    layout: str = _in("options", Layout.FPN.value)
    batch: int | str = _in("options", 1)
    opset: int = _in("options", 11)
    input_dtype: str = _in("options", InputDtype.FLOAT32.value)
    onnx: str = _in("outputs", "")
    onnx_sha256: str = _in("outputs", "")
    # a video checkpoint's non-keyframe graph (docs/video.md); empty for image configs
    non_keyframe_onnx: str = _in("outputs", "")
    non_keyframe_onnx_sha256: str = _in("outputs", "")
    io: dict = _in(TOP, factory=dict)
    op_types: list = _in(TOP, factory=list)
    max_abs_diff: dict = _in(TOP, factory=dict)


@dataclass
class QuantizeRecord(Record):
    STEP = "quantize"
    source: str = _in("inputs", "")
    source_sha256: str = _in("inputs", "")
    weights_sha256: str = _in("inputs", "")
    calibration: str = _in("inputs", "")
    method: str = _in("options", "minmax")
    calibration_images: int = _in("options", 0)
    keep_float: list = _in("options", factory=list)
    onnx: str = _in("outputs", "")
    onnx_sha256: str = _in("outputs", "")
    quantized_convs: int = _in(TOP, 0)
    float_convs: int = _in(TOP, 0)
    agreement: dict = _in(TOP, factory=dict)  # per output: cosine and max |Δ| against float32
    detections: dict = _in(TOP, factory=dict)  # matched share of float32's detections, mAP of each


@dataclass
class PrepRecord(Record):
    STEP = "prep"
    images: str = _in("inputs", "")
    annotations: str = _in("inputs", "")
    dtype: str = _in("options", InputDtype.FLOAT32.value)
    layout: str = _in("options", InputLayout.NCHW.value)
    count: int = _in("options", 0)
    bin_dir: str = _in("outputs", "inputs/bin_file")
    ids: str = _in("outputs", "inputs/ids.json")
    fingerprint: str | None = _in("outputs")
    bad: list = _in(TOP, factory=list)
    size_mismatches: list = _in(TOP, factory=list)


@dataclass
class OmRecord:
    """One converted model (an item of the convert record's list)."""

    om: str
    soc_version: str | None = None
    batch_size: int | None = None
    dynamic_batch: list = field(default_factory=list)
    precision_mode: str = "force_fp16"
    input_dtype: str = InputDtype.FLOAT32.value
    input_layout: str = InputLayout.NCHW.value
    aipp: bool = False
    layout: str = Layout.FPN.value
    onnx: str = ""
    onnx_sha256: str = ""
    om_sha256: str = ""
    weights: str | None = None
    weights_sha256: str | None = None
    cann_version: str | None = None
    atc_args: list = field(default_factory=list)
    quantized: bool = False  # atc ran on AMCT's deploy model of a QDQ .onnx (yedge quantize)
    # a video model's non-keyframe .om, beside `om` (docs/video.md); empty for image models
    non_keyframe_om: str = ""
    non_keyframe_om_sha256: str = ""

    @property
    def precision(self) -> str:
        """What --precision calls this .om: int8 when AMCT made it, else atc's precision mode's."""
        if self.quantized:
            return Precision.INT8.value
        if self.precision_mode in ("force_fp32", "must_keep_origin_dtype"):
            return Precision.FP32.value
        return Precision.BF16.value if "bf16" in self.precision_mode else Precision.FP16.value

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> OmRecord:
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclass
class ConvertRecord(Record):
    STEP = "convert"
    onnx: str = _in("inputs", "")
    onnx_sha256: str = _in("inputs", "")
    soc_version: str | None = _in("options")
    precision_mode: str | None = _in("options")
    models: list = _in("outputs", factory=list)  # OmRecord dicts, as stored

    @property
    def oms(self) -> list[OmRecord]:
        return [OmRecord.from_dict(m) for m in self.models]


@dataclass
class InferRecord(Record):
    STEP = "infer"
    bin_dir: str = _in("inputs", "")
    model: str = _in("inputs", "")
    model_sha256: str | None = _in("inputs")
    weights_sha256: str | None = _in("inputs")
    inputs_fingerprint: str | None = _in("inputs")
    backend: str = _in("options", "")
    device: str = _in("options", "cpu")
    half: bool = _in("options", False)
    precision: str = _in("options", Precision.FP32.value)
    compiled: bool = _in("options", False)  # torch.compile (CUDA graphs)
    batch_size: int = _in("options", 1)
    layout: str = _in("options", Layout.FPN.value)
    config: str | None = _in("options")
    ais_bench: str | None = _in("options")
    soc_version: str | None = _in("options")
    run: str = _in("outputs", "")
    run_dir: str = _in("outputs", "")
    summary: str = _in("outputs", "")


@dataclass
class EvalRecord(Record):
    STEP = "eval"
    outputs: str = _in("inputs", "")
    annotations: str = _in("inputs", "")
    weights: str | None = _in("inputs")
    inputs_fingerprint: str | None = _in("inputs")
    model_weights: str | None = _in("inputs")
    model_weights_sha256: str | None = _in("inputs")
    streamed_images: str | None = _in("inputs")  # the image folder a streaming eval read
    bad: list = _in(TOP, factory=list)  # streaming: unreadable images left out (--skip-bad)
    size_mismatches: list = _in(TOP, factory=list)  # streaming: as prep records them
    nms: str = _in("options", Nms.FAST.value)
    score_threshold: float = _in("options", 0.0)
    images: int = _in("options", 0)
    layout: str = _in("options", Layout.FPN.value)
    config: str = _in("options", "")
    run: str | None = _in("outputs")
    bbox: str = _in("outputs", f"results/{BBOX_RESULTS}")
    segm: str = _in("outputs", f"results/{MASK_RESULTS}")
    metrics: str = _in("outputs", f"results/{METRICS}")
    bbox_sha256: str = _in("outputs", "")
    summary: dict = _in(TOP, factory=dict)


@dataclass
class BenchRecord(Record):
    STEP = "bench"
    model: str = _in("inputs", "")
    model_sha256: str = _in("inputs", "")
    backend: str = _in("options", "")
    device: str = _in("options", "")
    mode: str = _in("options", "inference")
    log: str = _in("outputs", "results/bench.json")
    runs: int = _in("outputs", 0)


@dataclass
class ShowRecord(Record):
    STEP = "show"
    results: str = _in("inputs", "")
    ids: list = _in("options", factory=list)
    score_threshold: float = _in("options", SHOW_SCORE_THRESHOLD)
    gt: bool = _in("options", False)
    folder: str = _in("outputs", "results/vis")


STEP_RECORDS: tuple[type[Record], ...] = (ExportRecord, PrepRecord, ConvertRecord, InferRecord,
                                          EvalRecord, BenchRecord, ShowRecord)
