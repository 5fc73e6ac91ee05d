"""The commands that run a model over images and measure it: predict, eval, bench."""
from __future__ import annotations

from pathlib import Path

import typer

from ..choices import AisBenchMode, Backend, Engine, MapKind, Nms
from ..draw import DrawStyle
from ..errors import Interrupted
from ..options import (
    AisBenchOption,
    BackendOption,
    BatchSizeOption,
    CompileFlag,
    DeviceOption,
    EngineOption,
    HalfFlag,
    KeyframeIntervalOption,
    ModelOption,
    NoPlots,
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
from ..render import emit, predict_problems
from ..steps.bench import BenchOptions
from ..steps.evaluate import EvalOptions, StreamOptions
from ..steps.predict import PredictOptions
from .app import Settings, command, emit_then_fail, failure


@command(locks=True, interrupted="interrupted; the drawn images already written are kept, videos "
                                 "and predictions.jsonl only come with a complete run (rerun it)")
def predict(
    ctx: typer.Context,
    sources: list[str] = typer.Argument(..., metavar="SOURCE...", help="Image files, folders, globs "
                                        "(quoted) and videos (mp4, avi, mov, mkv, webm and more); a camera "
                                        "index or stream URL too."),
    model: ModelOption = None,
    weights: Path | None = typer.Option(None, "--weights", help="A checkpoint to run in PyTorch "
                                        "instead of the exported model."),
    backend: BackendOption = Backend.AUTO,
    device: DeviceOption = PredictOptions.device,
    precision: PrecisionOption = None,
    batch_size: BatchSizeOption = None,
    score_threshold: ScoreThreshold = PredictOptions.score_threshold,
    top_k: int = typer.Option(PredictOptions.top_k, "--top-k", min=1, help="At most this many detections per image."),
    classes: str | None = typer.Option(None, "--classes", help="Only these classes, by name or index, "
                                       "e.g. person,car or 0,2 (the model's: COCO, or YouTube-VIS "
                                       "for a video model)."),
    line_width: int = typer.Option(DrawStyle.line_width, "--line-width", min=0,
                                   help="Box lines' width in pixels (0: no boxes)."),
    hide_labels: bool = flag("--hide-labels", help="Draw no class names (nor scores)."),
    hide_conf: bool = flag("--hide-conf", help="Draw the class names without their scores."),
    iou: float | None = typer.Option(None, "--iou", min=0.0, max=1.0, help="Detect's NMS IoU threshold "
                                     r"(on the host: not the detect layout) \[default: 0.5, the model's]."),
    save_txt: bool = flag("--save-txt", help="labels/NAME.txt per image or frame: YOLO segmentation "
                          "text (class index, then the mask's outline, normalised)."),
    save_masks: bool = flag("--save-masks", help="masks/NAME_K.png: one 0/255 PNG per detection."),
    keyframe_interval: KeyframeIntervalOption = None,
    vid_stride: int = typer.Option(PredictOptions.vid_stride, "--vid-stride", min=1, help="Run every N-th "
                                   "frame of each video (frame numbers and timestamps stay the source's; "
                                   "the video written plays at its rate / N)."),
    sequence: bool = flag("--sequence", help="Each SOURCE (a folder of frames, or a quoted pattern) is "
                          "one video, its image files in name order."),
    track: bool = flag("--track", help="Give each video's detections an identity across its frames "
                       "(ByteTrack; yedge\\[track]): track_id in predictions.jsonl, one colour each."),
    output: Path | None = typer.Option(None, "--output", "-o", help=r"Output folder \[default: "
                                       "predict/<name> in the workspace]."),
    name: str | None = typer.Option(None, "--name", help="Folder name under predict/ in the workspace "
                                    r"\[default: the first source's name, numbered when taken: clip_2, clip_3]."),
    exist_ok: bool = flag("--exist-ok", help="Write into an existing, non-empty --name or -o folder "
                          "(files of the same names are replaced)."),
    no_save_images: bool = flag("--no-save-images", help="Do not write the images drawn."),
    no_save_video: bool = flag("--no-save-video", help="Do not write the videos annotated."),
    no_save_json: bool = flag("--no-save-json", help="Do not write predictions.jsonl."),
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
    `yedge predict "shots/*.jpg" --weights yolact_edge.pth --score-threshold 0.5`,
    `yedge predict frames/ --sequence --keyframe-interval 5` (a video model's temporal reuse)."""
    from ..steps import predict as step

    settings: Settings = ctx.obj
    options = step.PredictOptions(
        model=model, weights=weights, backend=backend.value, device=device, precision=precision_of(precision, False),
        batch_size=batch_size, keyframe_interval=keyframe_interval, score_threshold=score_threshold, top_k=top_k,
        classes=tuple(c for c in classes.split(",") if c.strip()) if classes else None, iou=iou,
        recursive=recursive, sequence=sequence, vid_stride=vid_stride, track=track, output=output, name=name,
        exist_ok=exist_ok, save_images=not no_save_images, save_video=not no_save_video,
        save_json=not no_save_json, save_txt=save_txt, save_masks=save_masks,
        style=DrawStyle(line_width, labels=not hide_labels, confidence=not hide_conf), workers=workers,
        engine=engine.value, ray=ray_settings(engine, ray_address, replicas, replica_resources))
    result = step.run(settings.workspace, sources, options)
    emit_then_fail(settings, result, result.failure(skip_bad), then=lambda: predict_problems(result))


@command("eval", locks=True, interrupted="interrupted; no result file was written (they come with a "
                                          "complete run): rerun it")
def evaluate(
    ctx: typer.Context,
    outputs: Path | None = typer.Option(None, "--outputs", help="Run folder \\[default: the last infer run]."),
    annotations: Path | None = typer.Option(None, "--annotations", help="\\[default: what prep used]"),
    weights: Path | None = typer.Option(None, "--weights", help="Checkpoint for the host heads "
                                           "(fpn layout) \\[default: what export used]."),
    nms: Nms = typer.Option(Nms(EvalOptions.nms), "--nms",
                            help="fast (the recipe's) or traditional (yolact_edge's default)."),
    score_threshold: ScoreThreshold = EvalOptions.score_threshold,
    max_images: int | None = typer.Option(None, "--max-images", min=1, help="Only the first N images."),
    workers: Workers = None,
    fast_eval: bool = flag("--fast-eval", help="Use faster-coco-eval if installed."),
    no_plots: NoPlots = False,
    per_class: bool = flag("--per-class", help="Print the per-class AP table too (--json always holds it)."),
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
    keyframe_interval: KeyframeIntervalOption = None,
    model: ModelOption = None,
    backend: BackendOption = Backend.AUTO,
    device: DeviceOption = StreamOptions.device,
    precision: PrecisionOption = None,
    batch_size: BatchSizeOption = None,
    engine: EngineOption = Engine.LOCAL,
    ray_address: RayAddressOption = None,
    replicas: ReplicasOption = None,
    replica_resources: ReplicaResourcesOption = None,
) -> None:
    """Post-process outputs on the host, write COCO results, and report box and mask mAP; with
    --images (or --stream), run the model too, streamed, with no intermediate files."""
    from ..steps import evaluate as step

    settings: Settings = ctx.obj
    gates = step.Gates(min_map=min_map, map_kind=map_kind.value, against=against, tolerance=tolerance)
    streaming = step.streams(images=images, stream=stream, outputs=outputs, allow_missing=allow_missing,
                             skip_bad=skip_bad, precision=precision, keyframe_interval=keyframe_interval)
    ray = ray_settings(engine, ray_address, replicas, replica_resources, streaming=streaming,
                       stream_hint="add --images DIR or --stream")
    options = step.EvalOptions(annotations=annotations, weights=weights, nms=nms.value,
                               score_threshold=score_threshold, max_images=max_images, workers=workers,
                               fast_eval=fast_eval, pictures=not no_plots)
    if streaming:
        result = step.run_streaming(settings.workspace, images, options, step.StreamOptions(
            model=model, backend=backend.value, device=device, precision=precision_of(precision, False),
            batch_size=batch_size, keyframe_interval=keyframe_interval, engine=engine.value, ray=ray,
            skip_bad=skip_bad))
    else:
        result = step.run(settings.workspace, options, outputs=outputs, allow_missing=allow_missing)
    result.print_per_class = per_class
    emit_then_fail(settings, result, failure(lambda: gates.check(result)))


@command(locks=True)
def bench(
    ctx: typer.Context,
    backend: BackendOption = Backend.AUTO,
    model: ModelOption = None,
    batch_sizes: str | None = typer.Option(None, "--batch-sizes", help="Comma list, e.g. "
                                              "1,4,8,16,32,64 \\[default: the model's static batch; "
                                              "for a dynamic-batch model that list (1,4,8 on the CPU)]."),
    loop: int = typer.Option(BenchOptions.loop, "--loop", min=1, help="Timed runs per batch size."),
    warmup: int = typer.Option(BenchOptions.warmup, "--warmup", min=0, help="Untimed runs first."),
    max_seconds: float = typer.Option(BenchOptions.max_seconds, "--max-seconds", min=0.0, help="Time budget "
                                      "per batch size, warm-up included (at least one timed run)."),
    device: str = typer.Option(BenchOptions.device, "--device", help="cpu or cuda; for ascend an NPU id."),
    precision: PrecisionOption = None,
    half: HalfFlag = False,
    compiled: CompileFlag = False,
    stages: bool = flag("--stages", help="Time the whole path per image on prepared "
                                "inputs: read, inference, heads, Detect, masks, RLE/JSON; then "
                                "the images/s the host part sustains on 1 and on --workers workers."),
    num_images: NumImages = BenchOptions.images,
    ais_bench: AisBenchOption = AisBenchMode(BenchOptions.ais_bench),
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
    keyframe_interval: KeyframeIntervalOption = None,
    no_plots: NoPlots = False,
) -> None:
    """Measure throughput and latency per batch size (results appended to results/bench.json);
    with --backends/--precisions, one table of every pair's speed and agreement with fp32. A
    video model's bench also times its keyframe and non-keyframe passes and its frames/s at
    --keyframe-interval."""
    from ..steps import bench as step

    settings: Settings = ctx.obj
    sizes = parse_ints(batch_sizes) if batch_sizes else None
    table = step.table_request(backends, precisions, backend.value, stages=stages, stream=stream,
                               engine=engine.value, precision=precision_of(precision, half))
    if table is not None:
        result = step.run_precisions(settings.workspace, backends=table[0], precisions=table[1], device=device,
                                     batch_sizes=sizes, loop=loop, warmup=warmup, max_seconds=max_seconds,
                                     images=num_images, pictures=not no_plots)
        emit_then_fail(settings, result, failure(lambda: step.table_ran(result)))
        return
    ray = ray_settings(engine, ray_address, replicas, replica_resources, streaming=stream,
                        stream_hint="add --stream")
    try:
        result = step.run(settings.workspace, BenchOptions(
            backend=backend.value, model=model, device=device, precision=precision_of(precision, half),
            compiled=compiled, ais_bench=ais_bench.value, batch_sizes=sizes, loop=loop, warmup=warmup,
            max_seconds=max_seconds, keyframe_interval=keyframe_interval, stages=stages, stream=stream,
            images=num_images, workers=workers, engine=engine.value, ray=ray, pictures=not no_plots))
    except KeyboardInterrupt:
        raise Interrupted("interrupted before any measurement finished; nothing was written to "
                          "results/bench.json") from None
    emit(result, settings.json)
    if result.interrupted:
        raise Interrupted(f"interrupted after {len(result.rows)} batch size(s); their rows are "
                          "above and in results/bench.json")
