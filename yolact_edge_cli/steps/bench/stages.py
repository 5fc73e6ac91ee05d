"""bench --stages: the whole path per image on prepared inputs, and what the host part sustains."""
from __future__ import annotations

import os
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from ...console import progress_bar, stage
from ...data.preprocess import sample_shape
from ...errors import InputError
from ...host import HOST_STAGES, HostPipeline, sustained_rate
from ...records import PrepRecord
from ...resolve import annotations_for, host_spec, model_outputs
from ...timing import HOST_TOTAL, StageTimes
from ...workspace import Workspace


def run_stages(ws: Workspace, session, source: Path, images: int, workers: int) -> tuple[dict, dict]:
    """Per-image milliseconds of each stage of the whole path on the first prepared inputs (one
    host worker with every core's thread, as `eval --workers 1`; the first image is run once
    untimed), and the images per second the host part sustains on 1 and on `workers` worker
    processes (the model's outputs saved in a temporary folder, read back as eval reads them)."""
    import tempfile

    from ...data import binio
    from ...data.coco import image_info, load_coco

    ids = ws.read_ids()[:images]
    if not ids:
        raise InputError("no prepared inputs", path=ws.ids_path, hint="run `yedge prep` first")
    dtype = (ws.load(PrepRecord) or PrepRecord()).dtype
    cores = os.cpu_count() or 1
    spec = host_spec(ws, session.info.layout, threads=cores, outputs_of=model_outputs(ws, source))
    pipeline = HostPipeline(spec)
    coco = load_coco(annotations_for(ws, None))
    totals = StageTimes()
    files = binio.list_input_files(ws.bin_dir)
    with tempfile.TemporaryDirectory(prefix="yedge-bench-") as folder:
        saved: list[tuple[str, int, int]] = []
        with progress_bar(len(ids), "bench stages") as advance:
            for pos, image_id in enumerate(ids):
                t = time.perf_counter()
                data = binio.read_batch(binio.group([files[pos]], 1)[0], np.dtype(dtype), sample_shape())
                read = time.perf_counter() - t
                t = time.perf_counter()
                outputs = session.run(data)
                inference = time.perf_counter() - t
                times = StageTimes(read=read, inference=inference)
                info = image_info(coco, image_id)
                if pos == 0:  # warm-up: first calls fill caches and start thread pools
                    pipeline.to_coco(image_id, pipeline(outputs, info.width, info.height))
                pipeline.to_coco(image_id, pipeline(outputs, info.width, info.height, times), times)
                totals.add(times)
                np.savez(Path(folder) / f"{pos}.npz", *outputs)
                saved.append((str(Path(folder) / f"{pos}.npz"), info.width, info.height))
                advance(1)
        with stage(f"host part on 1 and {workers} worker(s)"):
            rates = {f"{n} worker{'s' if n > 1 else ''}": round(sustained_rate(
                replace(spec, threads=max(1, cores // n)), saved, n), 2) for n in sorted({1, workers})}
    stages = totals.ms_per(len(ids))
    stages[HOST_TOTAL] = round(sum(stages[k] for k in HOST_STAGES), 2)
    return stages, rates
