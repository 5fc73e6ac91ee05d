"""The stages every engine runs, as plain functions of picklable arguments, so a worker process
or a Ray task runs the same code as this one: decode + preprocess an item, run a group of items
through a session, post-process one item's outputs on the host."""
from __future__ import annotations

import dataclasses
import multiprocessing.util
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np

from ..backends import ModelInfo, Session, timed_run
from ..backends.temporal import TemporalSession
from ..choices import InputLayout
from ..data import binio
from ..errors import InputError, UsageError
from ..host import HostPipeline, HostSpec
from ..metrics.results import Detections
from ..resolve import ModelChoice, session_for
from ..timing import StageTimes
from .items import Item, Prediction

# The host part a run gives its outputs: a HostSpec, or None where each prediction carries the
# model's outputs themselves (infer)
HostT = TypeVar("HostT", bound=HostSpec | None)

# Niceness of the pools' workers. On a CPU backend the inference's threads share the cores with
# them, and an inference thread that waits for a core holds up all of its op's threads: the
# workers take what the inference leaves (docs/architecture.md, Streaming).
WORKER_NICENESS = 10


def behind_inference() -> None:
    os.nice(WORKER_NICENESS)


@dataclass(frozen=True)
class SessionRecipe:
    """What opens a replica's session wherever it runs (this process, a worker process, a Ray
    actor): picklable, so every engine builds its sessions itself. `log`: where a device
    library's own stdout lines go in a process of their own (ais_bench's aclruntime)."""

    choice: ModelChoice
    device: str = "cpu"
    batch_size: int | None = None
    log: Path | None = None
    keyframe_interval: int | None = None  # a video model's (None: the reference's)
    compiled: bool = False  # torch.compile (the torch backend on CUDA)

    def on(self, device: str) -> SessionRecipe:
        return dataclasses.replace(self, device=device)

    def open(self) -> Session:
        return session_for(self.choice.absolute(), device=self.device, batch_size=self.batch_size,
                           compiled=self.compiled, keyframe_interval=self.keyframe_interval)

    def open_in_worker(self) -> Session:
        """The one session of a worker process that runs nothing else (a replica, a device),
        opened by its first task and kept for the rest, closed when the process ends; the
        device library's stdout lines go to the log, not the command's stdout."""
        global _worker_session
        if _worker_session is None:
            if self.log is not None:
                self.log.parent.mkdir(parents=True, exist_ok=True)
                log = os.open(self.log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
                os.dup2(log, 1)
                os.close(log)
            session = self.open()
            multiprocessing.util.Finalize(session, session.close, exitpriority=10)
            _worker_session = session
        return _worker_session


_worker_session: Session | None = None  # this worker process's (SessionRecipe.open_in_worker)


@dataclass(frozen=True)
class PrepareSpec:
    input_dtype: str
    input_layout: str
    keep_image: bool


def prepare_item(item: Item, spec: PrepareSpec) -> tuple[Prediction, np.ndarray | None]:
    """Decode (cv2.imread's rules) and preprocess exactly as `prep` does; a prepared sample
    (infer's .bin) is read as it is, and a wrong one fails the run (nothing to skip it for)."""
    from ..data.preprocess import prepare, read_image, sample_shape

    started = time.perf_counter()
    bare = dataclasses.replace(item, pixels=None)
    if item.prepared:
        tensor = binio.read_sample(Path(item.source), np.dtype(spec.input_dtype), sample_shape(spec.input_layout))
        return Prediction(bare, times={"decode": time.perf_counter() - started}), tensor
    if item.error is not None:
        return Prediction(bare, error=item.error), None
    try:
        image = item.pixels if item.pixels is not None else read_image(item.source)
    except InputError as exc:
        return Prediction(bare, error=exc.message), None
    tensor = prepare(image, spec.input_dtype, spec.input_layout)
    width, height = item.size or (image.shape[1], image.shape[0])
    return Prediction(bare, width, height, image=image if spec.keep_image else None,
                      decoded=(image.shape[1], image.shape[0]),
                      times={"decode": time.perf_counter() - started}), tensor


def batching(info: ModelInfo, batch_size: int | None, keep_images: bool) -> tuple[int, PrepareSpec]:
    """What the session's model decides for every engine: the batch to run (a static one, which
    --batch-size must not contradict) and how to prepare each image for it (dtype, layout)."""
    if info.batch_size is not None and batch_size not in (None, info.batch_size):
        raise UsageError(f"the model has a static batch of {info.batch_size}, not {batch_size}",
                         hint="drop --batch-size, or export with --dynamic-batch")
    layout = InputLayout.NHWC.value if info.sample_shape[-1] == 3 else InputLayout.NCHW.value
    return info.batch_size or batch_size or 1, PrepareSpec(info.input_dtype, layout, keep_images)


Pair = tuple[Prediction, np.ndarray | None]  # a prepared item and its tensor (None: it failed)


def run_group(session: Session, group: list[Pair], batch_size: int) -> list[tuple[Prediction, list | None]]:
    """One batch through the session (padded with copies of its first input, as ais_bench
    pads); each good item's outputs with its batch dimension, the batch's run times on its first
    good item; failed items as they are. Items are told apart by their place in the group, not
    their index (Ray's numbers them later). A video model's frames run one by one (its state);
    still images batch as any model's, each a keyframe."""
    good = [k for k, (_, tensor) in enumerate(group) if tensor is not None]
    outputs_at: dict[int, list[np.ndarray]] = {}
    if isinstance(session, TemporalSession) and any(group[k][0].item.rank is not None for k in good):
        _run_frames(session, group, good, outputs_at)
    elif good:
        tensors = [tensor for _, tensor in group if tensor is not None]
        started = time.perf_counter()
        outputs, times = timed_run(session, np.stack(tensors + [tensors[0]] * (batch_size - len(tensors))))
        share = (time.perf_counter() - started) / len(good)
        group[good[0]][0].batch_times = times
        for j, k in enumerate(good):
            outputs_at[k] = [np.ascontiguousarray(o[j:j + 1]) for o in outputs]
            group[k][0].times["inference"] = share
            if isinstance(session, TemporalSession):
                group[k][0].keyframe = True
    return [(prediction, outputs_at.get(k)) for k, (prediction, _) in enumerate(group)]


def _run_frames(session: TemporalSession, group: list[Pair], good: list[int],
                outputs_at: dict[int, list[np.ndarray]]) -> None:
    """A video model's group, one item after the other (docs/video.md §5): each frame as its
    video's schedule says, each still image as a keyframe."""
    for k in good:
        prediction, tensor = group[k]
        assert tensor is not None
        started = time.perf_counter()
        outputs_at[k], prediction.keyframe = session.run_frame(tensor[None], prediction.item.unit,
                                                               prediction.item.rank)
        prediction.times["inference"] = time.perf_counter() - started


# One per host worker process, built for the first image it post-processes.
_host: HostPipeline | None = None


def post(spec: HostSpec, outputs: list[np.ndarray], width: int, height: int) -> tuple[Detections, dict[str, float]]:
    global _host
    if _host is None or _host.spec != spec:
        _host = HostPipeline(spec)
    times = StageTimes()
    result = _host(outputs, width, height, times)
    with times.time("json"):
        detections = Detections.of(result)
    return detections, times


def finish(prediction: Prediction, outputs: list | None, host: HostSpec | None) -> Prediction:
    """A prediction with its host part done (where it has outputs), or with its outputs as the
    model gave them where the run has no host part (infer)."""
    if outputs is None:
        return prediction
    if host is None:
        prediction.outputs = outputs
    else:
        prediction.detections, host_times = post(host, outputs, prediction.width, prediction.height)
        prediction.times.update(host_times)
    return prediction
