"""The options several commands share, each with one name, one help text and one set of
limits, as `Annotated` aliases; closed choices are the Enums of choices.py, so Typer refuses a
typo before any work and --help lists them."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from .choices import AisBenchMode, Backend, Engine, Precision
from .errors import UsageError
from .model.config import KEYFRAME_INTERVAL


def flag(*names: str, help: str) -> Any:
    """A switch: it takes no value, so --help shows no type for it."""
    return typer.Option(False, *names, metavar="", help=help)


JsonFlag = Annotated[bool, typer.Option("--json", metavar="", help="Print the result as JSON on stdout.")]
Workers = Annotated[int | None, typer.Option("--workers", min=1, help="Processes \\[default: CPU count].")]
BackendOption = Annotated[Backend, typer.Option("--backend", help="auto (ascend where an NPU and "
                                                "ais_bench are present, else onnxruntime), "
                                                "onnxruntime, torch, ascend or openvino "
                                                "(yedge\\[openvino]).")]
ModelOption = Annotated[Path | None, typer.Option("--model", help="ONNX file (onnxruntime), .pth "
                                                     "(torch) or .om (ascend) \\[default: what "
                                                     "export/convert recorded].")]
KeyframeIntervalOption = Annotated[int | None, typer.Option(
    "--keyframe-interval", min=1, help="A video model's keyframe every N frames of a video; the "
    f"frames between reuse its features; 1: every frame a keyframe \\[default: {KEYFRAME_INTERVAL}, "
    "the reference's].")]
NoPlots = Annotated[bool, typer.Option("--no-plots", metavar="", help="Draw no pictures (which ones: "
                                       "docs/pictures.md).")]
HalfFlag = Annotated[bool, typer.Option("--half", metavar="", help="Same as --precision fp16 (torch "
                                        "backend, CUDA only).")]
PrecisionOption = Annotated[Precision | None, typer.Option("--precision", help="fp32, bf16, fp16 or int8 "
                                                           "(int8: the model `yedge quantize` wrote); "
                                                           "which backend runs which: `yedge doctor` "
                                                           "\\[default: fp32; ascend: the .om's own].")]


def precision_of(precision: Precision | None, half: bool) -> str | None:
    """--precision, or fp16 for --half; both only when they agree."""
    if half and precision not in (None, Precision.FP16):
        raise UsageError(f"--half is --precision fp16, not {precision}", hint="pass one of them")
    return Precision.FP16.value if half else precision.value if precision else None
CompileFlag = Annotated[bool, typer.Option("--compile", metavar="", help="torch.compile the model, its "
                                           "static shapes replayed as CUDA graphs (torch backend, CUDA "
                                           "only; the first batches compile for minutes).")]
AisBenchOption = Annotated[AisBenchMode, typer.Option("--ais-bench", help="ascend: api "
                                                      "(InferSession; one process per NPU), cli "
                                                      "(python3 -m ais_bench) or auto (api if it "
                                                      "loads).")]
NumImages = Annotated[int, typer.Option("--num-images", "-n", min=1, help="How many images.")]
ScoreThreshold = Annotated[float, typer.Option("--score-threshold", min=0.0, max=1.0,
                                               help="Keep detections scoring above this.")]
DeviceOption = Annotated[str, typer.Option("--device", help="cpu or cuda; for ascend NPU ids, e.g. 0 or 0,1 "
                                                        "(inputs are split across them).")]
BatchSizeOption = Annotated[int | None, typer.Option("--batch-size", "-b", min=1,
                                                     help="Batch for dynamic-batch models and torch "
                                                          "\\[default: the model's static batch, else 1].")]
EngineOption = Annotated[Engine, typer.Option("--engine", help="local (this host's processes) or ray "
                                              "(a Ray cluster: --ray-address, else RAY_ADDRESS, else "
                                              "a local one; needs yedge\\[ray]).")]
RayAddressOption = Annotated[str | None, typer.Option("--ray-address", help="--engine ray: the cluster's "
                                                      "address, e.g. 10.0.0.1:6379 \\[default: "
                                                      "RAY_ADDRESS, else a new local cluster].")]
ReplicasOption = Annotated[int | None, typer.Option("--replicas", min=1, help="--engine ray: model replicas "
                                                    "\\[default: one per NPU (ascend) or GPU (cuda) of "
                                                    "the cluster, else 1].")]
ReplicaResourcesOption = Annotated[str | None, typer.Option("--replica-resources", help="--engine ray: what "
                                                            "each replica reserves, e.g. NPU=1, GPU=1 or "
                                                            "CPU=2 \\[default: NPU=1 for ascend, GPU=1 "
                                                            "for cuda, else CPU=1].")]


def parse_ints(text: str, option: str = "--batch-sizes") -> tuple[int, ...]:
    """A comma list of positive integers (batch sizes, device or image ids)."""
    try:
        sizes = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        sizes = ()
    if not sizes or min(sizes) < 1:
        raise UsageError(f"{option} {text!r} is not a comma list of positive integers",
                         hint=f"e.g. {option} 1,4,8")
    return sizes


def ray_settings(engine: Engine, address: str | None, replicas: int | None, resources: str | None,
                 streaming: bool = True, stream_hint: str = ""):
    """The engine option group, checked as one: --engine ray's settings (None for local, which
    refuses them: they would do nothing). `streaming`: whether the command runs the streaming
    pipeline, the only one Ray runs."""
    if engine != Engine.LOCAL and not streaming:
        raise UsageError(f"--engine {engine} runs the streaming pipeline", hint=stream_hint)
    if engine == Engine.LOCAL:
        if address is not None or replicas is not None or resources is not None:
            raise UsageError("--ray-address, --replicas and --replica-resources are for --engine ray",
                             hint="add --engine ray, or drop them")
        return None
    from .stream.ray_cluster import RaySettings, parse_resources

    return RaySettings(address=address, replicas=replicas, resources=parse_resources(resources))
