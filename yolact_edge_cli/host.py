"""The host part of the model as one object: for the fpn layout the prediction heads, then Detect
(unless the graph ends with it: the detect layout), then masks and boxes at an image's size, then
COCO entries (docs/model.md, Detect and masks).

`HostSpec` is the small picklable recipe; `HostPipeline(spec)` loads what it needs once (head
weights, priors), so a process pool builds one per worker and eval, compare, bench --stages (and
whatever comes later) share the same code without reaching into each other's state.
"""
from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass

import numpy as np

from .choices import Layout, Nms
from .errors import InputError
from .model.config import CONFIGS, DEFAULT_CONFIG
from .timing import StageTimes

HOST_STAGES = ("heads", "detect", "masks", "json")


def missing_heads() -> InputError:
    return InputError("the fpn layout's prediction heads run on the host and need their checkpoint",
                      hint="pass --weights with the .pth the model was exported from (or run `yedge export` "
                           "in this workspace)")


@dataclass(frozen=True)
class HostSpec:
    layout: str = Layout.FPN.value
    config: str = DEFAULT_CONFIG
    weights: str | None = None  # the checkpoint whose heads run here (fpn layout only)
    nms: str = Nms.FAST.value
    score_threshold: float = 0.0
    threads: int = 1
    iou: float | None = None  # Detect's NMS IoU threshold on the host (predict --iou); None: the config's


class HostPipeline:
    def __init__(self, spec: HostSpec):
        from .model.priors import make_priors
        from .parallel import limit_blas_threads

        # One BLAS thread: OpenBLAS's threaded products are not always bit for bit its
        # single-threaded ones, and the host's results must not depend on the worker count.
        limit_blas_threads(1)
        self.spec = spec
        self.cfg = CONFIGS[spec.config] if spec.iou is None else \
            dataclasses.replace(CONFIGS[spec.config], nms_thresh=spec.iou)
        self.priors = make_priors(self.cfg)
        self.heads = None
        if spec.layout == Layout.FPN.value:  # only reading the heads' checkpoint needs torch
            from .model.host_heads import HostHeads

            if spec.weights is None:
                raise missing_heads()
            self.heads = HostHeads.from_checkpoint(spec.weights, spec.config, spec.threads)

    def __call__(self, outputs: list, width: int, height: int, times: StageTimes | None = None):
        """One image's model outputs (batch dimension 1, float32 arrays) → an ImageResult at
        width × height; each stage's seconds are added to `times` when given."""
        from .model.detect import detect_image, device_detections
        from .model.masks import postprocess

        times = StageTimes() if times is None else times
        arrays = [np.asarray(o, dtype=np.float32) for o in outputs]
        on_device = self.spec.layout == Layout.DETECT.value  # heads and Detect ran there
        with times.time("heads"):
            if self.heads is not None:
                loc, conf, coef = self.heads(arrays[:5])
            elif not on_device:
                loc, conf, coef = arrays[0][0], arrays[1][0], arrays[2][0]
        with times.time("detect"):
            dets = device_detections(*(o[0] for o in arrays[:5])) if on_device else \
                detect_image(loc, conf, coef, self.priors, self.cfg, self.spec.nms)
        with times.time("masks"):
            return postprocess(dets, arrays[-1][0], width, height, self.spec.score_threshold)

    def to_coco(self, image_id: int, result, times: StageTimes | None = None) -> tuple[list[dict], list[dict], list]:
        """COCO bbox and mask entries of one image (the model's category ids), and the masks'
        RLEs (for matching)."""
        from .metrics.results import coco_entries, encode_masks

        with (StageTimes() if times is None else times).time("json"):
            rles = encode_masks(result)
            bbox, mask = coco_entries(image_id, result, rles, self.cfg.labels)
        return bbox, mask, rles


# The pipeline of a worker process of `sustained_rate` (built once per process by the pool).
_WORKER_PIPELINE: HostPipeline | None = None


def _start_worker(spec: HostSpec) -> None:
    global _WORKER_PIPELINE
    _WORKER_PIPELINE = HostPipeline(spec)


def _post_process_saved(task: tuple[str, int, int]) -> int:
    path, width, height = task
    with np.load(path) as saved:
        outputs = [saved[f"arr_{k}"] for k in range(len(saved.files))]
    assert _WORKER_PIPELINE is not None
    result = _WORKER_PIPELINE(outputs, width, height)
    _WORKER_PIPELINE.to_coco(0, result)
    return len(result)


def sustained_rate(spec: HostSpec, saved: list[tuple[str, int, int]], workers: int,
                   per_worker: int = 8) -> float:
    """Images per second the host part keeps up on `workers` processes of `spec.threads` threads
    each, as eval runs it: each image's model outputs read from a saved .npz (path, width,
    height), post-processed and turned into COCO entries. Timed over `per_worker` images per
    worker (the saved ones in turn), after every worker has built its pipeline. The workers are
    spawned: the caller has usually run torch on several threads already."""
    from .parallel import process_pool

    count = max(len(saved), workers * per_worker)
    tasks = (saved * math.ceil(count / len(saved)))[:count]
    with process_pool(workers, _start_worker, (spec,), start_method="spawn") as pool:
        list(pool.map(_post_process_saved, tasks[: 2 * workers]))
        started = time.perf_counter()
        list(pool.map(_post_process_saved, tasks))
        return count / (time.perf_counter() - started)
