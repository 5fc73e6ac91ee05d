"""bench --stream: the streaming engine's stages, busy milliseconds per image and wall throughput."""
from __future__ import annotations

import contextlib
import json
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ...console import progress_bar
from ...errors import InputError
from ...host import HOST_STAGES
from ...records import PrepRecord
from ...resolve import annotations_for, host_spec
from ...stream.items import Item
from ...timing import IMAGES_PER_SECOND, WALL, StageTimes
from ...workspace import Workspace

if TYPE_CHECKING:
    from ...stream import engine as streaming
    from ...stream.stages import SessionRecipe


STREAM_BENCH_STAGES = ("decode", "inference", *HOST_STAGES, "write")


def run_stream(ws: Workspace, engine: streaming.Engine, recipe: SessionRecipe, images: int) -> dict[str, float]:
    """The streaming pipeline on the prepared images (their first `images`), else on synthetic
    640×480 frames: each stage's busy milliseconds per image — decode+preprocess and the host
    stages run on `workers` processes each, inference and writing (COCO entries as JSON) in this
    one — and the pipeline's wall milliseconds per image. The stage whose busy time divided by
    its processes is largest bounds the wall time."""
    from ...metrics.results import coco_entries

    prep = ws.load(PrepRecord)
    if prep is not None and prep.images and Path(prep.images).is_dir():
        from ...data.coco import image_info, load_coco

        coco = load_coco(annotations_for(ws, None))
        infos = [image_info(coco, i) for i in ws.read_ids()[:images]]
        items = [Item(pos, str(Path(prep.images) / info.file_name), size=(info.width, info.height))
                 for pos, info in enumerate(infos)]
    else:
        rng = np.random.default_rng(0)
        items = [Item(i, "synthetic", i, pixels=rng.integers(0, 256, (480, 640, 3), dtype=np.uint8))
                 for i in range(images)]
    totals = StageTimes(dict.fromkeys(STREAM_BENCH_STAGES, 0.0))
    started = time.perf_counter()
    with engine.open(recipe, lambda info: host_spec(ws, info.layout)) as run, \
            contextlib.closing(run.predictions(items)) as predictions, \
            progress_bar(len(items), f"bench stream ({engine.where})") as advance:
        for prediction in predictions:
            if prediction.error is not None:
                raise InputError(prediction.error, path=prediction.item.source, hint="replace the image")
            assert prediction.detections is not None
            with totals.time("write"):
                json.dumps(coco_entries(prediction.item.index, prediction.detections))
            totals.add(prediction.times)
            advance(1)
    wall = time.perf_counter() - started
    stages = totals.ms_per(len(items))
    stages[WALL] = round(wall / len(items) * 1000, 2)
    stages[IMAGES_PER_SECOND] = round(len(items) / wall, 2)
    return stages
