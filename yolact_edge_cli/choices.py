"""Every closed choice the tool offers, in one place and without heavy imports: the CLI turns
these into option types (so a typo is refused before any work and `--help` lists the values),
and the library's tuples of valid values are derived from them."""
from __future__ import annotations

from enum import Enum


class Choice(str, Enum):
    """A str Enum whose members print as their value (in --help, errors and JSON)."""

    def __str__(self) -> str:
        return self.value

    @classmethod
    def values(cls) -> tuple[str, ...]:
        return tuple(member.value for member in cls)


class Backend(Choice):
    AUTO = "auto"
    ONNXRUNTIME = "onnxruntime"
    TORCH = "torch"
    ASCEND = "ascend"
    OPENVINO = "openvino"


class Layout(Choice):
    """Where the exported graph ends (docs/commands.md, "export")."""

    FPN = "fpn"
    HEAD = "head"
    DETECT = "detect"


class InputDtype(Choice):
    FLOAT32 = "float32"
    UINT8 = "uint8"


class InputLayout(Choice):
    NCHW = "nchw"
    NHWC = "nhwc"


class Nms(Choice):
    FAST = "fast"
    TRADITIONAL = "traditional"


class MapKind(Choice):
    BOX = "box"
    MASK = "mask"


class AisBenchMode(Choice):
    AUTO = "auto"
    API = "api"
    CLI = "cli"


class PrecisionMode(Choice):
    """atc's --precision_mode values."""

    FORCE_FP16 = "force_fp16"
    FORCE_FP32 = "force_fp32"
    CUBE_FP16IN_FP32OUT = "cube_fp16in_fp32out"
    ALLOW_MIX_PRECISION = "allow_mix_precision"
    ALLOW_FP32_TO_FP16 = "allow_fp32_to_fp16"
    MUST_KEEP_ORIGIN_DTYPE = "must_keep_origin_dtype"
    ALLOW_MIX_PRECISION_FP16 = "allow_mix_precision_fp16"
    ALLOW_MIX_PRECISION_BF16 = "allow_mix_precision_bf16"
    ALLOW_FP32_TO_BF16 = "allow_fp32_to_bf16"


class Precision(Choice):
    """The numbers a model runs in (docs/quantization.md); which backend runs which is precision.py's."""

    FP32 = "fp32"
    BF16 = "bf16"
    FP16 = "fp16"
    INT8 = "int8"


class QuantMethod(Choice):
    """How `yedge quantize` calibrates activation ranges (onnxruntime's calibrators)."""

    MINMAX = "minmax"
    ENTROPY = "entropy"
    PERCENTILE = "percentile"


class Engine(Choice):
    """Where the streaming pipeline runs: this host's processes, or a Ray cluster."""

    LOCAL = "local"
    RAY = "ray"
