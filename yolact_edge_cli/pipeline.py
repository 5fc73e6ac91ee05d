"""Streaming inference: items (images or video frames) → decode + preprocess in worker processes
→ batches of the session's size → the session → host post-processing in worker processes → the
caller, in source order, with no file in between (docs/architecture.md, "Streaming").

One thread drives it: the worker pools run while the session computes, and the session runs while
the pools work, so the stages overlap; each stage keeps at most `window` items in flight, so
memory is bounded by the windows, not by the number of images.
"""
from __future__ import annotations

import contextlib
import dataclasses
import functools
import os
import time
from collections import deque
from collections.abc import Callable, Generator, Iterable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from .backends import ModelInfo, Session
from .choices import Engine, InputLayout
from .errors import InputError, UsageError
from .host import HostPipeline, HostSpec
from .metrics.results import Detections
from .parallel import process_pool
from .timing import StageTimes

if TYPE_CHECKING:
    from .ray_engine import RaySettings, RayStream
    from .workspace import Workspace


@dataclass(frozen=True)
class Item:
    """One image file, or one frame of a video (its pixels already decoded by the reader)."""

    index: int                       # position in the stream
    source: str
    frame: int | None = None         # frame number in a video
    pixels: np.ndarray | None = None  # BGR frame of a video; image files are decoded in a worker
    size: tuple[int, int] | None = None  # (width, height) to give results at, when not the image's own
    error: str | None = None         # why the source gave no (more) pictures: a video that stopped early


@dataclass(frozen=True)
class VideoSource:
    """A video (file, camera or stream) read frame by frame where the engine reads: in this
    process for the local engine, in a Ray task for --engine ray. `expected`: its frame count,
    when the container says, to tell a video that stops early."""

    source: str
    expected: int | None = None


def frames_of(video: VideoSource) -> Iterator[Item]:
    """Its frames as items (index 0: the stream numbers them), then one item carrying the error
    when it could not be opened again or stopped before its frame count."""
    from .data.sources import open_video

    opened = open_video(video.source)
    if isinstance(opened, str):
        yield Item(0, video.source, error=opened)
        return
    read = 0
    for pixels in opened.frames():
        yield Item(0, video.source, read, pixels)
        read += 1
    if video.expected is not None and read < video.expected:
        yield Item(0, video.source, error=f"stopped after {read} of its {video.expected} frames")


def numbered(units: Iterable[Item | VideoSource]) -> Iterator[Item]:
    """Images as they are and videos as their frames, numbered in stream order."""
    index = 0
    for unit in units:
        for item in frames_of(unit) if isinstance(unit, VideoSource) else (unit,):
            yield dataclasses.replace(item, index=index)
            index += 1


@dataclass
class Prediction:
    """What comes out of the pipeline for one item, in source order."""

    item: Item
    width: int = 0
    height: int = 0
    detections: Detections | None = None
    image: np.ndarray | None = None   # the decoded BGR image, when asked for (to draw on)
    error: str | None = None          # why this item could not be run (unreadable image …)
    decoded: tuple[int, int] | None = None  # the decoded image's (width, height)
    # seconds each stage spent on it: decode (+ preprocess), inference (its share of the batch),
    # and the host's (heads, detect, masks, json)
    times: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class PrepareSpec:
    input_dtype: str
    input_layout: str
    keep_image: bool


def prepare_item(item: Item, spec: PrepareSpec) -> tuple[Prediction, np.ndarray | None]:
    """Decode (cv2.imread's rules) and preprocess exactly as `prep` does."""
    from .data.preprocess import prepare, read_image

    started = time.perf_counter()
    bare = Item(item.index, item.source, item.frame, size=item.size)
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


def _warm() -> None:
    """Nothing: submitted once per worker so the pool starts its processes now."""


def _ordered(pool, function: Callable, tasks: Iterable, window: int) -> Iterator:
    """`function` over `tasks` in the pool, results in task order, at most `window` in flight."""
    pending: deque[Future] = deque()
    for task in tasks:
        pending.append(pool.submit(function, *task))
        if len(pending) >= window:
            yield pending.popleft().result()
    while pending:
        yield pending.popleft().result()


# Niceness of the pools' workers. On a CPU backend the inference's threads share the cores with
# them, and an inference thread that waits for a core holds up all of its op's threads: the
# workers take what the inference leaves (docs/architecture.md, Streaming).
WORKER_NICENESS = 10


def _behind_inference() -> None:
    os.nice(WORKER_NICENESS)


@dataclass
class Stream:
    """The pipeline's settings: the batch (for a dynamic-batch model), the workers per pool, and
    whether the decoded images come back (to be drawn on)."""

    batch_size: int | None = None
    workers: int = 1
    keep_images: bool = False
    window: int = 0  # items in flight per stage; 0: four batches' worth, at least two per worker
    info: ModelInfo | None = None  # the session's, once it is open
    session_device: str = "cpu"  # the device the session passed to `run` opens
    # what running the session in this process needs (resolve.in_process), entered by `run`
    around_session: Callable[[], contextlib.AbstractContextManager] | None = None
    ran_on: str | None = None  # the open session's device (an NPU's id, say)

    def run(self, items: Iterable[Item | VideoSource], open_session: Callable[[], Session],
            host_for: Callable[[ModelInfo], HostSpec]) -> Generator[Prediction, None, None]:
        """Predictions for `items` (for a video: each of its frames), in their order. The pools
        start before the session opens, so no worker is forked from a process whose runtime
        threads are already running; what the model takes (dtype, layout, batch) and the host
        part are read from the session."""
        with contextlib.ExitStack() as stack:
            if self.around_session is not None:
                stack.enter_context(self.around_session())
            prep_pool = stack.enter_context(process_pool(self.workers, _behind_inference))
            host_pool = stack.enter_context(process_pool(self.workers, _behind_inference))
            for pool in (prep_pool, host_pool):
                for started in [pool.submit(_warm) for _ in range(self.workers)]:
                    started.result()
            session = open_session()
            stack.callback(session.close)
            self.ran_on = session.device
            info = self.info = session.info
            batch_size, prepare_spec = batching(info, self.batch_size, self.keep_images)
            host = host_for(info)
            window = self.window or max(4 * batch_size, 2 * self.workers, 2)
            prepared = _ordered(prep_pool, prepare_item, ((item, prepare_spec) for item in numbered(items)), window)
            done: deque[tuple[Prediction, Future | None]] = deque()
            for group in _groups(prepared, batch_size):
                for prediction, outputs in run_batch(session, group, batch_size):
                    future = None if outputs is None else host_pool.submit(
                        post, host, outputs, prediction.width, prediction.height)
                    done.append((prediction, future))
                while done and (len(done) > window or done[0][1] is None or done[0][1].done()):
                    yield _finish(*done.popleft())
            while done:
                yield _finish(*done.popleft())


def batching(info: ModelInfo, batch_size: int | None, keep_images: bool) -> tuple[int, PrepareSpec]:
    """What the session's model decides for either engine: the batch to run (a static one, which
    --batch-size must not contradict) and how to prepare each image for it (dtype, layout)."""
    if info.batch_size is not None and batch_size not in (None, info.batch_size):
        raise UsageError(f"the model has a static batch of {info.batch_size}, not {batch_size}",
                         hint="drop --batch-size, or export with --dynamic-batch")
    layout = InputLayout.NHWC.value if info.sample_shape[-1] == 3 else InputLayout.NCHW.value
    return info.batch_size or batch_size or 1, PrepareSpec(info.input_dtype, layout, keep_images)


def run_batch(session: Session, group: list[tuple[Prediction, np.ndarray | None]], batch_size: int):
    """One batch through the session (padded with copies of its first input, as ais_bench
    pads); each good item's outputs with its batch dimension; failed items as they are. Items
    are told apart by their place in the group, not their index (Ray's numbers them later)."""
    good = [k for k, (_, tensor) in enumerate(group) if tensor is not None]
    outputs_at: dict[int, list[np.ndarray]] = {}
    if good:
        tensors = [tensor for _, tensor in group if tensor is not None]
        started = time.perf_counter()
        outputs = session.run(np.stack(tensors + [tensors[0]] * (batch_size - len(tensors))))
        share = (time.perf_counter() - started) / len(good)
        for j, k in enumerate(good):
            outputs_at[k] = [np.ascontiguousarray(o[j:j + 1]) for o in outputs]
            group[k][0].times["inference"] = share
    return [(prediction, outputs_at.get(k)) for k, (prediction, _) in enumerate(group)]


def _groups(prepared: Iterator, size: int) -> Iterator[list]:
    """Consecutive prepared items, `size` good ones per group (failed ones ride along)."""
    group: list = []
    good = 0
    for prediction, tensor in prepared:
        group.append((prediction, tensor))
        good += tensor is not None
        if good == size:
            yield group
            group, good = [], 0
    if group:
        yield group


def _finish(prediction: Prediction, future: Future | None) -> Prediction:
    if future is not None:
        prediction.detections, host_times = future.result()
        prediction.times.update(host_times)
    return prediction


def stream_for(ws: Workspace, engine: str, ray: RaySettings | None = None, *, backend: str, device: str,
               batch_size: int | None = None, workers: int = 1, keep_images: bool = False) -> Stream | RayStream:
    """The pipeline of --engine: local (Stream, its session in this process) or ray
    (ray_engine.RayStream, the sessions in Ray's actors; the same results)."""
    if engine == Engine.RAY.value:
        from .ray_engine import RaySettings, RayStream

        return RayStream(ray or RaySettings(), backend, device, batch_size, keep_images, log=ws.log("ray"))
    from .resolve import in_process

    return Stream(batch_size=batch_size, workers=workers, keep_images=keep_images, session_device=device,
                  around_session=functools.partial(in_process, ws, backend, device))
