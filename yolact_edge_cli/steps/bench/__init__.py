"""`yedge bench`: pure inference speed per batch size on synthetic input (like `ais_bench
--loop`), and for a video model its two passes and keyframe schedule; --stages the whole path
per image on prepared inputs; --stream the streaming engine's stages; --backends/--precisions a
table of speed against accuracy. One module per mode."""
from __future__ import annotations

from dataclasses import asdict

from ...backends.temporal import TemporalSession
from ...choices import Backend, Engine, Precision
from ...errors import UsageError
from ...precision import check as check_precision
from ...resolve import choose_backend, host_model, model_for, session_for
from ...stream.engine import engine_for, recipe_for
from ...workspace import Workspace, sha256_file
from .ascend import run_ascend
from .common import BenchOptions, BenchResult, append, host_sizes, sweep, time_batch
from .precisions import run_precisions, table_ran, table_request
from .stages import run_stages
from .stream import run_stream
from .video import time_video

__all__ = ["BenchOptions", "BenchResult", "run", "run_precisions", "table_ran", "table_request"]


def run(ws: Workspace, options: BenchOptions = BenchOptions()) -> BenchResult:
    """A video model's inference bench also times its two passes and its keyframe schedule at
    `keyframe_interval` (bench/video.py). Every run is drawn beside results/bench.json unless
    `pictures` is off."""
    options.check()
    backend = choose_backend(options.backend, options.model)
    if options.stages and backend == Backend.ASCEND.value:
        raise UsageError("--stages runs on the host backends", hint="use --backend onnxruntime or torch")
    if options.stream:
        batch = options.batch_sizes[0] if options.batch_sizes else None
        choice = model_for(ws, backend, options.model, batch, options.precision, options.device)
        result = BenchResult(backend=backend, device=options.device, model=str(choice.path),
                             model_sha256=sha256_file(choice.path) if choice.path.is_file() else "",
                             mode="stream" if options.engine == Engine.LOCAL.value else f"stream ({options.engine})",
                             workers=options.worker_count)
        engine = engine_for(ws, options.engine, options.ray, backend=backend, device=options.device,
                            workers=result.workers or 1)
        result.stages_ms = run_stream(ws, engine, recipe_for(ws, choice, options.device, batch), options.images)
        append(ws, result, options.pictures)
        return result
    if backend == Backend.ASCEND.value:
        result = run_ascend(ws, options)
        append(ws, result, options.pictures)
        return result
    if options.precision is not None:
        check_precision(backend, options.device, options.precision)
    choice = host_model(ws, backend, options.model, options.precision or Precision.FP32.value)
    source = choice.path
    result = BenchResult(backend=backend, device=options.device, model=str(source),
                         model_sha256=sha256_file(source) if source.is_file() else "",
                         mode="stages" if options.stages else "inference")
    if options.stages:
        result.workers = options.worker_count
        session = session_for(choice, device=options.device, batch_size=1, compiled=options.compiled)
        result.stages_ms, result.host_images_per_s = run_stages(ws, session, source, options.images, result.workers)
    else:
        session = session_for(choice, device=options.device, compiled=options.compiled,
                              keyframe_interval=options.keyframe_interval)
        static = session.info.batch_size
        sizes = host_sizes(result, options.batch_sizes, static, options.device)
        if static is not None:
            result.skipped += [f"batch {b}: the model has a static batch of {static} "
                               "(export with --dynamic-batch to sweep)" for b in sizes if b != static]
            sizes = tuple(b for b in sizes if b == static)
            if not sizes:
                raise UsageError(result.skipped[0], hint=f"use --batch-sizes {static}")
        budget = options.loop, options.warmup, options.max_seconds
        sweep(result, sizes, lambda batch: time_batch(session, batch, *budget))
        if isinstance(session, TemporalSession) and not result.interrupted:
            result.video = asdict(time_video(session, *budget))
    append(ws, result, options.pictures)
    return result
