"""The `yedge` command line: parses arguments, calls a step, prints its result. Nothing else."""
from __future__ import annotations

import functools
import inspect
import signal
import sys
from collections.abc import Callable
from contextvars import ContextVar
from pathlib import Path

import typer
from rich.markup import escape

from . import __version__
from .choices import (
    AisBenchMode,
    Backend,
    Engine,
    InputDtype,
    InputLayout,
    Layout,
    MapKind,
    Nms,
    Precision,
    PrecisionMode,
    QuantMethod,
)
from .console import err, out, print_json
from .errors import Interrupted, UsageError, YedgeError
from .model.config import DEFAULT_CONFIG, RANDOM_BG_BIAS, RANDOM_CONF_GAIN, RANDOM_MASK_BIAS
from .options import (
    AisBenchOption,
    BackendOption,
    BatchSizeOption,
    CompileFlag,
    DeviceOption,
    EngineOption,
    HalfFlag,
    JsonFlag,
    ModelOption,
    NumImages,
    PrecisionOption,
    RayAddressOption,
    ReplicaResourcesOption,
    ReplicasOption,
    ScoreThreshold,
    Workers,
    flag,
    parse_ints,
    precision_of,
    ray_settings,
)
from .render import emit, predict_problems
from .workspace import DEFAULT_WORKSPACE, Workspace

app = typer.Typer(
    name="yedge",
    help="YolactEdge from a PyTorch checkpoint to measured accuracy and speed, on an Ascend NPU "
         "or anywhere else. Steps share one workspace folder: export → prep → convert → infer → "
         "eval → bench.",
    no_args_is_help=True,
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["-h", "--help"]},
)


class Settings:
    """The global options of one invocation."""

    def __init__(self, workspace: Path, json_output: bool, verbose: bool):
        self.workspace = Workspace(workspace)
        self.json = json_output
        self.verbose = verbose


_settings: ContextVar[Settings | None] = ContextVar("yedge_settings", default=None)

def _version(value: bool) -> None:
    if value:
        out.print(f"yedge {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    ctx: typer.Context,
    workspace: Path = typer.Option(DEFAULT_WORKSPACE, "--workspace", "-w", envvar="YEDGE_WORKSPACE",
                                   help="Folder shared by all steps (models, inputs, outputs, results)."),
    json_output: JsonFlag = False,
    verbose: bool = flag("--verbose", "-v", help="Show tracebacks of internal errors."),
    version: bool | None = typer.Option(None, "--version", metavar="", callback=_version, is_eager=True,
                                           help="Print the version and exit."),
) -> None:
    ctx.obj = Settings(workspace, json_output, verbose)
    _settings.set(ctx.obj)
    if workspace.exists() and not workspace.is_dir():
        raise UsageError("the workspace is a file, not a folder", path=workspace,
                         hint="pass -w with a folder (it is created if missing)")


RESUMABLE = "interrupted; completed files are kept, rerun the step to resume"


def command(name: str | None = None, *, locks: bool = False, interrupted: str = RESUMABLE) -> Callable:
    """Register a command. Every command also takes --json after its name (`yedge eval --json`
    as well as `yedge --json eval`); those that write into the workspace (`locks`) hold its
    lock; Ctrl-C ends it with `interrupted` (what is kept). Failures go to the one error
    boundary, `main`."""

    def register(function: Callable) -> Callable:
        @functools.wraps(function)
        def wrapper(ctx: typer.Context, *args, json_output: bool = False, **kwargs):
            settings: Settings = ctx.obj
            settings.json = settings.json or json_output
            try:
                if not locks:
                    return function(ctx, *args, **kwargs)
                with settings.workspace.lock():
                    return function(ctx, *args, **kwargs)
            except KeyboardInterrupt:
                raise Interrupted(interrupted) from None

        signature = inspect.signature(function, eval_str=True)
        flag = inspect.Parameter("json_output", inspect.Parameter.KEYWORD_ONLY, default=False,
                                 annotation=JsonFlag)
        wrapper.__signature__ = signature.replace(  # type: ignore[attr-defined]
            parameters=[*signature.parameters.values(), flag])
        wrapper.__annotations__ = {**inspect.get_annotations(function, eval_str=True),
                                   "json_output": JsonFlag}
        return app.command(name)(wrapper)

    return register


def _error_line(error: YedgeError) -> str:
    """The one `error:` line on stderr; returns its text."""
    line = error.one_line()
    # escaped: paths and the tools' own lines hold [...] that Rich would take for style tags
    err.print(f"[bold red]error:[/] {escape(line)}", highlight=False, soft_wrap=True)
    return line


def _report(error: YedgeError) -> int:
    """One line on stderr (and JSON on stdout with --json); the exit code to end with."""
    line = _error_line(error)
    settings = _settings.get()
    if settings is not None and settings.json:
        print_json({"error": line, "exit_code": error.exit_code})
    return error.exit_code


def _failure(check: Callable[[], None]) -> YedgeError | None:
    """What a result's gate (exit 5 and the like) says of it, or None when it passes."""
    try:
        check()
    except YedgeError as failed:
        return failed
    return None


def _emit_then_fail(settings: Settings, result, failed: YedgeError | None,
                    then: Callable[[], None] = lambda: None) -> None:
    """The result, then its failure if any: with --json one document holding the error's keys
    too (stdout stays one JSON value), and the `error:` line on stderr either way."""
    if settings.json and failed:
        emit(result.to_dict() | {"error": failed.one_line(), "exit_code": failed.exit_code}, True)
    else:
        emit(result, settings.json)
    then()
    if failed is None:
        return
    if settings.json:  # the JSON already holds the error: the line only
        _error_line(failed)
        raise typer.Exit(failed.exit_code)
    raise failed


@command(locks=True, interrupted="interrupted; nothing was written (an export starts over): rerun it")
def export(
    ctx: typer.Context,
    weights: Path = typer.Option(..., "--weights", help="YolactEdge/YOLACT .pth checkpoint (a state_dict)."),
    config: str = typer.Option("auto", "--config", help="Model config, or 'auto' to pick the one "
                               "whose keys the checkpoint has: yolact_edge_resnet50_config, "
                               "yolact_edge_config (ResNet-101), yolact_edge_mobilenetv2_config."),
    batch_size: int = typer.Option(1, "--batch-size", "-b", min=1, help="Static batch dimension."),
    dynamic_batch: bool = flag("--dynamic-batch", help="Make the batch dimension dynamic."),
    opset: int = typer.Option(11, "--opset", min=11, help="ONNX opset (11 is what atc accepts)."),
    layout: Layout = typer.Option(Layout.FPN, "--layout", help="fpn: P3–P7 + proto, the Ascend "
                                  "recipe's six outputs; head: loc/conf/mask/proto, heads on the device "
                                  "too; detect: boxes/scores/classes/coefficients/count/proto, Detect "
                                  "(fast NMS, top 100) on the device too, the host left with the masks."),
    output: Path | None = typer.Option(None, "--output", "-o", help="Where to write the ONNX "
                                          "\\[default: WORKSPACE/models/yolact_edge.onnx]."),
    check_images: list[Path] | None = typer.Option(None, "--check-image", help="Image for the "
                                                    "onnxruntime-vs-PyTorch check; repeat it for several "
                                                    "\\[default: bundled photo]."),
    input_dtype: InputDtype = typer.Option(InputDtype.FLOAT32, "--input-dtype", help="float32 "
                                           "(normalised, the recipe's) or uint8 (RGB pixels; "
                                           "normalised in the graph)."),
) -> None:
    """Export a checkpoint to ONNX, check it, and compare it with PyTorch on a real image."""
    from .steps import export as step

    settings: Settings = ctx.obj
    result = step.run(settings.workspace, weights, config=config, batch_size=batch_size,
                      dynamic_batch=dynamic_batch, opset=opset, layout=layout.value, output=output,
                      check_images=check_images, input_dtype=input_dtype.value)
    emit(result, settings.json)


@command(locks=True, interrupted="interrupted; nothing was written (quantize starts over): rerun it")
def quantize(
    ctx: typer.Context,
    images: Path | None = typer.Option(None, "--images", help="Photos to calibrate on (any, no annotations) "
                                       "\\[default: the prepared inputs]."),
    num_images: int = typer.Option(100, "--num-images", "-n", min=1, help="Calibrate on at most this many "
                                   "(a few more are held out to check the result)."),
    method: QuantMethod = typer.Option(QuantMethod.MINMAX, "--method", help="How activation ranges are "
                                       "calibrated."),
    keep_float: list[str] | None = typer.Option(None, "--keep-float", help="Conv nodes whose name matches "
                                                "this pattern stay float; repeat it \\[default: the FPN "
                                                "and the prediction heads, as YolactEdge's recipe]."),
    quantize_all: bool = flag("--all", help="Quantize every Conv, the FPN and heads too."),
    min_cosine: float = typer.Option(0.999, "--min-cosine", min=-1.0, max=1.0, help="Fail (exit 5, "
                                     "nothing written) when an output's cosine to float32 is lower."),
    max_map_drop: float | None = typer.Option(None, "--max-map-drop", min=0.0, help="Fail (exit 5, nothing "
                                              "written) when INT8's box mAP on the held-out prepared "
                                              "images is more than this many points below float32's."),
    output: Path | None = typer.Option(None, "--output", "-o", help="Where to write the INT8 ONNX "
                                       "\\[default: WORKSPACE/models/yolact_edge_int8.onnx]."),
) -> None:
    """Write an INT8 model (QDQ, per-channel weights) of the exported ONNX, checked against float32
    on held-out images. Run it with `--precision int8` (infer, eval, predict, bench)."""
    from .steps import quantize as step

    settings: Settings = ctx.obj
    result = step.run(settings.workspace, images=images, num_images=num_images, method=method.value,
                      keep_float=keep_float, quantize_all=quantize_all, min_cosine=min_cosine,
                      max_map_drop=max_map_drop, output=output)
    emit(result, settings.json)


@command(locks=True)
def prep(
    ctx: typer.Context,
    images: Path = typer.Option(..., "--images", help="Folder of COCO images (e.g. val2017)."),
    annotations: Path = typer.Option(..., "--annotations", help="COCO instances_*.json."),
    limit: int | None = typer.Option(None, "--limit", min=1, help="Only the first N images."),
    workers: Workers = None,
    dtype: InputDtype = typer.Option(InputDtype.FLOAT32, "--dtype", help="float32 (the recipe's "
                                     ".bin) or uint8 (4× smaller; export with --input-dtype uint8)."),
    layout: InputLayout = typer.Option(InputLayout.NCHW, "--layout", help="nchw (the model's), or "
                                       "nhwc: uint8 HWC pixels for an .om converted with --aipp."),
    all_images: bool = flag("--all-images", help="Also images without annotations."),
    skip_bad: bool = flag("--skip-bad", help="Leave out unreadable images instead of failing."),
) -> None:
    """Preprocess COCO images into inputs/bin_file/<pos>.bin + inputs/ids.json (resumable)."""
    from .steps import prep as step

    settings: Settings = ctx.obj
    result = step.run(settings.workspace, images, annotations, limit=limit, workers=workers,
                      dtype=dtype.value, all_images=all_images, skip_bad=skip_bad, layout=layout.value)
    emit(result, settings.json)


@command(locks=True)
def convert(
    ctx: typer.Context,
    model: Path | None = typer.Option(None, "--model", help="ONNX \\[default: what export wrote]."),
    soc_version: str = typer.Option("auto", "--soc-version", help="auto (from npu-smi) or e.g. Ascend310P3."),
    batch_sizes: str = typer.Option("1", "--batch-sizes", "-b", help="Comma list: one .om per batch size."),
    dynamic_batch: str | None = typer.Option(None, "--dynamic-batch", help="Comma list, e.g. "
                                                "1,2,4,8: one dynamic-batch .om instead."),
    precision_mode: PrecisionMode | None = typer.Option(None, "--precision-mode", help="atc's "
                                                           "--precision_mode \\[atc's default: force_fp16]."),
    atc_arg: list[str] = typer.Option([], "--atc-arg", help="Extra argument passed to atc as is "
                                      "(repeat it), e.g. --atc-arg=--output_type=FP16."),
    aipp: bool = flag("--aipp", help="Normalise on the device with AIPP: the .om then "
                              "takes uint8 RGB HWC pixels (prep --dtype uint8 --layout nhwc)."),
    dry_run: bool = flag("--dry-run", help="Print the atc command lines; run nothing."),
    precision: PrecisionOption = None,
) -> None:
    """Convert the ONNX to .om with atc (soc_version from npu-smi), one model per batch size;
    --precision int8: the INT8 model of `yedge quantize`, through CANN's AMCT, then atc."""
    from .steps import convert as step

    settings: Settings = ctx.obj
    result = step.run(settings.workspace, model=model, soc_version=soc_version,
                      batch_sizes=parse_ints(batch_sizes, "--batch-sizes"),
                      dynamic_batch=parse_ints(dynamic_batch, "--dynamic-batch") if dynamic_batch else (),
                      precision_mode=precision_mode.value if precision_mode else None,
                      atc_args=tuple(atc_arg), aipp=aipp, dry_run=dry_run,
                      precision=precision.value if precision else None)
    emit(result, settings.json)


@command(locks=True)
def infer(
    ctx: typer.Context,
    backend: BackendOption = Backend.AUTO,
    model: ModelOption = None,
    device: DeviceOption = "cpu",
    precision: PrecisionOption = None,
    half: HalfFlag = False,
    compiled: CompileFlag = False,
    batch_size: BatchSizeOption = None,
    run_name: str | None = typer.Option(None, "--run", help="Output folder name under "
                                           "outputs/ \\[default: the backend's name]."),
    ais_bench: AisBenchOption = AisBenchMode.AUTO,
    overwrite: bool = flag("--overwrite", help="Replace a run folder's outputs of another model or other inputs."),
) -> None:
    """Run the model over the prepared inputs, writing ais_bench-style outputs (resumable)."""
    from .steps import infer as step

    settings: Settings = ctx.obj
    result = step.run(settings.workspace, backend=backend.value, model=model, device=device,
                      precision=precision_of(precision, half), batch_size=batch_size, run_name=run_name,
                      ais_bench=ais_bench.value, overwrite=overwrite, compiled=compiled)
    emit(result, settings.json)


@command(locks=True, interrupted="interrupted; the drawn images already written are kept, videos "
                                 "and predictions.jsonl only come with a complete run (rerun it)")
def predict(
    ctx: typer.Context,
    sources: list[str] = typer.Argument(..., metavar="SOURCE...", help="Image files, folders, globs "
                                        "(quoted) and videos (mp4, avi, mov, mkv, webm …); a camera "
                                        "index or stream URL too."),
    model: ModelOption = None,
    weights: Path | None = typer.Option(None, "--weights", help="A checkpoint to run in PyTorch "
                                        "instead of the exported model."),
    backend: BackendOption = Backend.AUTO,
    device: DeviceOption = "cpu",
    precision: PrecisionOption = None,
    batch_size: BatchSizeOption = None,
    score_threshold: ScoreThreshold = 0.3,
    top_k: int = typer.Option(100, "--top-k", min=1, help="At most this many detections per image."),
    classes: str | None = typer.Option(None, "--classes", help="Only these COCO classes, e.g. person,car."),
    output: Path | None = typer.Option(None, "--output", "-o", help=r"Output folder \[default: "
                                       "<workspace>/predict/<name>]."),
    name: str | None = typer.Option(None, "--name", help="Folder name under <workspace>/predict "
                                    r"\[default: the first source's name, numbered when taken: clip_2 …]."),
    exist_ok: bool = flag("--exist-ok", help="Write into an existing, non-empty --name or -o folder "
                          "(files of the same names are replaced)."),
    save_images: bool = typer.Option(True, "--save-images/--no-save-images", help="Write each image drawn."),
    save_video: bool = typer.Option(True, "--save-video/--no-save-video", help="Write each video annotated."),
    save_json: bool = typer.Option(True, "--save-json/--no-save-json", help="Write predictions.jsonl."),
    recursive: bool = flag("--recursive", "-r", help="Also the images and videos in sub-folders."),
    skip_bad: bool = flag("--skip-bad", help="Exit 0 even when some sources could not be read."),
    workers: Workers = None,
    engine: EngineOption = Engine.LOCAL,
    ray_address: RayAddressOption = None,
    replicas: ReplicasOption = None,
    replica_resources: ReplicaResourcesOption = None,
) -> None:
    """Run YolactEdge on your own images and videos: each one drawn (masks, boxes, classes,
    scores) and every detection in predictions.jsonl. No annotations needed.

    Examples: `yedge predict photos/`, `yedge predict clip.mp4 --classes person`,
    `yedge predict "shots/*.jpg" --weights yolact_edge.pth --score-threshold 0.5`."""
    from .steps import predict as step

    settings: Settings = ctx.obj
    result = step.run(settings.workspace, sources, model=model, weights=weights, backend=backend.value,
                      device=device, batch_size=batch_size, score_threshold=score_threshold, top_k=top_k,
                      classes=[c for c in classes.split(",") if c.strip()] if classes else None,
                      output=output, name=name, save_images=save_images, save_video=save_video,
                      save_json=save_json, recursive=recursive, workers=workers, exist_ok=exist_ok,
                      engine=engine.value, ray=ray_settings(engine, ray_address, replicas, replica_resources),
                      precision=precision_of(precision, False))
    _emit_then_fail(settings, result, result.failure(skip_bad), then=lambda: predict_problems(result))


@command("eval", locks=True, interrupted="interrupted; no result file was written (they come with a "
                                          "complete run): rerun it")
def evaluate(
    ctx: typer.Context,
    outputs: Path | None = typer.Option(None, "--outputs", help="Run folder \\[default: the last infer run]."),
    annotations: Path | None = typer.Option(None, "--annotations", help="\\[default: what prep used]"),
    weights: Path | None = typer.Option(None, "--weights", help="Checkpoint for the host heads "
                                           "(fpn layout) \\[default: what export used]."),
    nms: Nms = typer.Option(Nms.FAST, "--nms", help="fast (the recipe's) or traditional (yolact_edge's default)."),
    score_threshold: ScoreThreshold = 0.0,
    max_images: int | None = typer.Option(None, "--max-images", min=1, help="Only the first N images."),
    workers: Workers = None,
    fast_eval: bool = flag("--fast-eval", help="Use faster-coco-eval if installed."),
    allow_missing: bool = flag("--allow-missing", help="Evaluate only images that have outputs."),
    min_map: float | None = typer.Option(None, "--min-map", min=0.0, max=100.0, help="Fail (exit 5) "
                                            "when YOLACT's 'all' mAP of --map-kind is below this (points)."),
    map_kind: MapKind = typer.Option(MapKind.BOX, "--map-kind", help="box or mask, for --min-map."),
    against: Path | None = typer.Option(None, "--against", help="A previous metrics.json: fail "
                                           "(exit 5) when any reported mAP moved more than --tolerance."),
    tolerance: float = typer.Option(0.3, "--tolerance", min=0.0, help="mAP points allowed to move for --against."),
    images: Path | None = typer.Option(None, "--images", help="Stream these images (a COCO folder) "
                                       "through the model and the host in one pass: no prepared inputs, "
                                       "no run folder."),
    stream: bool = flag("--stream", help="Stream even where prepared inputs and a run folder exist "
                        "(the images prep used, unless --images)."),
    skip_bad: bool = flag("--skip-bad", help="Streaming: evaluate the other images when some cannot be read "
                          "(they are listed and left out)."),
    model: ModelOption = None,
    backend: BackendOption = Backend.AUTO,
    device: DeviceOption = "cpu",
    precision: PrecisionOption = None,
    batch_size: BatchSizeOption = None,
    engine: EngineOption = Engine.LOCAL,
    ray_address: RayAddressOption = None,
    replicas: ReplicasOption = None,
    replica_resources: ReplicaResourcesOption = None,
) -> None:
    """Post-process outputs on the host, write COCO results, and report box and mask mAP; with
    --images (or --stream), run the model too, streamed, with no intermediate files."""
    from .steps import evaluate as step

    settings: Settings = ctx.obj
    gates = step.Gates(min_map=min_map, map_kind=map_kind.value, against=against, tolerance=tolerance)
    streaming = step.streams(images=images, stream=stream, outputs=outputs, allow_missing=allow_missing,
                             skip_bad=skip_bad, precision=precision)
    ray = ray_settings(engine, ray_address, replicas, replica_resources, streaming=streaming,
                       stream_hint="add --images DIR or --stream")
    if streaming:
        result = step.run_streaming(settings.workspace, images, annotations=annotations, model=model,
                                    backend=backend.value, device=device, batch_size=batch_size,
                                    weights=weights, nms=nms.value, score_threshold=score_threshold,
                                    max_images=max_images, workers=workers, fast_eval=fast_eval,
                                    engine=engine.value, ray=ray, skip_bad=skip_bad,
                                    precision=precision_of(precision, False))
    else:
        result = step.run(settings.workspace, outputs=outputs, annotations=annotations, weights=weights,
                          nms=nms.value, score_threshold=score_threshold, max_images=max_images,
                          workers=workers, fast_eval=fast_eval, allow_missing=allow_missing)
    _emit_then_fail(settings, result, _failure(lambda: gates.check(result)))


@command(locks=True)
def bench(
    ctx: typer.Context,
    backend: BackendOption = Backend.AUTO,
    model: ModelOption = None,
    batch_sizes: str | None = typer.Option(None, "--batch-sizes", help="Comma list, e.g. "
                                              "1,4,8,16,32,64 \\[default: the model's static batch; "
                                              "for a dynamic-batch model that list (1,4,8 on the CPU)]."),
    loop: int = typer.Option(100, "--loop", min=1, help="Timed runs per batch size."),
    warmup: int = typer.Option(10, "--warmup", min=0, help="Untimed runs first."),
    max_seconds: float = typer.Option(60.0, "--max-seconds", min=0.0, help="Time budget per batch "
                                      "size, warm-up included (at least one timed run)."),
    device: str = typer.Option("cpu", "--device", help="cpu or cuda; for ascend an NPU id."),
    precision: PrecisionOption = None,
    half: HalfFlag = False,
    compiled: CompileFlag = False,
    stages: bool = flag("--stages", help="Time the whole path per image on prepared "
                                "inputs: read, inference, heads, Detect, masks, RLE/JSON; then "
                                "the images/s the host part sustains on 1 and on --workers workers."),
    num_images: NumImages = 10,
    ais_bench: AisBenchOption = AisBenchMode.AUTO,
    stream: bool = flag("--stream", help="Run the streaming pipeline (predict's, eval --images') on "
                        "the prepared images, else synthetic ones: busy ms per image of each stage "
                        "and the wall throughput, to see which stage bounds it."),
    workers: Workers = None,
    engine: EngineOption = Engine.LOCAL,
    ray_address: RayAddressOption = None,
    replicas: ReplicasOption = None,
    replica_resources: ReplicaResourcesOption = None,
    backends: str | None = typer.Option(None, "--backends", help="One table of speed against accuracy: "
                                        "these backends (comma list, e.g. onnxruntime,openvino) "
                                        "× --precisions, each compared with onnxruntime fp32 on "
                                        "--num-images prepared images."),
    precisions: str | None = typer.Option(None, "--precisions", help="With --backends: e.g. "
                                          "fp32,bf16,int8 (int8 needs `yedge quantize`) \\[default: fp32]."),
) -> None:
    """Measure throughput and latency per batch size (results appended to results/bench.json);
    with --backends/--precisions, one table of every pair's speed and agreement with fp32."""
    from .steps import bench as step

    settings: Settings = ctx.obj
    sizes = parse_ints(batch_sizes) if batch_sizes else None
    if backends is not None or precisions is not None:
        if stages or stream or engine != Engine.LOCAL or precision is not None or half or (
                backends is not None and backend != Backend.AUTO):
            raise UsageError("--backends/--precisions make their own table",
                             hint="drop --backend, --stages, --stream, --engine, --precision and --half")
        listed = backends.split(",") if backends else [backend.value]
        result = step.run_precisions(
            settings.workspace, backends=tuple(b.strip() for b in listed if b.strip()),
            precisions=tuple(p.strip() for p in (precisions or "fp32").split(",") if p.strip()),
            device=device, batch_sizes=sizes, loop=loop, warmup=warmup, max_seconds=max_seconds,
            images=num_images)
        emit(result, settings.json)
        return
    ray = ray_settings(engine, ray_address, replicas, replica_resources, streaming=stream,
                        stream_hint="add --stream")
    try:
        result = step.run(settings.workspace, backend=backend.value, model=model, device=device,
                          precision=precision_of(precision, half), batch_sizes=sizes, loop=loop, warmup=warmup,
                          max_seconds=max_seconds, stages=stages, images=num_images,
                          ais_bench=ais_bench.value, stream=stream, workers=workers, compiled=compiled,
                          engine=engine.value, ray=ray)
    except KeyboardInterrupt:
        raise Interrupted("interrupted before any measurement finished; nothing was written to "
                          "results/bench.json") from None
    emit(result, settings.json)
    if result.interrupted:
        raise Interrupted(f"interrupted after {len(result.rows)} batch size(s); their rows are "
                          "above and in results/bench.json")


@command()
def doctor(
    ctx: typer.Context,
    ray_address: str | None = typer.Option(None, "--ray-address", help="A Ray cluster to check: its "
                                           "live nodes and their resources \\[default: RAY_ADDRESS; "
                                           "unset: no cluster is checked]."),
) -> None:
    """Check this machine (Python, torch/CUDA, onnxruntime, pycocotools, Ray and its cluster,
    CANN, atc, npu-smi, ais_bench) and the workspace (steps done, stale artifacts)."""
    from .steps import doctor as step

    settings: Settings = ctx.obj
    result = step.run(settings.workspace, ray_address)
    emit(result, settings.json)
    raise typer.Exit(result.exit_code)


@command()
def compare(
    ctx: typer.Context,
    a: Path = typer.Argument(..., help="A model (.onnx, .pth, .om) or an outputs/<run> folder."),
    b: Path = typer.Argument(..., help="The reference to compare A with (same kinds)."),
    num_inputs: int = typer.Option(4, "--num-inputs", min=1, help="How many prepared inputs to compare on."),
    atol: float = typer.Option(1e-4, "--atol", min=0.0, help="Allowed absolute difference per output."),
    rtol: float = typer.Option(1e-3, "--rtol", min=0.0, help="Plus this times B's largest magnitude."),
    a_backend: Backend = typer.Option(Backend.AUTO, "--a-backend", show_default=False, help="What runs model A, "
                                      "e.g. openvino for an .onnx \\[default: by its suffix]."),
    a_precision: Precision = typer.Option(Precision.FP32, "--a-precision", help="Model A's precision."),
    b_backend: Backend = typer.Option(Backend.AUTO, "--b-backend", show_default=False, help="What runs model B "
                                      "\\[default: by its suffix]."),
    b_precision: Precision = typer.Option(Precision.FP32, "--b-precision", help="Model B's precision."),
) -> None:
    """Compare two models or runs: per-output errors and cosine, matched detections and IoUs
    (exit 5 over tolerance). E.g. one .onnx in OpenVINO bf16 against onnxruntime fp32:
    `yedge compare M.onnx M.onnx --a-backend openvino --a-precision bf16`."""
    from .steps import compare as step

    settings: Settings = ctx.obj
    runners = [step.Runner(None if backend == Backend.AUTO else backend.value, precision.value)
               for backend, precision in ((a_backend, a_precision), (b_backend, b_precision))]
    result = step.run(settings.workspace, a, b, inputs=num_inputs, atol=atol, rtol=rtol,
                      runner_a=runners[0], runner_b=runners[1])
    _emit_then_fail(settings, result, _failure(lambda: step.check(result, atol, rtol)))


@command(locks=True)
def show(
    ctx: typer.Context,
    num_images: NumImages = 8,
    ids: str | None = typer.Option(None, "--ids", help="Comma list of COCO image ids instead."),
    score_threshold: ScoreThreshold = 0.3,
    gt: bool = flag("--gt", help="Ground truth beside each picture."),
    output: Path | None = typer.Option(None, "--output", "-o", help="Folder \\[default: results/vis]."),
) -> None:
    """Draw detections (masks, boxes, classes, scores) on the images as PNGs, plus a contact sheet."""
    from .steps import show as step

    settings: Settings = ctx.obj
    chosen = list(parse_ints(ids, "--ids")) if ids else None
    result = step.run(settings.workspace, images=num_images, ids=chosen, score_threshold=score_threshold,
                      gt=gt, out=output)
    emit(result, settings.json)


@command("random-weights", interrupted="interrupted; nothing was written: rerun it")
def random_weights(
    ctx: typer.Context,
    output: Path = typer.Option(..., "--output", "-o", help="Where to write the .pth."),
    config: str = typer.Option(DEFAULT_CONFIG, "--config", help="Model config."),
    seed: int = typer.Option(0, "--seed", min=0, help="Seed of every key's generator."),
    conf_gain: float = typer.Option(RANDOM_CONF_GAIN, "--conf-gain", help="Gain of the class-score conv weights."),
    mask_bias: float = typer.Option(RANDOM_MASK_BIAS, "--mask-bias", help="Added to the mask-coefficient bias."),
    bg_bias: float = typer.Option(RANDOM_BG_BIAS, "--bg-bias", help="Added to the background class bias."),
) -> None:
    """Write the deterministic random checkpoint (for demos and tests: its mAP is ≈ 0)."""
    from .steps import random_weights as step

    settings: Settings = ctx.obj
    result = step.run(output, config=config, seed=seed, conf_gain=conf_gain,
                      mask_bias=mask_bias, bg_bias=bg_bias)
    emit(result, settings.json)


def _ignore_further_interrupts() -> None:
    """The interruption is reported and what it left is cleaned up; while the interpreter then
    shuts down (joining pools whose workers finish their current item) Python puts SIGINT back
    to its default, and a late Ctrl-C would end the process by the signal (exit −2) instead of
    130. Ignored from here on, it cannot."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def main() -> None:
    """The one error boundary. A YedgeError (a command's, or a usage error found while parsing:
    unknown option, value out of range, not one of the choices) ends as one `error:` line with
    its exit code; anything unexpected says so briefly, with the traceback only under --verbose."""
    from typer._click import exceptions as click_errors

    _settings.set(None)
    try:
        code = app(prog_name="yedge", standalone_mode=False)
    except click_errors.NoArgsIsHelpError as exc:
        exc.show()
        code = exc.exit_code
    except click_errors.UsageError as exc:
        where = exc.ctx.command_path if exc.ctx else "yedge"
        code = _report(UsageError(exc.format_message(), hint=f"see `{where} --help`"))
    except click_errors.ClickException as exc:
        exc.show()
        code = exc.exit_code
    except YedgeError as exc:
        code = _report(exc)
        if isinstance(exc, Interrupted):
            _ignore_further_interrupts()
    except typer.Abort:
        code = Interrupted.exit_code
        _ignore_further_interrupts()
    except Exception as exc:  # noqa: BLE001 - the last line of defence before a traceback
        settings = _settings.get()
        if settings is not None and settings.verbose:
            raise
        code = _report(YedgeError(f"internal error: {type(exc).__name__}: {exc} (rerun with "
                                  "--verbose for the traceback and report it)"))
    sys.exit(code or 0)


if __name__ == "__main__":
    main()
