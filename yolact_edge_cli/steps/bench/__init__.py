"""`yedge bench`: pure inference speed per batch size on synthetic input (like `ais_bench
--loop`), and for a video model its two passes and keyframe schedule; --stages the whole path
per image on prepared inputs; --stream the streaming engine's stages; --backends/--precisions a
table of speed against accuracy. One module per mode."""
from __future__ import annotations

import os
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

from ...backends.temporal import TemporalSession
from ...choices import Backend, Engine, Precision
from ...errors import UsageError
from ...precision import check as check_precision
from ...resolve import choose_backend, host_model, model_for, session_for
from ...stream.engine import engine_for, recipe_for
from ...workspace import Workspace, sha256_file
from .ascend import run_ascend
from .common import BenchResult, append, host_sizes, sweep, time_batch
from .precisions import run_precisions, table_ran, table_request
from .stages import run_stages
from .stream import run_stream
from .video import time_video

if TYPE_CHECKING:
    from ...stream.ray_cluster import RaySettings


__all__ = ["BenchResult", "run", "run_precisions", "table_ran", "table_request"]


def run(ws: Workspace, *, backend: str = "auto", model: Path | None = None, device: str = "cpu",
        precision: str | None = None, batch_sizes: tuple[int, ...] | None = None, loop: int = 100,
        warmup: int = 10, max_seconds: float = 60.0, stages: bool = False,
        images: int = 10, ais_bench: str = "auto", stream: bool = False,
        workers: int | None = None, compiled: bool = False, engine: str = Engine.LOCAL.value,
        ray: RaySettings | None = None, keyframe_interval: int | None = None, pictures: bool = True) -> BenchResult:
    """A video model's inference bench also times its two passes and its keyframe schedule at
    `keyframe_interval` (bench/video.py). Every run is drawn beside results/bench.json unless
    `pictures` is off."""
    backend = choose_backend(backend, model)
    if loop < 1 or warmup < 0:
        raise UsageError("--loop must be ≥ 1 and --warmup ≥ 0", hint="e.g. --loop 100 --warmup 10")
    if stream:
        if stages:
            raise UsageError("--stream and --stages are two views of the whole path", hint="pick one")
        batch = batch_sizes[0] if batch_sizes else None
        choice = model_for(ws, backend, model, batch, precision, device)
        result = BenchResult(backend=backend, device=device, model=str(choice.path),
                             model_sha256=sha256_file(choice.path) if choice.path.is_file() else "",
                             mode="stream" if engine == Engine.LOCAL.value else f"stream ({engine})",
                             workers=max(1, workers or os.cpu_count() or 1))
        result.stages_ms = run_stream(ws, engine_for(ws, engine, ray, backend=backend, device=device,
                                                          workers=result.workers or 1),
                                   recipe_for(ws, choice, device, batch), images)
        append(ws, result, pictures)
        return result
    if backend == Backend.ASCEND.value:
        if stages:
            raise UsageError("--stages runs on the host backends", hint="use --backend onnxruntime or torch")
        result = run_ascend(ws, model, device, batch_sizes, loop, warmup, max_seconds, ais_bench)
        append(ws, result, pictures)
        return result
    if precision is not None:
        check_precision(backend, device, precision)
    choice = host_model(ws, backend, model, precision or Precision.FP32.value)
    source = choice.path
    result = BenchResult(backend=backend, device=device, model=str(source),
                         model_sha256=sha256_file(source) if source.is_file() else "",
                         mode="stages" if stages else "inference")
    if stages:
        result.workers = max(1, workers or os.cpu_count() or 1)
        result.stages_ms, result.host_images_per_s = run_stages(
            ws, session_for(choice, device=device, batch_size=1, compiled=compiled), source, images,
            result.workers)
    else:
        session = session_for(choice, device=device, compiled=compiled, keyframe_interval=keyframe_interval)
        static = session.info.batch_size
        sizes = host_sizes(result, batch_sizes, static, device)
        if static is not None:
            result.skipped += [f"batch {b}: the model has a static batch of {static} "
                               "(export with --dynamic-batch to sweep)" for b in sizes if b != static]
            sizes = tuple(b for b in sizes if b == static)
            if not sizes:
                raise UsageError(result.skipped[0], hint=f"use --batch-sizes {static}")
        sweep(result, sizes, lambda batch: time_batch(session, batch, loop, warmup, max_seconds))
        if isinstance(session, TemporalSession) and not result.interrupted:
            result.video = asdict(time_video(session, loop, warmup, max_seconds))
    append(ws, result, pictures)
    return result
