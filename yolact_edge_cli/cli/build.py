"""The commands that make the models and inputs: export, quantize, prep, convert, infer."""
from __future__ import annotations

from pathlib import Path

import typer

from ..choices import AisBenchMode, Backend, InputDtype, InputLayout, Layout, Precision, PrecisionMode, QuantMethod
from ..options import (
    AisBenchOption,
    BackendOption,
    BatchSizeOption,
    CompileFlag,
    DeviceOption,
    HalfFlag,
    ModelOption,
    PrecisionOption,
    Workers,
    flag,
    parse_ints,
    precision_of,
)
from ..render import emit
from ..steps.convert import ConvertOptions
from ..steps.export import ExportOptions
from ..steps.infer import InferOptions
from ..steps.prep import PrepOptions
from ..steps.quantize import QuantizeOptions
from .app import Settings, command


@command(locks=True, interrupted="interrupted; nothing was written (an export starts over): rerun it")
def export(
    ctx: typer.Context,
    weights: Path = typer.Option(..., "--weights", help="YolactEdge/YOLACT .pth checkpoint (a state_dict)."),
    config: str = typer.Option(ExportOptions.config, "--config", help="Model config, or 'auto' to pick the one "
                               "whose keys the checkpoint has: the ResNet-50, ResNet-101 "
                               "(yolact_edge_config) and MobileNetV2 image configs and the video "
                               "configs yolact_edge_vid_*; their names: docs/model.md §1."),
    batch_size: int = typer.Option(ExportOptions.batch_size, "--batch-size", "-b", min=1,
                                   help="Static batch dimension."),
    dynamic_batch: bool = flag("--dynamic-batch", help="Make the batch dimension dynamic."),
    opset: int | None = typer.Option(None, "--opset", min=11, help="ONNX opset \\[default: 11, what "
                                     "atc accepts; 16 for a video checkpoint, whose warp needs GridSample]."),
    layout: Layout = typer.Option(Layout(ExportOptions.layout), "--layout", help="fpn: P3–P7 + proto, the Ascend "
                                  "recipe's six outputs; head: loc/conf/mask/proto, heads on the device "
                                  "too; detect: boxes, scores, classes, coefficients, count and proto, Detect "
                                  "(fast NMS, top 100) on the device too, the host left with the masks."),
    output: Path | None = typer.Option(None, "--output", "-o", help="Where to write the ONNX "
                                          "\\[default: yolact_edge.onnx in the workspace's models/]."),
    check_images: list[Path] | None = typer.Option(None, "--check-image", help="Image for the "
                                                    "onnxruntime-vs-PyTorch check; repeat it for several "
                                                    "\\[default: bundled photo]."),
    input_dtype: InputDtype = typer.Option(InputDtype(ExportOptions.input_dtype), "--input-dtype", help="float32 "
                                           "(normalised, the recipe's) or uint8 (RGB pixels; "
                                           "normalised in the graph)."),
) -> None:
    """Export a checkpoint to ONNX, check it, and compare it with PyTorch on a real image.

    A video checkpoint gives two graphs: the keyframe graph at --output, which also outputs the
    key state, and the non-keyframe graph beside it (NAME.nonkey.onnx), which takes it."""
    from ..steps import export as step

    settings: Settings = ctx.obj
    result = step.run(settings.workspace, weights, ExportOptions(
        config=config, layout=layout.value, batch_size=batch_size, dynamic_batch=dynamic_batch, opset=opset,
        input_dtype=input_dtype.value, output=output, check_images=tuple(check_images) if check_images else None))
    emit(result, settings.json)


@command(locks=True, interrupted="interrupted; nothing was written (quantize starts over): rerun it")
def quantize(
    ctx: typer.Context,
    images: Path | None = typer.Option(None, "--images", help="Photos to calibrate on (any, no annotations) "
                                       "\\[default: the prepared inputs]."),
    num_images: int = typer.Option(QuantizeOptions.num_images, "--num-images", "-n", min=1,
                                   help="Calibrate on at most this many (a few more are held out to "
                                        "check the result)."),
    method: QuantMethod = typer.Option(QuantMethod(QuantizeOptions.method), "--method",
                                       help="How activation ranges are calibrated."),
    keep_float: list[str] | None = typer.Option(None, "--keep-float", help="Conv nodes whose name matches "
                                                "this pattern stay float; repeat it \\[default: the FPN "
                                                "and the prediction heads, as YolactEdge's recipe]."),
    quantize_all: bool = flag("--all", help="Quantize every Conv, the FPN and heads too."),
    min_cosine: float = typer.Option(QuantizeOptions.min_cosine, "--min-cosine", min=-1.0, max=1.0,
                                     help="Fail (exit 5, nothing written) when an output's cosine "
                                          "to float32 is lower."),
    max_map_drop: float | None = typer.Option(None, "--max-map-drop", min=0.0, help="Fail (exit 5, nothing "
                                              "written) when INT8's box mAP on the held-out prepared "
                                              "images is more than this many points below float32's."),
    output: Path | None = typer.Option(None, "--output", "-o", help="Where to write the INT8 ONNX "
                                       "\\[default: yolact_edge_int8.onnx in the workspace's models/]."),
) -> None:
    """Write an INT8 model (QDQ, per-channel weights) of the exported ONNX, checked against float32
    on held-out images. Run it with `--precision int8` (infer, eval, predict, bench)."""
    from ..steps import quantize as step

    settings: Settings = ctx.obj
    result = step.run(settings.workspace, QuantizeOptions(
        images=images, num_images=num_images, method=method.value, keep_float=tuple(keep_float) if keep_float else None,
        quantize_all=quantize_all, min_cosine=min_cosine, max_map_drop=max_map_drop, output=output))
    emit(result, settings.json)


@command(locks=True)
def prep(
    ctx: typer.Context,
    images: Path = typer.Option(..., "--images", help="Folder of COCO images (e.g. val2017)."),
    annotations: Path = typer.Option(..., "--annotations", help="COCO instances_*.json."),
    limit: int | None = typer.Option(None, "--limit", min=1, help="Only the first N images."),
    workers: Workers = None,
    dtype: InputDtype = typer.Option(InputDtype(PrepOptions.dtype), "--dtype", help="float32 (the recipe's "
                                     ".bin) or uint8 (4× smaller; export with --input-dtype uint8)."),
    layout: InputLayout = typer.Option(InputLayout(PrepOptions.layout), "--layout", help="nchw (the model's), or "
                                       "nhwc: uint8 HWC pixels for an .om converted with --aipp."),
    all_images: bool = flag("--all-images", help="Also images without annotations."),
    skip_bad: bool = flag("--skip-bad", help="Leave out unreadable images instead of failing."),
) -> None:
    """Preprocess COCO images into inputs/bin_file/<pos>.bin + inputs/ids.json (resumable)."""
    from ..steps import prep as step

    settings: Settings = ctx.obj
    result = step.run(settings.workspace, images, annotations, PrepOptions(
        limit=limit, workers=workers, dtype=dtype.value, layout=layout.value, all_images=all_images,
        skip_bad=skip_bad))
    emit(result, settings.json)


@command(locks=True)
def convert(
    ctx: typer.Context,
    model: Path | None = typer.Option(None, "--model", help="ONNX \\[default: what export wrote]."),
    soc_version: str = typer.Option(ConvertOptions.soc_version, "--soc-version",
                                    help="auto (from npu-smi) or e.g. Ascend310P3."),
    batch_sizes: str = typer.Option(",".join(map(str, ConvertOptions.batch_sizes)), "--batch-sizes", "-b",
                                    help="Comma list: one .om per batch size."),
    dynamic_batch: str | None = typer.Option(None, "--dynamic-batch", help="Comma list, e.g. "
                                                "1,2,4,8: one dynamic-batch .om instead."),
    precision_mode: PrecisionMode | None = typer.Option(None, "--precision-mode", help="atc's "
                                                           "--precision_mode \\[atc's default: force_fp16]."),
    atc_arg: list[str] = typer.Option([], "--atc-arg", help="Extra argument passed to atc as is "
                                      "(repeat it), e.g. --atc-arg=--log=info."),
    aipp: bool = flag("--aipp", help="Normalise on the device with AIPP: the .om then "
                              "takes uint8 RGB HWC pixels (prep --dtype uint8 --layout nhwc)."),
    dry_run: bool = flag("--dry-run", help="Print the atc command lines; run nothing."),
    precision: Precision | None = typer.Option(None, "--precision", help="int8 only: the INT8 model "
                                               "of `yedge quantize`, through CANN's AMCT, then atc "
                                               "(fp16, fp32, bf16: --precision-mode)."),
) -> None:
    """Convert the ONNX to .om with atc (soc_version from npu-smi), one model per batch size;
    --precision int8: the INT8 model of `yedge quantize`, through CANN's AMCT, then atc."""
    from ..steps import convert as step

    settings: Settings = ctx.obj
    result = step.run(settings.workspace, ConvertOptions(
        model=model, soc_version=soc_version, batch_sizes=parse_ints(batch_sizes, "--batch-sizes"),
        dynamic_batch=parse_ints(dynamic_batch, "--dynamic-batch") if dynamic_batch else (),
        precision_mode=precision_mode.value if precision_mode else None,
        precision=precision.value if precision else None, aipp=aipp, atc_args=tuple(atc_arg), dry_run=dry_run))
    emit(result, settings.json)


@command(locks=True)
def infer(
    ctx: typer.Context,
    backend: BackendOption = Backend(InferOptions.backend),
    model: ModelOption = None,
    device: DeviceOption = InferOptions.device,
    precision: PrecisionOption = None,
    half: HalfFlag = False,
    compiled: CompileFlag = False,
    batch_size: BatchSizeOption = None,
    run_name: str | None = typer.Option(None, "--run", help="Output folder name under "
                                           "outputs/ \\[default: the backend's name]."),
    ais_bench: AisBenchOption = AisBenchMode(InferOptions.ais_bench),
    overwrite: bool = flag("--overwrite", help="Replace a run folder's outputs of another model or other inputs."),
) -> None:
    """Run the model over the prepared inputs, writing ais_bench-style outputs (resumable)."""
    from ..steps import infer as step

    settings: Settings = ctx.obj
    result = step.run(settings.workspace, InferOptions(
        backend=backend.value, model=model, device=device, precision=precision_of(precision, half),
        batch_size=batch_size, compiled=compiled, ais_bench=ais_bench.value, run_name=run_name,
        overwrite=overwrite))
    emit(result, settings.json)
